"""Layer families as plain NumPy functions: one module per family (convolutions,
attention, normalisation, merges, sequence plumbing, ConvLSTM), each function written
as the definition Keras computes, on batch-first arrays. The graph evaluator
(``engine``) calls them; they never see files, configs or the model's dataclasses.
"""
