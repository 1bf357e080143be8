"""What each Keras layer does with an incoming mask, as data for the evaluator.

Each rule was found by running the layer, in Keras 3.15 and in tf_keras 2.21, on an
input carrying a ``(N, T)`` mask and reading the output's mask
(``backend.get_keras_mask`` / ``_keras_mask``); see ``scripts/make_op_goldens_layers.py``
and ``tests/data/ops_layers.npz`` (``__mask_evidence__``). The two generations agree on
every rule; where they differ is *how* merge layers combine masks
(``merge.merge_masks``) and, for ``Multiply``/``Maximum``/``Minimum`` in Keras 3, the
values themselves (``merge.multiply``, ``merge.maximum``).

Rules:

* ``pass``: the output carries the input's mask unchanged (the layer computes as if
  unmasked).
* ``drop``: no output mask, and the values ignore the mask (``Conv1D``, pooling,
  ``GlobalMaxPooling1D`` take padded steps into the max, the reshaping layers do not
  crop, pad or repeat the mask: it is gone).
* ``consume``: no output mask, the values use it (``GlobalAveragePooling1D``:
  ``sum(x * m) / sum(m)`` over T).
* ``transform``: the layer makes its own mask, whatever came in (``Embedding``:
  ``ids != 0`` with ``mask_zero=True``, else none; ``Masking``: ``any(x != mask_value,
  -1)``).
* ``merge``: a list of inputs; the output mask is ``merge.merge_masks(kind, ...)``.
* ``query``: attention; the output mask is the query's mask (None if the query has
  none), whatever the value's.

``Softmax`` is ``pass`` with a mask of its input's shape; Keras's mask argument must
broadcast to the input, so the usual ``(N, T)`` mask of a ``(N, T, C)`` tensor makes
Keras fail (both generations). Recurrent layers are not listed: they ``pass`` with
``return_sequences=True`` and ``consume`` otherwise.
"""

from __future__ import annotations

MASK_RULE: dict[str, str] = {
    # core
    "Dense": "pass",
    "Activation": "pass",
    "Dropout": "pass",
    "SpatialDropout1D": "pass",
    "GaussianNoise": "pass",
    "GaussianDropout": "pass",
    "AlphaDropout": "pass",
    "ActivityRegularization": "pass",
    "TimeDistributed": "pass",
    "Embedding": "transform",
    "Masking": "transform",
    # normalisation
    "BatchNormalization": "pass",
    "LayerNormalization": "pass",
    # activation layers
    "ReLU": "pass",
    "LeakyReLU": "pass",
    "PReLU": "pass",
    "ELU": "pass",
    "Softmax": "pass",
    # convolution and pooling
    "Conv1D": "drop",
    "MaxPooling1D": "drop",
    "AveragePooling1D": "drop",
    "GlobalMaxPooling1D": "drop",
    "GlobalAveragePooling1D": "consume",
    # shape plumbing
    "RepeatVector": "drop",
    "Flatten": "drop",
    "Reshape": "drop",
    "Permute": "drop",
    "Cropping1D": "drop",
    "ZeroPadding1D": "drop",
    "UpSampling1D": "drop",
    # merges
    "Add": "merge",
    "Subtract": "merge",
    "Multiply": "merge",
    "Average": "merge",
    "Maximum": "merge",
    "Minimum": "merge",
    "Concatenate": "merge",
    "Dot": "merge",
    # attention
    "Attention": "query",
    "AdditiveAttention": "query",
    "MultiHeadAttention": "query",
}
