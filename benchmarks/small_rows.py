"""The small rows of issue 15 (one sample, tiny batches), where per-step dispatch
decides: rnninspect's ``forward`` against ONNX Runtime (a graph built with
``onnx.helper``: the ONNX RNN/LSTM/GRU op + MatMul + Add) and JAX (``jax.jit`` of a
``lax.scan``), each checked equal to ours; ONNX Runtime also held to one thread
(``onnxruntime-1t``, not counted as a peer), as rnninspect runs a small batch. Also rnninspect with the NumPy engine
forced (``RNNINSPECT_ENGINE=numpy``), so the compiled kernels' gain shows, and the
compiled kernels' first-call cost (compiling or reading numba's on-disk cache).

    python benchmarks/small_rows.py [--quick] [--json out.json]

Times are medians of many calls, peers alternated round by round (the machine may
be shared). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for this process only,
before NumPy loads; the BLAS kernel that ran is reported. Peers that are not
installed are skipped. Asserts nothing.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)  # this process only, before NumPy loads OpenBLAS

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import K, write_npz
from stepper import blas

import rnninspect

ROWS = [(1, 1000, 16, 64), (8, 100, 8, 32)]  # (N, T, D, M)
KINDS = ("SimpleRNN", "LSTM", "GRU")


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# ----------------------------------------------------------------------------- peers


def _keras_to_onnx(kind: str, w: dict[str, np.ndarray], M: int) -> dict[str, np.ndarray]:
    """Keras's weights in the ONNX op's layout: W (1, gM, D), R (1, gM, M), B (1, 2gM)."""
    Kx, Rh, b = w["rnn/kernel"], w["rnn/recurrent_kernel"], w["rnn/bias"]
    if kind == "LSTM":  # Keras i, f, c, o -> ONNX i, o, f, c
        order = np.concatenate([np.arange(0, M), np.arange(3 * M, 4 * M), np.arange(M, 3 * M)])
        Kx, Rh, b = Kx[:, order], Rh[:, order], b[order]
        B = np.concatenate([b, np.zeros_like(b)])
    elif kind == "GRU":  # z, r, h in both; reset_after = linear_before_reset
        B = np.concatenate([b[0], b[1]])
    else:
        B = np.concatenate([b, np.zeros_like(b)])
    return {"W": Kx.T[None], "R": Rh.T[None], "B": B[None]}


def ort_runner(
    kind: str, w: dict[str, np.ndarray], M: int, stateful: bool = False, threads: int = 0
) -> tuple[Callable[..., np.ndarray], str]:
    """ONNX Runtime on the layer + Dense graph: ``run(x)`` -> y; ``stateful``:
    ``run(x, h[, c])`` -> [y, h(, c)] with the states (1, N, M) in and out, for one
    step per session call. ``threads``: its intra-op threads (0: one per core)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    wo = _keras_to_onnx(kind, w, M)
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in wo.items()]
    inits += [
        numpy_helper.from_array(w["head/kernel"], "Wo"),
        numpy_helper.from_array(w["head/bias"], "bo"),
    ]
    op = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[kind]
    attrs: dict[str, object] = {"hidden_size": M}
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if kind == "SimpleRNN":
        attrs["activations"] = ["Tanh"]
    states = (["h0", "c0"] if kind == "LSTM" else ["h0"]) if stateful else []
    ins = ["xt", "W", "R", "B"] + (["", *states] if stateful else [])
    outs = ["", "h"] + (["c"] if kind == "LSTM" and stateful else [])
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),  # (T, N, D)
        helper.make_node(op, ins, outs, **attrs),  # h (1, N, M)
        helper.make_node("Squeeze", ["h", "ax0"], ["hs"]),
        helper.make_node("MatMul", ["hs", "Wo"], ["yw"]),
        helper.make_node("Add", ["yw", "bo"], ["y"]),
    ]
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "ax0"))
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info(n, f, [None, None, None]) for n in ["x", *states]],
        [helper.make_tensor_value_info("y", f, [None, K])]
        + [helper.make_tensor_value_info(n, f, [1, None, M]) for n in outs[1:] if stateful],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or os.cpu_count() or 1
    sess = ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    version = f"onnxruntime {ort.__version__} (onnx {onnx.__version__})"
    if stateful:
        return (lambda x, *s: sess.run(None, {"x": x, **dict(zip(states, s))})), version
    return (lambda x: sess.run(None, {"x": x})[0]), version


