"""Layer families in plain NumPy: one module per family (``recurrent``: the cells
and their loop over T; ``conv``: convolutions, pooling, ConvLSTM; ``attention``;
``norm``; ``activation_layers``; ``merge``; ``sequence`` plumbing; ``cudnn``
weight conversion; ``masks``: how Keras passes masks through each layer), each
function written as the definition Keras computes, on batch-first arrays. The graph
evaluator (``engine``, through ``families``) calls them; they never see files or
configs, and only ``recurrent`` takes a layer dataclass.
"""
