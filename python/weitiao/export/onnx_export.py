"""``weitiao.export.onnx``: write a weitiao model as an ONNX file that onnxruntime (or any
ONNX runtime) runs without weitiao, with its preprocessing in the file's metadata."""
from __future__ import annotations

import importlib
import json
import os

from ..io.atomic import atomic_write, check_writable
from ..models.base import Classifier
from ..nn.module import Module
from . import blocks, layers  # noqa: F401  (fill the exporter table)
from .registry import ExportError

MIN_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def require_onnx():
    """The ``onnx`` package, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise ImportError("weitiao.export.onnx needs the onnx package: pip install "
                          "'weitiao[onnx]' (onnx to write the file, onnxruntime to run it)"
                          ) from None


def _resolve(model):
    """(network, class names or None, centre crop at evaluation) for a model or a
    FineTuner."""
    from ..finetune.tuner import FineTuner

    if isinstance(model, FineTuner):
        return model.model, list(model.classes), model.eval_crop
    if not isinstance(model, Module):
        raise TypeError(f"weitiao.export.onnx: expected a weitiao model (weitiao.models, a "
                        f"Module) or a FineTuner, got {type(model).__name__}")
    names = None
    if isinstance(model, Classifier) and len(model.config.class_names) == model.num_classes:
        names = list(model.config.class_names)
    return model, names, True


def _input_channels(net: Module) -> int:
    for _, m in net.named_modules():
        if isinstance(getattr(m, "in_channels", None), int):
            return m.in_channels
    raise ExportError(f"weitiao.export.onnx: cannot tell the input channels of "
                      f"{type(net).__name__}: it has no layer with in_channels (a Conv2d)")


def metadata(net: Module, input_size: int, class_names, crop: bool) -> dict[str, str]:
    """The metadata_props of the exported file: each value a string, structured ones JSON.

    >>> from weitiao.models import resnet18
    >>> meta = metadata(resnet18(num_classes=2, rng=0), 224, ["cat", "dog"], True)
    >>> meta["mean"], meta["input_size"], meta["class_names"]
    ('[0.485, 0.456, 0.406]', '224', '["cat", "dog"]')
    """
    from .. import __version__

    meta = {"weitiao_version": __version__, "input_size": json.dumps(input_size),
            "input_layout": "NCHW float32, RGB", "output": "logits (N, num_classes)"}
    if getattr(net, "arch", ""):
        meta["arch"] = net.arch
    if isinstance(net, Classifier):
        config = net.config
        if input_size != config.input_size:
            config = config.resized(input_size)
        meta.update(resize_size=json.dumps(config.resize_size), crop=json.dumps(bool(crop)),
                    mean=json.dumps(list(config.mean)), std=json.dumps(list(config.std)),
                    interpolation=config.interpolation, source=config.source)
        step = (f"resize the shorter side to {config.resize_size} ({config.interpolation}), "
                f"centre crop {input_size}x{input_size}") if crop else \
            f"resize to {input_size}x{input_size} ({config.interpolation})"
        meta["preprocessing"] = (f"{step}; RGB in [0, 1]; (x - mean) / std per channel with "
                                 f"mean {list(config.mean)}, std {list(config.std)}; NCHW")
    if class_names is not None:
        meta["class_names"] = json.dumps(list(class_names))
    return meta


def onnx(model, path: str | os.PathLike, input_size: int | None = None, *,
         fold_bn: bool = True, class_names=None, opset: int = MIN_OPSET):
    """Write ``model`` (a weitiao model or a FineTuner) to ``path`` as ONNX; returns the
    ``onnx.ModelProto``.

    The graph takes ``input`` (batch, C, input_size, input_size) float32 images, normalised
    as the model's preprocessing says, with a dynamic batch dimension, and gives ``logits``
    (batch, num_classes). ``input_size`` defaults to ``model.config.input_size``.
    ``fold_bn=True`` merges each eval-mode BatchNorm into the convolution before it (one
    Conv node instead of two); ``False`` writes BatchNormalization nodes. The metadata
    (``metadata_props``) holds the preprocessing (input_size, resize_size, crop, mean,
    std, interpolation), the class names (a FineTuner's classes, or the model's when they
    match its outputs; ``class_names`` overrides), the architecture and the weitiao
    version; see docs/export.md.

    The model is exported in eval mode (Dropout omitted, BatchNorm on running statistics)
    and left in the mode it was in. Needs the ``onnx`` package (``pip install
    "weitiao[onnx]"``). A layer without an exporter raises ExportError naming its path and
    type.

    >>> from weitiao.models import resnet18
    >>> import weitiao.export
    >>> weitiao.export.onnx(resnet18(num_classes=5, rng=0), "r18.onnx", 96)  # doctest: +SKIP
    """
    onnx_pkg = require_onnx()
    from .fold import fold_batchnorm
    from .graph import GraphBuilder

    if not isinstance(opset, int) or not MIN_OPSET <= opset <= onnx_pkg.defs.onnx_opset_version():
        raise ValueError(f"weitiao.export.onnx: opset must be an int from {MIN_OPSET} to "
                         f"{onnx_pkg.defs.onnx_opset_version()} (this onnx package's newest), "
                         f"got {opset!r}")
    net, names, crop = _resolve(model)
    if input_size is None:
        if not isinstance(net, Classifier):
            raise ValueError(f"weitiao.export.onnx: give input_size for a "
                             f"{type(net).__name__}, which carries no preprocessing config")
        input_size = net.config.input_size
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 1:
        raise ValueError(f"weitiao.export.onnx: input_size must be a positive int (the side "
                         f"of the square input), got {input_size!r}")
    target = check_writable(path)
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        graph = GraphBuilder()
        x = graph.input(INPUT_NAME, (_input_channels(net), input_size, input_size))
        y = graph.export(net, "", x)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    if len(y.shape) != 1:
        raise ExportError(f"weitiao.export.onnx: the model's output is (N, "
                          f"{', '.join(map(str, y.shape))}); expected logits (N, classes)")
    if class_names is not None:
        names = [str(c) for c in class_names]
    if names is not None and len(names) != y.shape[0]:
        raise ValueError(f"weitiao.export.onnx: {len(names)} class names for a model with "
                         f"{y.shape[0]} outputs")
    if fold_bn:
        fold_batchnorm(graph)
    proto = graph.model(y, OUTPUT_NAME, opset, getattr(net, "arch", "") or type(net).__name__)
    meta = metadata(net, input_size, names, crop)
    proto.producer_name = "weitiao"
    proto.producer_version = meta["weitiao_version"]
    proto.doc_string = meta.get("preprocessing", "")
    onnx_pkg.helper.set_model_props(proto, meta)
    onnx_pkg.checker.check_model(proto)
    with atomic_write(target) as f:
        f.write(proto.SerializeToString())
    return proto
