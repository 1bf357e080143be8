"""The model's classes (layers, Node, Source, Model) are dataclasses whose
``__init__``, ``__repr__`` and ``__eq__`` are written once on ``_Record``
(``rnninspect.model._record``): each behaves as the one ``@dataclass(kw_only=True)``
would generate for that class."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from rnninspect import model as m

LAYERS = sorted(
    (
        cls
        for cls in vars(m).values()
        if inspect.isclass(cls)
        and issubclass(cls, m._Record)
        and cls.__module__ == m.__name__
        and cls is not m._Record
    ),
    key=lambda cls: cls.__name__,
)


def _generated(cls: type) -> type:
    """The same fields, as plain ``@dataclass(kw_only=True)`` generates them."""
    specs = []
    for f in dataclasses.fields(cls):
        extra: dict[str, Any] = {}
        if f.default is not dataclasses.MISSING:
            extra["default"] = f.default
        if f.default_factory is not dataclasses.MISSING:
            extra["default_factory"] = f.default_factory
        specs.append((f.name, Any, dataclasses.field(**extra)))
    return dataclasses.make_dataclass(cls.__name__, specs, kw_only=True)


def _required(cls: type) -> dict[str, Any]:
    return {
        f.name: f"value of {f.name}"  # (arrays would make == raise, for both)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def test_every_layer_class_is_a_dataclass_taking_keywords() -> None:
    assert len(LAYERS) > 25 and {m.Node, m.Source, m.Model, m.Dense} <= set(LAYERS)
    for cls in LAYERS:
        assert dataclasses.is_dataclass(cls)
        assert cls.__doc__


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_init_repr_eq_as_dataclass_generates(cls: type) -> None:
    ref = _generated(cls)
    given = _required(cls)
    first = next(iter(given))
    ours, theirs = cls(**given), ref(**given)
    assert vars(ours) == vars(theirs)
    assert list(vars(ours)) == list(vars(theirs))  # the same fields, set in the same order
    assert repr(ours) == repr(theirs).replace(ref.__qualname__, cls.__qualname__, 1)
    for name in given:  # each required field left out
        partial = {k: v for k, v in given.items() if k != name}
        with pytest.raises(TypeError, match=repr(name)):
            cls(**partial)
        with pytest.raises(TypeError, match=repr(name)):
            ref(**partial)
    for bad in ({**given, "no_such_field": 1},):
        with pytest.raises(TypeError, match="no_such_field"):
            cls(**bad)
    with pytest.raises(TypeError):
        cls("positional", **{k: v for k, v in given.items() if k != first})
    # equality as dataclass's: field by field, only within one class
    same = cls(**given)
    assert (ours == same) == (theirs == ref(**given))
    other = cls(**{**given, first: "another"})
    assert ours != other
    assert dataclasses.replace(ours, **{first: "another"}) == other
    assert pickle.loads(pickle.dumps(ours)) == ours
    assert copy.deepcopy(ours) == ours


def test_default_factories_give_fresh_objects() -> None:
    a = m.Node(layer=m.Passthrough(name="p"))
    b = m.Node(layer=m.Passthrough(name="p"))
    assert a.inputs == [] and a.inputs is not b.inputs
    assert m.Passthrough(name="p").trainable is True


def test_a_class_the_shared_init_cannot_serve_is_refused() -> None:
    """The shared ``__init__`` calls no ``__post_init__`` and sets no init=False
    field: a model class needing either must be refused when defined, not built
    half-initialised."""
    from dataclasses import field

    from rnninspect import model

    with pytest.raises(TypeError, match="needs @dataclass"):

        @model._record
        class WithHidden(model.Layer):
            hidden: int = field(default=1, init=False)

    with pytest.raises(TypeError, match="needs @dataclass"):

        @model._record
        class WithPost(model.Layer):
            def __post_init__(self) -> None:
                pass


@pytest.mark.parametrize("cls", LAYERS, ids=lambda c: c.__name__)
def test_signature_is_dataclass_s(cls: type) -> None:
    """``help()`` and ``inspect.signature`` show each class's fields as the
    generated dataclass ``__init__`` would, not the shared ``**values``."""
    ours = inspect.signature(cls)
    theirs = inspect.signature(_generated(cls))
    assert [(p.name, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.kind) for p in theirs.parameters.values()
    ]
    for mine, gen in zip(ours.parameters.values(), theirs.parameters.values(), strict=True):
        if gen.default is inspect.Parameter.empty or repr(gen.default) == "<factory>":
            assert repr(mine.default) == repr(gen.default)
        else:
            assert mine.default == gen.default
