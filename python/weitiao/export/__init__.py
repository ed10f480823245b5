"""weitiao.export: take a model out of weitiao.

``weitiao.export.onnx(model, "model.onnx")`` writes an ONNX file (opset 17) that runs in
onnxruntime, its preprocessing and class names in the metadata; needs the optional
``onnx`` package (``pip install "weitiao[onnx]"``), imported only when an export runs.
Each layer type has one exporter in a table (:func:`register` adds one for a new layer).

>>> import weitiao.export
>>> weitiao.export.onnx(tuner, "photos.onnx")  # doctest: +SKIP
"""
from .onnx_export import onnx
from .registry import ExportError, Tensor, register, supported_types

__all__ = ["ExportError", "Tensor", "onnx", "register", "supported_types"]