def jax_runner(kind: str, w: dict[str, np.ndarray], M: int) -> tuple[Callable[..., np.ndarray], str]:
    import jax
    import jax.numpy as jnp

    Kx, Rh = jnp.asarray(w["rnn/kernel"]), jnp.asarray(w["rnn/recurrent_kernel"])
    b = jnp.asarray(w["rnn/bias"])
    Wo, bo = jnp.asarray(w["head/kernel"]), jnp.asarray(w["head/bias"])

    def step(carry, x_t):  # type: ignore[no-untyped-def]
        if kind == "SimpleRNN":
            h = jnp.tanh(x_t @ Kx + carry @ Rh + b)
            return h, None
        if kind == "LSTM":
            h, c = carry
            z = x_t @ Kx + h @ Rh + b
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None
        xz = x_t @ Kx + b[0]
        hz = carry @ Rh + b[1]
        z = jax.nn.sigmoid(xz[:, :M] + hz[:, :M])
        r = jax.nn.sigmoid(xz[:, M : 2 * M] + hz[:, M : 2 * M])
        hh = jnp.tanh(xz[:, 2 * M :] + r * hz[:, 2 * M :])
        return z * carry + (1 - z) * hh, None

    @jax.jit
    def run(x):  # type: ignore[no-untyped-def]
        N = x.shape[0]
        h0 = jnp.zeros((N, M), x.dtype)
        init = (h0, h0) if kind == "LSTM" else h0
        final, _ = jax.lax.scan(step, init, jnp.swapaxes(x, 0, 1))
        h = final[0] if kind == "LSTM" else final
        return h @ Wo + bo

    return (lambda x: np.asarray(run(x))), f"jax {jax.__version__} (jit, lax.scan)"


# ----------------------------------------------------------------------------- timing


def median_alternating(fns: dict[str, Callable[[], object]], rounds: int, inner: int) -> dict[str, float]:
    """Median seconds a call; every round runs each function ``inner`` times, in turn."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - t0) / inner)
    return {k: statistics.median(v) for k, v in times.items()}


def first_call_s(path: Path, x: np.ndarray) -> float:
    """A fresh process's first forward (model loaded) on the compiled engine: numba's
    import and the kernel's compile, or reading it from numba's on-disk cache."""
    import subprocess

    code = (
        "import sys, time, numpy as np, rnninspect\n"
        "from rnninspect.ops import compiled\n"
        "m = rnninspect.load_model(sys.argv[1]); x = np.load(sys.argv[2])\n"
        "t = time.perf_counter()\n"
        "with compiled.use('compiled'):\n"
        "    m.forward(x)\n"
        "print(time.perf_counter() - t)\n"
    )
    xp = path.with_suffix(".x.npy")
    np.save(xp, x)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(xp)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rounds = 5 if args.quick else 15
    from rnninspect.ops import compiled

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"BLAS: {blas()}")
    print(f"rnninspect compiled engine: {compiled.describe()}")
    versions: dict[str, str] = {}
    rows = []
    for N, T, D, M in ROWS:
        for kind in KINDS:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "m.npz"
                w = write_npz(path, kind, T, D, M)
                x = np.random.default_rng(1).standard_normal((N, T, D)).astype(np.float32)
                first = first_call_s(path, x) if compiled.available() else None
                m = rnninspect.load_model(path)
                # The steady state of a process that uses the small shapes (the
                # default engine switches to the kernels once they have paid for
                # numba's start-up, see rnninspect.ops.compiled).
                engine = "compiled" if compiled.available() else "numpy"
                with compiled.use(engine):
                    ours = m.forward(x)

                def ours_call() -> None:
                    with compiled.use(engine):
                        m.forward(x)

                fns: dict[str, Callable[[], object]] = {"rnninspect": ours_call}

                def numpy_engine() -> None:
                    with compiled.forced_numpy():
                        m.forward(x)

                fns["rnninspect-numpy"] = numpy_engine
                equal: dict[str, bool] = {}
                for peer, make, module in (
                    ("onnxruntime", ort_runner, "onnxruntime"),
                    # ONNX Runtime held to one thread, as rnninspect's kernels run
                    # a small batch (its pool's threads spin between calls: a
                    # second core is its edge on the smallest rows).
                    ("onnxruntime-1t", partial(ort_runner, threads=1), "onnxruntime"),
                    ("jax", jax_runner, "jax"),
                ):
                    if not have(module):
                        continue
                    run, version = make(kind, w, M)
                    versions[peer.removesuffix("-1t")] = version
                    equal[peer] = bool(np.allclose(run(x), ours, rtol=1e-4, atol=1e-5))
                    fns[peer] = lambda run=run: run(x)
                inner = max(1, int(2000 / T / N ** 0.5))
                t = median_alternating(fns, rounds, inner)
            row = {"kind": kind, "shape": [N, T, D, M], "us": {k: v * 1e6 for k, v in t.items()}}
            row["equal"] = equal
            row["first_call_ms"] = None if first is None else first * 1e3
            rows.append(row)
            peers = {k: v for k, v in t.items() if not k.startswith("rnninspect")}
            peers.pop("onnxruntime-1t", None)  # shown, but not a peer as users run it
            best_peer = min(peers, key=peers.__getitem__) if peers else None
            text = f"{kind:9s} (N,T,D,M)=({N},{T},{D},{M}): rnninspect {t['rnninspect'] * 1e6:8.0f} us"
            text += f" | numpy engine {t['rnninspect-numpy'] * 1e6:8.0f} us"
            for peer in [*peers, "onnxruntime-1t"] if "onnxruntime-1t" in t else peers:
                text += f" | {peer} {t[peer] * 1e6:7.0f} us (equal={equal[peer]})"
            if best_peer:
                text += f" | best peer / ours = {t[best_peer] / t['rnninspect']:.2f}x"
            if first is not None:
                text += f" | first call {first * 1e3:.0f} ms"
            print(text, flush=True)
    for v in versions.values():
        print("peer:", v)
    if args.json:
        Path(args.json).write_text(json.dumps({"blas": blas(), "versions": versions, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
