"""Deployment: export a trained model to ONNX and run it with onnxruntime, without torch.

:mod:`dmha.export.onnx_export` (needs torch) writes ``<exp>/onnx/model.onnx`` (and ``model.int8.onnx``)
with the feature settings in the model's metadata; :mod:`dmha.export.runtime` (onnxruntime + numpy +
soundfile only) reads audio, computes the same log-mels with :mod:`dmha.features.melbank` and embeds.
This ``__init__`` imports nothing, so the runtime never pulls in torch.
"""
