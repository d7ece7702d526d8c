"""The pretrained poster network (EfficientNet-Lite0 in Keras) and the safe reader of its PyTorch checkpoint.

Its own package because two rooms use it: the poster encoder (``features``) and the CNN branch's
pretrained backbone (``branches``). It imports nothing of the project but ``core``.
"""
