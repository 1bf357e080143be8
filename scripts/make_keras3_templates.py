#!/usr/bin/env python
"""Write ``rnninspect/keras3_layers.json``: each layer class's config exactly as
Keras 3 serialises a freshly made layer (every key, default initializers and all),
for ``rnninspect export`` to fill in with a model's own values.

Run with the reference venv (Keras 3.15.1; TensorFlow backend):

    /work/kenv/bin/python scripts/make_keras3_templates.py

Only the keys' presence and their default values come from here; every value that
changes what a layer computes is written by ``rnninspect/export.py`` from the model.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

L = keras.layers
OUT = Path(__file__).resolve().parent.parent / "rnninspect" / "keras3_layers.json"


def layers():
    yield "InputLayer", L.InputLayer(shape=(3,))
    yield "Dense", L.Dense(1)
    yield "Embedding", L.Embedding(2, 1)
    yield "Masking", L.Masking()
    yield "Activation", L.Activation("linear")
    for cls in (
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "GaussianDropout",
        "AlphaDropout",
    ):
        yield cls, getattr(L, cls)(0.5)
    yield "GaussianNoise", L.GaussianNoise(0.1)
    yield "ActivityRegularization", L.ActivityRegularization()
    yield "SimpleRNN", L.SimpleRNN(1)
    yield "LSTM", L.LSTM(1)
    yield "GRU", L.GRU(1)
    yield "SimpleRNNCell", L.SimpleRNNCell(1)
    yield "LSTMCell", L.LSTMCell(1)
    yield "GRUCell", L.GRUCell(1)
    yield "StackedRNNCells", L.StackedRNNCells([L.SimpleRNNCell(1)])
    yield "RNN", L.RNN(L.SimpleRNNCell(1))
    yield "Bidirectional", L.Bidirectional(L.SimpleRNN(1))
    yield "TimeDistributed", L.TimeDistributed(L.Dense(1))
    yield "ConvLSTM1D", L.ConvLSTM1D(1, 1)
    yield "ConvLSTM2D", L.ConvLSTM2D(1, 1)
    for cls in ("Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
        yield cls, getattr(L, cls)()
    yield "Dot", L.Dot(axes=-1)
    yield "RepeatVector", L.RepeatVector(1)
    yield "Flatten", L.Flatten()
    yield "Reshape", L.Reshape((1,))
    yield "Permute", L.Permute((1,))
    yield "Cropping1D", L.Cropping1D()
    yield "ZeroPadding1D", L.ZeroPadding1D()
    yield "UpSampling1D", L.UpSampling1D()
    yield "Conv1D", L.Conv1D(1, 1)
    yield "Conv2D", L.Conv2D(1, 1)
    for cls in ("MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D"):
        yield cls, getattr(L, cls)(2)
    for cls in (
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
    ):
        yield cls, getattr(L, cls)()
    yield "BatchNormalization", L.BatchNormalization()
    yield "LayerNormalization", L.LayerNormalization()
    yield "ReLU", L.ReLU()
    yield "LeakyReLU", L.LeakyReLU()
    yield "PReLU", L.PReLU()
    yield "ELU", L.ELU()
    yield "Softmax", L.Softmax()
    yield "Attention", L.Attention()
    yield "AdditiveAttention", L.AdditiveAttention()
    yield "MultiHeadAttention", L.MultiHeadAttention(1, 1)


def main():
    out = {"keras_version": keras.__version__, "layers": {}}
    for cls, layer in layers():
        entry = keras.saving.serialize_keras_object(layer)
        out["layers"][cls] = entry
    policy = keras.saving.serialize_keras_object(keras.DTypePolicy("float32"))
    out["dtype_policy"] = policy
    OUT.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(out['layers'])} classes, Keras {keras.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
