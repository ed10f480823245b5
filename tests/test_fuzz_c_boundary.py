"""Fuzzing the Python/C boundary: every function of ``weitiao._C``, called with arguments
drawn by hypothesis, returns correctly shaped results or raises TypeError, ValueError,
MemoryError or OverflowError. It never crashes, hangs, leaks or steals a reference, writes to
an in-place argument it then refuses, or prints a sanitizer report.

How it works
    Calls run in a worker: this file run as a script (``python test_fuzz_c_boundary.py
    --worker``), so a segfault is a test failure naming the call, not a dead pytest. Arguments
    cross the pipe as plain-data *recipes* - an array is (dtype, shape, fill, layout, seed) -
    and the worker builds the objects, so strided, negative-stride, broadcast, misaligned,
    read-only and byte-swapped views, zero-stride fake arrays of 2^60 elements and objects
    whose ``__index__`` raises can all be described. The worker runs under an address-space
    limit: a call that would allocate gigabytes must fail with MemoryError, not take the
    machine's memory. Its stderr is scanned after every call for AddressSanitizer, UBSan,
    OpenBLAS (xerbla) and libgomp reports, so under ``scripts/sanitize.sh`` this file is also
    the sanitizer harness.

What a case expects
    Each case starts as a valid call (consistent shapes, hyperparameters in range), then 0-2
    mutations change it: dtype, rank, one dimension, memory layout, values (NaN, Inf, huge,
    out-of-range labels/indices), a wrong Python type, an absurd hyperparameter, a fake huge
    or an empty-but-huge array, a nested list instead of an array, aliasing two arguments,
    missing or extra arguments, positional instead of keyword arguments. A valid call, and
    one whose only change is the layout or the values of a read-only input, must succeed -
    and then give exactly what the same call with contiguous copies gives. A layout change of
    an in-place argument must raise ValueError. Anything else may succeed or raise one of the
    four exceptions; when it succeeds the results must have the shapes PyTorch's formulas
    give for the arguments actually passed.

Profiles
    Default: about FUZZ_CALLS_DEFAULT cases over all functions (a few seconds). Long:
    ``WEITIAO_FUZZ_CALLS=100000`` (see scripts/fuzz_long.sh); the last long result is in
    docs/reliability.md. ``WEITIAO_FUZZ_REPORT=path.json`` writes the per-function counts.
"""
from __future__ import annotations

import json
import math
import operator
import os
import pickle
import select
import struct
import subprocess
import sys
import time

import numpy as np

FUZZ_CALLS_DEFAULT = 500
CALL_TIMEOUT = 60.0  # seconds one call may take before the worker counts as hung
# The worker's address-space limit above what it uses after start-up: room for every
# legitimate fuzz call (they are small), far below the machine's memory.
WORKER_HEADROOM = 3 << 30
ALLOWED = (TypeError, ValueError, MemoryError, OverflowError)

# Positional parameter names of each keyword function, then keyword-only ones (sgd_step).
SIGNATURES = {
    "conv2d_forward": (["x", "weight", "bias", "stride", "padding", "dilation", "groups"], []),
    "conv2d_backward_data": (["grad_out", "weight", "input_shape", "stride", "padding",
                              "dilation", "groups"], []),
    "conv2d_backward_weight": (["grad_out", "x", "grad_weight", "grad_bias", "stride",
                                "padding", "dilation", "groups"], []),
    "max_pool2d_forward": (["x", "kernel_size", "stride", "padding", "dilation", "ceil_mode"],
                           []),
    "max_pool2d_backward": (["grad_out", "indices", "input_shape"], []),
    "avg_pool2d_forward": (["x", "kernel_size", "stride", "padding", "ceil_mode",
                            "count_include_pad"], []),
    "avg_pool2d_backward": (["grad_out", "input_shape", "kernel_size", "stride", "padding",
                             "ceil_mode", "count_include_pad"], []),
    "global_avg_pool2d_forward": (["x"], []),
    "global_avg_pool2d_backward": (["grad_out", "input_shape"], []),
    "batch_norm2d_forward_train": (["x", "weight", "bias", "running_mean", "running_var",
                                    "momentum", "eps"], []),
    "batch_norm2d_forward_eval": (["x", "weight", "bias", "running_mean", "running_var",
                                   "eps"], []),
    "batch_norm2d_backward": (["grad_out", "x", "weight", "mean", "invstd", "grad_weight",
                               "grad_bias", "training", "need_input_grad"], []),
    "relu_forward": (["x"], []),
    "relu_backward": (["grad_out", "y"], []),
    "relu6_forward": (["x"], []),
    "relu6_backward": (["grad_out", "y"], []),
    "add": (["a", "b"], []),
    "linear_forward": (["x", "weight", "bias"], []),
    "linear_backward": (["grad_out", "x", "weight", "grad_weight", "grad_bias",
                         "need_input_grad"], []),
    "cross_entropy": (["logits", "labels", "label_smoothing", "need_grad", "weight"], []),
    "soft_cross_entropy": (["logits", "targets", "label_smoothing", "need_grad", "weight"], []),
    "dropout_forward": (["x", "p", "seed"], []),
    "dropout_backward": (["grad_out", "mask", "p"], []),
    "sgd_step": (["param", "grad", "momentum_buffer"],
                 ["lr", "momentum", "dampening", "weight_decay", "nesterov", "first_step"]),
}
# Functions taking one positional argument (METH_O) or none (METH_NOARGS).
ONE_ARG = ("set_num_threads", "set_array_handler", "set_array_cache_limit", "set_winograd")
NO_ARGS = ("get_num_threads", "blas_info", "array_cache_handler", "array_cache_info",
           "array_cache_clear", "get_winograd", "vector_isa")

# How each array argument is used: "in" a float32 input of fixed rank, "any" a float32 input
# of any rank, "inplace" updated in place, "int" an integer input, "mask" dropout's uint8
# mask, "shape" an input_shape tuple, "probs" a float32 input whose values must lie in
# [0, 1] (other values are refused).
ROLES = {
    "conv2d_forward": {"x": "in", "weight": "in", "bias": "in"},
    "conv2d_backward_data": {"grad_out": "in", "weight": "in", "input_shape": "shape"},
    "conv2d_backward_weight": {"grad_out": "in", "x": "in", "grad_weight": "inplace",
                               "grad_bias": "inplace"},
    "max_pool2d_forward": {"x": "in"},
    "max_pool2d_backward": {"grad_out": "in", "indices": "int", "input_shape": "shape"},
    "avg_pool2d_forward": {"x": "in"},
    "avg_pool2d_backward": {"grad_out": "in", "input_shape": "shape"},
    "global_avg_pool2d_forward": {"x": "in"},
    "global_avg_pool2d_backward": {"grad_out": "in", "input_shape": "shape"},
    "batch_norm2d_forward_train": {"x": "in", "weight": "in", "bias": "in",
                                   "running_mean": "inplace", "running_var": "inplace"},
    "batch_norm2d_forward_eval": {"x": "in", "weight": "in", "bias": "in",
                                  "running_mean": "in", "running_var": "in"},
    "batch_norm2d_backward": {"grad_out": "in", "x": "in", "weight": "in", "mean": "in",
                              "invstd": "in", "grad_weight": "inplace", "grad_bias": "inplace"},
    "relu_forward": {"x": "any"},
    "relu_backward": {"grad_out": "any", "y": "any"},
    "relu6_forward": {"x": "any"},
    "relu6_backward": {"grad_out": "any", "y": "any"},
    "add": {"a": "any", "b": "any"},
    "linear_forward": {"x": "in", "weight": "in", "bias": "in"},
    "linear_backward": {"grad_out": "in", "x": "in", "weight": "in", "grad_weight": "inplace",
                        "grad_bias": "inplace"},
    "cross_entropy": {"logits": "in", "labels": "int", "weight": "probs"},
    "soft_cross_entropy": {"logits": "in", "targets": "probs", "weight": "probs"},
    "dropout_forward": {"x": "any"},
    "dropout_backward": {"grad_out": "any", "mask": "mask"},
    "sgd_step": {"param": "inplace", "grad": "any", "momentum_buffer": "inplace"},
}
# Scalar hyperparameters, by how the C code parses them.
HYPERS = {
    "conv2d_forward": ["stride", "padding", "dilation", "groups"],
    "conv2d_backward_data": ["stride", "padding", "dilation", "groups"],
    "conv2d_backward_weight": ["stride", "padding", "dilation", "groups"],
    "max_pool2d_forward": ["kernel_size", "stride", "padding", "dilation", "ceil_mode"],
    "avg_pool2d_forward": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"],
    "avg_pool2d_backward": ["kernel_size", "stride", "padding", "ceil_mode",
                            "count_include_pad"],
    "batch_norm2d_forward_train": ["momentum", "eps"],
    "batch_norm2d_forward_eval": ["eps"],
    "batch_norm2d_backward": ["training", "need_input_grad"],
    "linear_backward": ["need_input_grad"],
    "cross_entropy": ["label_smoothing", "need_grad"],
    "soft_cross_entropy": ["label_smoothing", "need_grad"],
    "dropout_forward": ["p", "seed"],
    "dropout_backward": ["p"],
    "sgd_step": ["lr", "momentum", "dampening", "weight_decay", "nesterov", "first_step"],
}

LAYOUTS = ["strided", "fortran", "reversed", "bcast", "misaligned", "readonly", "swapped",
           "transposed_copy"]
FLOAT_FILLS = ["nan", "inf", "mixed", "huge", "zeros", "denormal"]


# ============================================================================ worker side


class Boom(Exception):
    """Raised by the hostile objects below: user code failing inside a conversion."""


class Index:
    """An object that is an integer only through ``__index__``."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class IndexBoom:
    def __index__(self):
        raise Boom("__index__")


class BoomSeq:
    """A sequence of length 2 (or 4) whose items cannot be read."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        raise Boom("__getitem__")


class LenBoom:
    """A sequence whose length cannot be taken."""

    def __len__(self):
        raise Boom("__len__")

    def __getitem__(self, i):
        return 1


class BoolBoom:
    def __bool__(self):
        raise Boom("__bool__")


class FloatBoom:
    def __float__(self):
        raise Boom("__float__")


def _values(dtype: np.dtype, shape, fill: str, rng: np.random.Generator) -> np.ndarray:
    """Native-order values of ``dtype`` for ``fill``."""
    n = math.prod(shape)
    kind = dtype.kind
    if fill.startswith("index:"):
        lo, hi = (int(v) for v in fill.split(":")[1:])
        v = rng.integers(lo, max(hi, lo + 1), size=n, dtype=np.int64)
        return v.astype(dtype).reshape(shape) if kind in "iu" else v.reshape(shape).astype(dtype)
    if kind == "b":
        return (rng.random(n) < 0.5).reshape(shape)
    if kind in "iu":
        info = np.iinfo(dtype)
        v = rng.integers(max(info.min, -100), min(info.max, 100) + 1, size=n)
        return v.astype(dtype).reshape(shape)
    if kind in "fc":
        if fill == "zeros":
            v = np.zeros(n)
        elif fill == "pos":
            v = rng.random(n) + 0.1
        elif fill == "nan":
            v = np.full(n, np.nan)
        elif fill == "inf":
            v = rng.choice([np.inf, -np.inf], size=n)
        elif fill == "huge":
            v = rng.choice([3e38, -3e38, 1e30], size=n)
        elif fill == "denormal":
            v = rng.choice([1e-40, -1e-45, 0.0, -0.0], size=n)
        elif fill == "mixed":
            v = rng.choice([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-42, -0.0, 1.0], size=n)
        elif fill == "bits":
            v = (rng.random(n) < 0.5).astype(np.float64)
        else:
            v = rng.standard_normal(n)
        with np.errstate(all="ignore"):
            return v.astype(dtype).reshape(shape)
    if kind == "O":
        return np.array(rng.standard_normal(n).tolist(), dtype=object).reshape(shape)
    if kind == "U":
        return np.full(shape, "ab", dtype=dtype)
    return np.zeros(shape, dtype=dtype)  # datetimes and the rest


def make_array(dtype: str, shape, fill: str, layout: str, seed: int) -> np.ndarray:
    """An array with these values in this memory layout (values do not depend on layout)."""
    shape = tuple(shape)
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    values = _values(dt.newbyteorder("=") if dt.byteorder not in "=|" else dt, shape, fill, rng)
    if layout == "c" or (values.ndim == 0 and layout != "readonly"):
        out = np.array(values, dtype=dt, order="C")
    elif layout == "strided":
        big = np.zeros(shape + (2,), dt)
        big[..., 0] = values
        out = big[..., 0]
    elif layout == "fortran":
        out = np.asfortranarray(np.array(values, dtype=dt))
    elif layout == "transposed_copy":
        out = np.ascontiguousarray(np.array(values, dtype=dt).T).T
    elif layout == "reversed":
        out = np.ascontiguousarray(np.array(values, dtype=dt)[::-1])[::-1]
    elif layout == "bcast":
        if values.ndim and values.shape[0] > 0:
            out = np.broadcast_to(np.array(values[:1], dtype=dt), shape)
        else:
            out = np.array(values, dtype=dt)
    elif layout == "misaligned":
        buf = np.zeros(values.size * dt.itemsize + 1, np.uint8)
        out = buf[1:].view(dt).reshape(shape)
        out[...] = values
    elif layout == "readonly":
        out = np.array(values, dtype=dt)
        out.flags.writeable = False
    elif layout == "swapped":
        out = np.array(values, dtype=dt.newbyteorder("S") if dt.itemsize > 1 else dt)
    else:
        raise ValueError(f"unknown layout {layout}")
    return out


def build(recipe, built: dict):
    """The object a recipe describes. ``built`` holds the arguments built so far (for refs)."""
    kind = recipe[0]
    if kind == "val":
        return recipe[1]
    if kind == "arr":
        return make_array(*recipe[1:])
    if kind == "list":
        return make_array(*recipe[1][1:]).tolist()
    if kind == "fake":  # a zero-stride view of one element: huge shape, no memory
        _, dtype, shape = recipe
        return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=tuple(shape),
                                               strides=(0,) * len(shape))
    if kind == "empty":  # an array with a zero dimension: any other dims cost nothing
        _, dtype, shape = recipe
        return np.empty(tuple(shape), dtype)
    if kind == "deep":
        v: object = [1.0]
        for _ in range(recipe[1]):
            v = [v]
        return v
    if kind == "obj":
        return object()
    if kind == "index":
        return Index(recipe[1])
    if kind == "index_boom":
        return IndexBoom()
    if kind == "boom_seq":
        return BoomSeq(recipe[1])
    if kind == "len_boom":
        return LenBoom()
    if kind == "bool_boom":
        return BoolBoom()
    if kind == "float_boom":
        return FloatBoom()
    if kind == "tuple":
        return tuple(build(r, built) for r in recipe[1])
    if kind == "ref":
        return built[recipe[1]]
    if kind == "handler_capsule":
        from weitiao import _C
        return _C.array_cache_handler()
    raise ValueError(f"unknown recipe {recipe!r}")


def uses_boom(recipe) -> bool:
    return isinstance(recipe, tuple) and (
        recipe[0] in ("index_boom", "boom_seq", "len_boom", "bool_boom", "float_boom")
        or (recipe[0] == "tuple" and any(uses_boom(r) for r in recipe[1])))


class Unparsable(Exception):
    """The reference model refuses a hyperparameter."""


def _int(v) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise Unparsable(repr(v))
    try:
        return operator.index(v)
    except TypeError:
        raise Unparsable(repr(v)) from None


def _ints(v, count: int) -> tuple:
    try:
        return (_int(v),) * count
    except Unparsable:
        pass
    if _length(v) != count:
        raise Unparsable(repr(v))
    return tuple(_int(i) for i in v)


def _length(v):
    """len(v), or None where the C code's PySequence_Size fails (a 0-d array...)."""
    try:
        return None if isinstance(v, str) else len(v)
    except TypeError:
        return None


def _conv_padding(v) -> tuple:
    if _length(v) == 4:
        return _ints(v, 4)
    ph, pw = _ints(v, 2)
    return ph, ph, pw, pw


def pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


class Mismatch(Exception):
    """The call succeeded although its arguments do not fit together."""


def _expect_shape(a: dict, name: str, want) -> None:
    if name in a and a[name] is not None and tuple(np.shape(a[name])) != tuple(want):
        raise Mismatch(f"accepted {name} of shape {np.shape(a[name])}, expected {tuple(want)}")


def expected_results(fn: str, a: dict):
    """What a successful call returns - a list of (shape, dtype) for arrays, or markers
    ("none", "float", "int", "dict", "capsule") - computed with PyTorch's formulas from the
    arguments actually passed. Raises Mismatch when the arguments do not fit together (the
    call should have been refused) and Unparsable for a hyperparameter it should have
    refused."""
    f32, i64 = np.dtype(np.float32), np.dtype(np.int64)
    shape = lambda name: tuple(np.shape(a[name]))  # noqa: E731 - nested lists have shapes too
    if fn.startswith("conv2d_"):
        groups = _ints(a.get("groups", 1), 1)[0]  # (an int or a 1-sequence, as parse_ints)
        sh, sw = _ints(a.get("stride", 1), 2)
        dh, dw = _ints(a.get("dilation", 1), 2)
        pt, pb, pl, pr = _conv_padding(a.get("padding", 0))
        n, c, h, w = tuple(int(v) for v in a["input_shape"]) if fn == "conv2d_backward_data" \
            else shape("x")
        oc, cg, kh, kw = shape("grad_weight" if fn == "conv2d_backward_weight" else "weight")
        if cg * groups != c or oc % groups or min(c, h, w, oc, kh, kw) < 1:
            raise Mismatch(f"accepted C={c}, weight {(oc, cg, kh, kw)}, groups={groups}")
        oh = (h + pt + pb - (dh * (kh - 1) + 1)) // sh + 1
        ow = (w + pl + pr - (dw * (kw - 1) + 1)) // sw + 1
        if fn == "conv2d_forward":
            _expect_shape(a, "bias", (oc,))
            return [((n, oc, oh, ow), f32)]
        _expect_shape(a, "grad_out", (n, oc, oh, ow))
        if fn == "conv2d_backward_data":
            return [((n, c, h, w), f32)]
        _expect_shape(a, "grad_bias", (oc,))
        return ["none"]
    if fn in ("max_pool2d_forward", "avg_pool2d_forward", "avg_pool2d_backward"):
        n, c, h, w = shape("x") if fn != "avg_pool2d_backward" else \
            tuple(int(v) for v in a["input_shape"])
        kh, kw = _ints(a["kernel_size"], 2)
        stride = a.get("stride")
        sh, sw = (kh, kw) if stride is None else _ints(stride, 2)
        ph, pw = _ints(a.get("padding", 0), 2)
        dh, dw = _ints(a.get("dilation", 1), 2)
        ceil = bool(a.get("ceil_mode", False))
        bool(a.get("count_include_pad", True))
        oh, ow = pool_out(h, kh, sh, ph, dh, ceil), pool_out(w, kw, sw, pw, dw, ceil)
        if min(c, h, w, oh, ow) < 1 or 2 * ph > kh or 2 * pw > kw:
            raise Mismatch(f"accepted input {(n, c, h, w)} with output {(oh, ow)}")
        if fn == "max_pool2d_forward":
            return [((n, c, oh, ow), f32), ((n, c, oh, ow), i64)]
        if fn == "avg_pool2d_forward":
            return [((n, c, oh, ow), f32)]
        _expect_shape(a, "grad_out", (n, c, oh, ow))
        return [((n, c, h, w), f32)]
    if fn == "max_pool2d_backward":
        n, c, h, w = (int(v) for v in a["input_shape"])
        dy = shape("grad_out")
        _expect_shape(a, "indices", dy)
        if dy[:2] != (n, c) or min(c, h, w) < 1:
            raise Mismatch(f"accepted grad_out {dy} for input {(n, c, h, w)}")
        return [((n, c, h, w), f32)]
    if fn == "global_avg_pool2d_forward":
        n, c, h, w = shape("x")
        if min(c, h, w) < 1:
            raise Mismatch(f"accepted x of shape {(n, c, h, w)}")
        return [((n, c, 1, 1), f32)]
    if fn == "global_avg_pool2d_backward":
        n, c, h, w = (int(v) for v in a["input_shape"])
        _expect_shape(a, "grad_out", (n, c, 1, 1))
        if min(c, h, w) < 1:
            raise Mismatch(f"accepted input_shape {(n, c, h, w)}")
        return [((n, c, h, w), f32)]
    if fn.startswith("batch_norm2d_"):
        x = shape("x")
        n, c, h, w = x
        if min(c, h, w) < 1:
            raise Mismatch(f"accepted x of shape {x}")
        for name in ("weight", "bias", "running_mean", "running_var", "mean", "invstd",
                     "grad_weight", "grad_bias"):
            _expect_shape(a, name, (c,))
        if fn == "batch_norm2d_forward_train":
            if n * h * w < 2:
                raise Mismatch(f"accepted one value per channel in training, x {x}")
            return [(x, f32), ((c,), f32), ((c,), f32)]
        if fn == "batch_norm2d_forward_eval":
            return [(x, f32)]
        _expect_shape(a, "grad_out", x)
        return [(x, f32)] if bool(a.get("need_input_grad", True)) else ["none"]
    if fn in ("relu_forward", "relu6_forward", "dropout_forward"):
        out = [(shape("x"), f32)]
        return out + [(shape("x"), np.dtype(np.uint8))] if fn == "dropout_forward" else out
    if fn in ("relu_backward", "relu6_backward"):
        _expect_shape(a, "grad_out", shape("y"))
        return [(shape("y"), f32)]
    if fn == "add":
        _expect_shape(a, "b", shape("a"))
        return [(shape("a"), f32)]
    if fn == "dropout_backward":
        _expect_shape(a, "mask", shape("grad_out"))
        return [(shape("grad_out"), f32)]
    if fn in ("linear_forward", "linear_backward"):
        n, fin = shape("x")
        fout, win = shape("weight")
        if win != fin:
            raise Mismatch(f"accepted x {(n, fin)} with weight {(fout, win)}")
        for name, want in (("bias", (fout,)), ("grad_bias", (fout,)),
                           ("grad_weight", (fout, fin)), ("grad_out", (n, fout))):
            _expect_shape(a, name, want)
        if fn == "linear_forward":
            return [((n, fout), f32)]
        return [((n, fin), f32)] if bool(a.get("need_input_grad", True)) else ["none"]
    if fn in ("cross_entropy", "soft_cross_entropy"):
        n, k = shape("logits")
        _expect_shape(a, "labels", (n,))
        _expect_shape(a, "targets", (n, k))
        _expect_shape(a, "weight", (k,))
        if k < 1:
            raise Mismatch("accepted logits without classes")
        return ["float"] + ([((n, k), f32)] if bool(a.get("need_grad", True)) else ["none"])
    if fn == "sgd_step":
        for name in ("grad", "momentum_buffer"):
            _expect_shape(a, name, shape("param"))
        return ["none"]
    if fn in ("set_num_threads", "array_cache_clear", "set_array_cache_limit", "set_winograd"):
        return ["none"]
    if fn == "get_num_threads":
        return ["int"]
    if fn == "get_winograd":
        return ["bool"]
    if fn in ("blas_info", "array_cache_info"):
        return ["dict"]
    if fn == "vector_isa":
        return ["str"]
    if fn in ("array_cache_handler", "set_array_handler"):
        return ["capsule"]
    return None  # a function this file does not model


def summarize(result) -> list:
    parts = list(result) if isinstance(result, tuple) else [result]
    out = []
    for p in parts:
        if p is None:
            out.append("none")
        elif isinstance(p, np.ndarray):
            out.append((p.shape, p.dtype))
        elif isinstance(p, float):
            out.append("float")
        elif isinstance(p, bool):
            out.append("bool")
        elif isinstance(p, int):
            out.append("int")
        elif isinstance(p, dict):
            out.append("dict")
        elif type(p).__name__ == "PyCapsule":
            out.append("capsule")
        else:
            out.append(type(p).__name__)
    return out


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _updatable(a) -> bool:
    """What the C code demands of an array it updates in place."""
    return (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.dtype.isnative
            and a.flags.c_contiguous and a.flags.aligned and a.flags.writeable)


def _bind(fn: str, args: list, kwargs: dict) -> dict:
    names = SIGNATURES.get(fn, ([], []))[0]
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


class Worker:
    """The worker's state: the module, counters and the restore step after each call."""

    def __init__(self):
        import weitiao  # noqa: F401 - loads OpenBLAS before _C
        from weitiao import _C

        self.C = _C
        self.calls = 0
        self.threads = _C.get_num_threads()
        self.winograd = _C.get_winograd()
        self.cache_limit = (_C.array_cache_info()["limit"]
                            if hasattr(_C, "array_cache_info") else None)

    def restore(self):
        C = self.C
        C.set_num_threads(self.threads)
        C.set_winograd(self.winograd)
        if self.cache_limit is not None:
            C.set_array_cache_limit(self.cache_limit)

    def call(self, fn, args, kwargs):
        self.calls += 1
        target = getattr(self.C, fn)
        if fn == "set_array_handler":
            previous = target(*args, **kwargs)
            self.C.set_array_handler(previous)  # back to NumPy's own allocator
            return previous
        return target(*args, **kwargs)

    def run(self, case: dict) -> dict:
        fn = case["fn"]
        built: dict = {}
        recipes = case["kwargs"]
        for name, recipe in recipes.items():
            if recipe[0] != "ref":
                built[name] = build(recipe, built)

        def resolve(name, seen=()):  # a reference to a reference, a dropped or a cycle
            recipe = recipes.get(name)
            if recipe is None or name in seen:
                return None
            return resolve(recipe[1], seen + (name,)) if recipe[0] == "ref" else built[name]

        for name, recipe in recipes.items():
            if recipe[0] == "ref":
                built[name] = resolve(name)
        positional = case.get("positional", [])
        args = [built[n] for n in positional] + [build(r, built) for r in case.get("args", [])]
        kwargs = {k: v for k, v in built.items() if k not in positional}
        allowed = ALLOWED + ((Boom,) if case.get("boom") else ())
        inplace = [k for k in case.get("inplace", []) if isinstance(built.get(k), np.ndarray)]
        expect = case["expect"]
        if expect == "inplace_layout":  # refused unless the view happens to qualify
            expect = "ok" if all(_updatable(built[k]) for k in case["layout_inplace"]
                                 if k in built) else "raise"
        # (fake huge arrays are read-only views: there is nothing to compare, and no memory)
        inplace = [k for k in inplace if built[k].nbytes <= 1 << 26]
        before = {k: built[k].copy() for k in inplace}
        tracked = [o for o in args + list(kwargs.values())
                   if isinstance(o, (np.ndarray, list, Index, BoomSeq))
                   or (isinstance(o, tuple) and o)]
        refs = [sys.getrefcount(o) for o in tracked]
        parts = p = None
        try:
            if case.get("threads"):
                self.C.set_num_threads(case["threads"])
            result, error = self.call(fn, args, kwargs), None
        except BaseException as e:  # noqa: BLE001 - judged below
            result, error = None, e
        finally:
            self.restore()
        verdict = {"ok": True, "calls": 1,
                   "outcome": "returned" if error is None else type(error).__name__}

        def bad(msg):
            verdict["ok"] = False
            verdict["why"] = (verdict.get("why", "") + "; " + msg).lstrip("; ")

        if error is not None:
            verdict["raised"] = f"{type(error).__name__}: {str(error)[:300]}"
            if not isinstance(error, allowed):
                bad(f"raised {type(error).__name__}, not one of "
                    f"{', '.join(e.__name__ for e in allowed)}: {error!r}")
            elif expect == "ok":
                bad(f"a valid call raised {type(error).__name__}: {error}")
            for k in inplace:
                if built[k].tobytes() != before[k].tobytes():
                    bad(f"{k} was changed by a call that raised {type(error).__name__}")
        else:
            got = summarize(result)
            if expect == "raise":
                bad(f"expected an exception, got {got}")
            try:
                want = expected_results(fn, _bind(fn, args, kwargs))
            except Unparsable as e:
                want = None
                bad(f"accepted a hyperparameter the reference refuses: {e}")
            except Mismatch as e:
                want = None
                bad(str(e))
            except Exception as e:  # noqa: BLE001 - arguments the model cannot read
                want = None
                bad(f"accepted arguments the reference cannot read ({type(e).__name__}: {e})")
            if want is not None:
                norm = [(tuple(w[0]), np.dtype(w[1])) if isinstance(w, tuple) else w
                        for w in want]
                if got != norm:
                    bad(f"returned {got}, expected {norm}")
            parts = list(result) if isinstance(result, tuple) else [result]
            for p in parts:
                if isinstance(p, np.ndarray):
                    f = p.flags
                    if not (f.c_contiguous and f.aligned and f.writeable and f.owndata):
                        bad(f"returned an array with flags {dict(f)}")
                    if p.size and any(isinstance(o, np.ndarray) and np.may_share_memory(p, o)
                                      for o in tracked):
                        bad("returned an array sharing memory with an argument")
            if verdict["ok"] and case.get("compare"):
                verdict["calls"] += 1
                self._compare(case, fn, parts, built, bad)
        del result, error, parts, p  # (a loop variable would keep a reference)
        after = [sys.getrefcount(o) for o in tracked]
        if after != refs:
            bad(f"argument reference counts changed from {refs} to {after}: "
                f"{[type(o).__name__ for o in tracked]}")
        self.calls += verdict["calls"] - 1
        return verdict

    def _compare(self, case, fn, parts, kwargs, bad):
        """The same call with contiguous, aligned, native-order copies gives the same bits."""
        inplace = set(case.get("inplace", []))
        built: dict = {}
        plain = {}
        for name, recipe in case["kwargs"].items():
            if name in inplace or recipe[0] != "arr":
                plain[name] = build(recipe, built)
                built[name] = plain[name]
            else:
                v = kwargs[name]
                native = v.dtype.newbyteorder("=") if v.dtype.byteorder not in "=|" else v.dtype
                plain[name] = np.array(v, dtype=native, order="C")
        try:
            again = getattr(self.C, fn)(**plain)
        except BaseException as e:  # noqa: BLE001
            bad(f"succeeded on views but raised on contiguous copies: {e!r}")
            return
        again_parts = list(again) if isinstance(again, tuple) else [again]
        for i, (p, q) in enumerate(zip(parts, again_parts)):
            if not _same(p, q):
                bad(f"result {i} differs between views and contiguous copies")
        for name in inplace:
            if name in kwargs and isinstance(kwargs[name], np.ndarray):
                if not _same(kwargs[name], plain[name]):
                    bad(f"in-place {name} differs between views and contiguous copies")


def worker_main() -> None:
    """Serve cases on the pipe until stdin closes. Stray C-level prints go to stderr."""
    import faulthandler
    import resource

    faulthandler.enable()
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    channel_in = os.fdopen(os.dup(0), "rb")
    worker = Worker()
    # Warm up: start the OpenMP team and the BLAS buffers before the memory limit.
    C = worker.C
    x = np.ones((4, 3, 8, 8), np.float32)
    C.conv2d_forward(x, np.ones((2, 3, 3, 3), np.float32))
    C.linear_forward(np.ones((4, 5), np.float32), np.ones((3, 5), np.float32))
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vm + WORKER_HEADROOM
    if os.environ.get("WEITIAO_FUZZ_NO_RLIMIT") != "1":
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        header = channel_in.read(4)
        if len(header) < 4:
            return
        (size,) = struct.unpack("<I", header)
        case = pickle.loads(channel_in.read(size))
        if case.get("fn") == "__crash__":  # the harness's self-test
            import ctypes
            ctypes.string_at(0)
        try:
            verdict = worker.run(case)
        except BaseException as e:  # noqa: BLE001 - a harness error, reported as such
            verdict = {"ok": False, "why": f"harness error {type(e).__name__}: {e}", "calls": 0}
        data = pickle.dumps(verdict)
        channel_out.write(struct.pack("<I", len(data)) + data)
        channel_out.flush()


# ============================================================================ parent side

# Signatures of trouble in the worker's stderr.
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
           "On entry to", "libgomp:", "Fatal Python error", "Segmentation fault")


class WorkerProcess:
    """The parent's handle on the worker: send a case, get a verdict, restart after a crash."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.proc = None
        self.err = None
        self.err_pos = 0
        self.started = 0
        self.calls = 0

    def start(self):
        import weitiao

        package_dir = os.path.dirname(os.path.dirname(weitiao.__file__))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_dir, os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
        self.started += 1
        self.err = open(os.path.join(self.tmpdir, f"worker{self.started}.stderr"), "w+b")
        self.err_pos = 0
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=env)

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def new_stderr(self) -> str:
        self.err.flush()
        self.err.seek(self.err_pos)
        data = self.err.read()
        self.err_pos += len(data)
        return data.decode("utf-8", "replace")

    def _exchange(self, case: dict, timeout: float) -> dict:
        data = pickle.dumps(case)
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        out = self.proc.stdout
        header = self._read(out, 4, timeout)
        (size,) = struct.unpack("<I", header)
        return pickle.loads(self._read(out, size, timeout))

    @staticmethod
    def _read(stream, n: int, timeout: float) -> bytes:
        buf = b""
        deadline = time.monotonic() + timeout
        fd = stream.fileno()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def run(self, case: dict, timeout: float = CALL_TIMEOUT) -> dict:
        """The worker's verdict on ``case``; a crash or a hang becomes a failed verdict and
        the next case gets a fresh worker."""
        if self.proc is None:
            self.start()
        try:
            verdict = self._exchange(case, timeout)
        except TimeoutError:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return {"ok": False, "why": f"hung: no answer within {timeout:.0f} s", "calls": 1}
        except (EOFError, BrokenPipeError, struct.error):
            code = self.proc.wait()
            self.proc = None
            tail = self.new_stderr()[-3000:]
            return {"ok": False, "calls": 1, "crashed": code,
                    "why": f"the worker died (exit status {code}); its stderr ends:\n{tail}"}
        self.calls += verdict.get("calls", 1)
        report = self.new_stderr()
        if any(sig in report for sig in REPORTS):
            verdict = dict(verdict, ok=False,
                           why=f"{verdict.get('why', '')} stderr report:\n{report[-3000:]}")
        return verdict


# ---------------------------------------------------------------------------- strategies
# (hypothesis is imported here, not at the top, so the worker starts faster)

if "--worker" in sys.argv:
    st = None  # the worker only builds and calls
else:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

if st is not None:
    def A(draw, shape, fill="normal", dtype="float32"):
        return ("arr", dtype, tuple(int(s) for s in shape), fill, "c",
                draw(st.integers(0, 2**31 - 1)))

    def V(value):
        return ("val", value)

    def _dim(draw, lo=1, hi=4):
        return draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 7, 16])))

    def _pair_or_int(draw, a, b):
        if a == b and draw(st.booleans()):
            return a
        return draw(st.sampled_from([(a, b), [a, b]]))

    def conv_case(draw, fn, rng):
        g = draw(st.sampled_from([1, 1, 1, 2, 3]))
        depthwise = g > 1 and draw(st.booleans())
        cpg = 1 if depthwise else draw(st.integers(1, 3))
        c, oc = g * cpg, g * draw(st.integers(1, 3))
        kh, kw = draw(st.sampled_from([1, 1, 2, 3, 3, 5])), draw(st.sampled_from([1, 1, 2, 3, 5]))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        form = draw(st.sampled_from(["none", "int", "pair", "quad"]))
        p = [draw(st.integers(0, 2)) for _ in range(4)]
        if form == "none":
            pads, padding = (0, 0, 0, 0), None
        elif form == "int":
            pads, padding = (p[0],) * 4, p[0]
        elif form == "pair":
            pads, padding = (p[0], p[0], p[1], p[1]), (p[0], p[1])
        else:
            pads, padding = tuple(p), tuple(p)
        big = draw(st.sampled_from([0, 0, 0, 40]))
        h = max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]) + draw(st.integers(0, 4)) + big
        w = max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]) + draw(st.integers(0, 4))
        n = draw(st.integers(0, 3))
        oh = (h + pads[0] + pads[1] - (dh * (kh - 1) + 1)) // sh + 1
        ow = (w + pads[2] + pads[3] - (dw * (kw - 1) + 1)) // sw + 1
        kw_ = {}
        if draw(st.booleans()) or (sh, sw) != (1, 1):
            kw_["stride"] = V(_pair_or_int(draw, sh, sw))
        if padding is not None:
            kw_["padding"] = V(padding)
        if draw(st.booleans()) or (dh, dw) != (1, 1):
            kw_["dilation"] = V(_pair_or_int(draw, dh, dw))
        if g > 1 or draw(st.booleans()):
            kw_["groups"] = V(g)
        wshape, yshape, xshape = (oc, cpg, kh, kw), (n, oc, oh, ow), (n, c, h, w)
        if fn == "conv2d_forward":
            kw_.update(x=A(draw, xshape), weight=A(draw, wshape))
            if rng.random() < 0.7:
                kw_["bias"] = A(draw, (oc,)) if rng.random() < 0.8 else V(None)
        elif fn == "conv2d_backward_data":
            kw_.update(grad_out=A(draw, yshape), weight=A(draw, wshape),
                       input_shape=V(draw(st.sampled_from([tuple, list]))(xshape)))
        else:
            kw_.update(grad_out=A(draw, yshape), x=A(draw, xshape),
                       grad_weight=A(draw, wshape, "zeros"))
            if rng.random() < 0.7:
                kw_["grad_bias"] = A(draw, (oc,), "zeros") if rng.random() < 0.8 else V(None)
        return kw_

    def pool_case(draw, fn, rng):
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
        dh, dw = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) \
            if fn == "max_pool2d_forward" else (1, 1)
        stride = draw(st.sampled_from([None, "same", 1, 2, 3, (1, 2), (3, 1)]))
        sh, sw = (kh, kw) if stride in (None, "same") else _ints(stride, 2)
        ceil = draw(st.booleans())
        h = max(1, dh * (kh - 1) + 1 - 2 * ph) + draw(st.integers(0, 5)) \
            + draw(st.sampled_from([0, 0, 30]))
        w = max(1, dw * (kw - 1) + 1 - 2 * pw) + draw(st.integers(0, 5))
        n, c = draw(st.integers(0, 3)), draw(st.integers(1, 3))
        oh, ow = pool_out(h, kh, sh, ph, dh, ceil), pool_out(w, kw, sw, pw, dw, ceil)
        kw_ = {"kernel_size": V(_pair_or_int(draw, kh, kw))}
        if stride == "same":
            kw_["stride"] = V((kh, kw))
        elif stride is not None:
            kw_["stride"] = V(stride)
        if (ph, pw) != (0, 0) or draw(st.booleans()):
            kw_["padding"] = V(_pair_or_int(draw, ph, pw))
        if (dh, dw) != (1, 1):
            kw_["dilation"] = V(_pair_or_int(draw, dh, dw))
        if ceil or draw(st.booleans()):
            kw_["ceil_mode"] = V(ceil)
        if fn != "max_pool2d_forward" and draw(st.booleans()):
            kw_["count_include_pad"] = V(draw(st.booleans()))
        if fn == "avg_pool2d_backward":
            kw_.update(grad_out=A(draw, (n, c, oh, ow)), input_shape=V((n, c, h, w)))
        else:
            kw_["x"] = A(draw, (n, c, h, w))
        return kw_

    def bn_case(draw, fn, rng):
        n, c = draw(st.integers(0, 3)), draw(st.integers(1, 4))
        h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        if fn == "batch_norm2d_forward_train" and n * h * w < 2:
            n, h = max(n, 1), 2
        shape = (n, c, h, w)
        kw_ = {"x": A(draw, shape)}

        def opt(name, fill="normal", required=False):
            choice = rng.choice(["arr", "arr", "none", "absent"])
            if required or choice == "arr":
                kw_[name] = A(draw, (c,), fill)
            elif choice == "none":
                kw_[name] = V(None)

        if fn == "batch_norm2d_forward_train":
            for name, fill in (("weight", "normal"), ("bias", "normal"),
                               ("running_mean", "normal"), ("running_var", "pos")):
                opt(name, fill)
            if draw(st.booleans()):
                kw_["momentum"] = V(draw(st.floats(0, 1)))
            if draw(st.booleans()):
                kw_["eps"] = V(draw(st.floats(1e-8, 1.0)))
        elif fn == "batch_norm2d_forward_eval":
            for name, fill in (("weight", "normal"), ("bias", "normal")):
                choice = rng.choice(["arr", "arr", "none"])
                kw_[name] = A(draw, (c,), fill) if choice == "arr" else V(None)
            kw_["running_mean"] = A(draw, (c,))
            kw_["running_var"] = A(draw, (c,), "pos")
            if draw(st.booleans()):
                kw_["eps"] = V(draw(st.floats(1e-8, 1.0)))
        else:
            kw_["grad_out"] = A(draw, shape)
            kw_["weight"] = A(draw, (c,)) if rng.random() < 0.7 else V(None)
            kw_["mean"] = A(draw, (c,))
            kw_["invstd"] = A(draw, (c,), "pos")
            opt("grad_weight", "zeros")
            opt("grad_bias", "zeros")
            for name in ("training", "need_input_grad"):
                if draw(st.booleans()):
                    kw_[name] = V(draw(st.booleans()))
        return kw_

    def any_shape(draw):
        rank = draw(st.integers(0, 4))
        return tuple(draw(st.integers(0, 5)) for _ in range(rank))

    def elementwise_case(draw, fn, rng):
        shape = any_shape(draw)
        if fn in ("relu_forward", "relu6_forward"):
            return {"x": A(draw, shape)}
        if fn in ("relu_backward", "relu6_backward"):
            return {"grad_out": A(draw, shape), "y": A(draw, shape)}
        return {"a": A(draw, shape), "b": A(draw, shape)}

    def linear_case(draw, fn, rng):
        n, fin, fout = draw(st.integers(0, 4)), draw(st.integers(0, 6)), draw(st.integers(0, 5))
        if draw(st.integers(0, 9)) == 0:
            fin = 300
        kw_ = {"x": A(draw, (n, fin)), "weight": A(draw, (fout, fin))}
        if fn == "linear_forward":
            if rng.random() < 0.7:
                kw_["bias"] = A(draw, (fout,)) if rng.random() < 0.8 else V(None)
            return kw_
        kw_["grad_out"] = A(draw, (n, fout))
        for name, shape in (("grad_weight", (fout, fin)), ("grad_bias", (fout,))):
            choice = rng.choice(["arr", "arr", "none", "absent"])
            if choice == "arr":
                kw_[name] = A(draw, shape, "zeros")
            elif choice == "none":
                kw_[name] = V(None)
        if draw(st.booleans()):
            kw_["need_input_grad"] = V(draw(st.booleans()))
        return kw_

    def loss_case(draw, fn, rng):
        n, k = draw(st.integers(0, 5)), draw(st.integers(1, 6))
        dtype = draw(st.sampled_from(["int64", "int32", "int8", "uint8", "uint16", "uint64",
                                      "int16"]))
        kw_ = {"logits": A(draw, (n, k))}
        if fn == "cross_entropy":
            kw_["labels"] = A(draw, (n,), f"index:0:{k}", dtype)
        else:
            kw_["targets"] = A(draw, (n, k), "bits")
        if draw(st.booleans()):
            kw_["weight"] = A(draw, (k,), "pos")
        if draw(st.booleans()):
            kw_["label_smoothing"] = V(draw(st.floats(0, 1)))
        if draw(st.booleans()):
            kw_["need_grad"] = V(draw(st.booleans()))
        return kw_

    def dropout_case(draw, fn, rng):
        shape = any_shape(draw)
        p = draw(st.sampled_from([0.0, 0.5, 1.0, 0.1])) if draw(st.booleans()) \
            else draw(st.floats(0, 1))
        if fn == "dropout_forward":
            return {"x": A(draw, shape), "p": V(p), "seed": V(draw(st.integers(0, 2**64 - 1)))}
        return {"grad_out": A(draw, shape), "mask": A(draw, shape, "index:0:2", "uint8"),
                "p": V(p)}

    def sgd_case(draw, fn, rng):
        shape = any_shape(draw)
        momentum = draw(st.sampled_from([0.0, 0.0, 0.9, 0.5]))
        dampening = draw(st.sampled_from([0.0, 0.0, 0.1]))
        nesterov = momentum > 0 and dampening == 0 and draw(st.booleans())
        kw_ = {"param": A(draw, shape), "grad": A(draw, shape),
               "lr": V(draw(st.sampled_from([0.1, 0.0, 1e-3, 1])))}
        if momentum > 0 or rng.random() < 0.5:
            kw_["momentum_buffer"] = A(draw, shape, "zeros")
        for name, value in (("momentum", momentum), ("dampening", dampening),
                            ("nesterov", nesterov)):
            if value or draw(st.booleans()):
                kw_[name] = V(value)
        if draw(st.booleans()):
            kw_["weight_decay"] = V(draw(st.sampled_from([0.0, 1e-4, 0.5])))
        if draw(st.booleans()):
            kw_["first_step"] = V(draw(st.booleans()))
        return kw_

    BASES = {
        **{f: conv_case for f in ("conv2d_forward", "conv2d_backward_data",
                                  "conv2d_backward_weight")},
        **{f: pool_case for f in ("max_pool2d_forward", "avg_pool2d_forward",
                                  "avg_pool2d_backward")},
        **{f: bn_case for f in ("batch_norm2d_forward_train", "batch_norm2d_forward_eval",
                                "batch_norm2d_backward")},
        **{f: elementwise_case for f in ("relu_forward", "relu_backward", "relu6_forward",
                                         "relu6_backward", "add")},
        "linear_forward": linear_case, "linear_backward": linear_case,
        "cross_entropy": loss_case, "soft_cross_entropy": loss_case,
        "dropout_forward": dropout_case, "dropout_backward": dropout_case,
        "sgd_step": sgd_case,
    }

    def max_pool_backward_case(draw, fn, rng):
        n, c = draw(st.integers(0, 3)), draw(st.integers(1, 3))
        h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        oh, ow = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        return {"grad_out": A(draw, (n, c, oh, ow)),
                "indices": A(draw, (n, c, oh, ow), f"index:0:{h * w}",
                             draw(st.sampled_from(["int64", "int32", "uint16"]))),
                "input_shape": V((n, c, h, w))}

    def global_pool_case(draw, fn, rng):
        n, c = draw(st.integers(0, 3)), draw(st.integers(1, 4))
        h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        if fn == "global_avg_pool2d_forward":
            return {"x": A(draw, (n, c, h, w))}
        return {"grad_out": A(draw, (n, c, 1, 1)), "input_shape": V((n, c, h, w))}

    BASES["max_pool2d_backward"] = max_pool_backward_case
    BASES["global_avg_pool2d_forward"] = global_pool_case
    BASES["global_avg_pool2d_backward"] = global_pool_case

    # Values that are the wrong Python type for an array or a hyperparameter.
    WRONG_TYPES = [
        V(None), V("x"), V("abcd"), V(b"ab"), V(1.5), V(float("nan")), V(True), V(3),
        V(-1), V({}), V({"a": 1}), V([]), V([[1.0, 2.0], [3.0]]), V(["a", "b"]),
        V([1, None]), V(complex(1, 2)), V(2**70), V((1.0, 2)), V(range(4)),
        ("obj",), ("deep", 70), ("deep", 30), ("index", 2), ("index", 2**80), ("index_boom",),
        ("boom_seq", 2), ("boom_seq", 4), ("len_boom",), ("bool_boom",), ("float_boom",),
        V(np.float32(2.0)), V(np.int64(2)), V(np.bool_(True)), V(np.array(2)),
        V(np.array([2, 2])), V(np.uint64(2**64 - 1)), V(bytearray(b"\x01\x02")),
        V(b"\x00\x00\x80?"),
    ]
    # Absurd values for integer hyperparameters.
    ABSURD_INTS = [0, -1, -2**31, 2**31 - 1, 2**31, 2**32 + 1, 2**63 - 1, 2**63, 2**64,
                   -2**63, 10**30, -10**30, 65535, 65536, 65537, (65536, 1), (1, 65536),
                   (65536, 65536, 65536, 65536), (0, 0, 65536, 0), (1, 2**63), (2**31, 2**31),
                   (1,), (1, 2, 3), (1, 2, 3, 4, 5), ((1, 2), (3, 4))]
    ABSURD_FLOATS = [-1.0, 0.0, 1.0, 2.0, -0.0, float("nan"), float("inf"), float("-inf"),
                     1e308, -1e308, 5e-324, 10**400]
    BAD_DTYPES = ["float64", "float16", "int32", "int64", "uint8", "bool", "complex64",
                  "object", "U2", "M8[s]", "int8", "uint64"]

    def array_names(fn, kw_, roles=None):
        return [k for k, r in ROLES.get(fn, {}).items()
                if k in kw_ and kw_[k][0] == "arr" and (roles is None or r in roles)]

    def combine(current: str, new: str) -> str:
        """Expectations of two mutations together: any beats raise beats a layout check."""
        for level in ("any", "raise", "inplace_layout"):
            if level in (current, new):
                return level
        return "ok"

    INT_OUT_OF_RANGE = ("index:-5:0", "index:{k}:{k3}")

    @st.composite
    def cases(draw, fn):
        """One call of ``fn``: a valid call and 0-2 mutations, with what it must do."""
        if fn in NO_ARGS:
            args = draw(st.sampled_from([[], [], [], [V(1)], [V(None)]]))
            return {"fn": fn, "args": args, "kwargs": {},
                    "expect": "ok" if not args else "raise"}
        if fn in ONE_ARG:
            if fn == "set_num_threads":
                good = [V(1), V(2), V(3), ("index", 2), V(np.int64(2))]
                bad = [V(0), V(-1), V(1025), V(2**64), V(10**30), V(True)]
            elif fn == "set_winograd":
                good = [V(True), V(False)]
                bad = [V(1), V(0), V(None), V(np.bool_(True))]
            elif fn == "set_array_cache_limit":
                good = [V(0), V(1 << 20), V(2 << 30), V(2**62), ("index", 4096)]
                bad = [V(-1), V(-2**63), V(2**64), V(10**30), V(True)]
            else:
                good = [("handler_capsule",)]
                bad = [V(None), ("obj",), V(1)]
            choice = draw(st.sampled_from(["good", "good", "bad", "wrong", "arity"]))
            if choice == "good":
                args, expect = [draw(st.sampled_from(good))], "ok"
            elif choice == "bad":
                args, expect = [draw(st.sampled_from(bad))], "raise"
            elif choice == "wrong":
                args, expect = [draw(st.sampled_from(WRONG_TYPES))], "any"
            else:
                args, expect = draw(st.sampled_from([[], [V(1), V(2)]])), "raise"
            return {"fn": fn, "args": args, "kwargs": {}, "expect": expect,
                    "boom": any(uses_boom(a) for a in args)}
        if fn not in BASES:  # a function this file does not know yet: wrong-type calls only
            args = draw(st.lists(st.sampled_from(WRONG_TYPES), max_size=3))
            return {"fn": fn, "args": args, "kwargs": {}, "expect": "any",
                    "boom": any(uses_boom(a) for a in args)}

        rng = draw(st.randoms(use_true_random=True))
        kw_ = BASES[fn](draw, fn, rng)
        roles = ROLES[fn]
        inplace = [k for k, r in roles.items() if r == "inplace"]
        expect, compare, positional = "ok", False, False
        notes, layout_inplace = [], []
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            kind = rng.choice(
                ["layout", "layout", "values", "dtype", "rank", "shape", "wrong_type",
                 "absurd", "huge", "list", "alias", "missing", "extra", "positional",
                 "none"])
            arrays = array_names(fn, kw_)
            if kind in ("layout", "values", "dtype", "rank", "shape", "huge", "list",
                        "alias") and not arrays or kind in ("wrong_type", "missing",
                                                            "none") and not kw_:
                continue
            name = rng.choice(arrays) if arrays else None
            r = kw_.get(name)
            if kind == "layout":
                layout = rng.choice(LAYOUTS)
                kw_[name] = r[:4] + (layout,) + r[5:]
                if roles[name] == "inplace":
                    layout_inplace.append(name)
                    expect = combine(expect, "inplace_layout")
                else:
                    compare = True
            elif kind == "values":
                if roles[name] in ("in", "any") and r[1] == "float32":
                    kw_[name] = r[:3] + (rng.choice(FLOAT_FILLS),) + r[4:]
                elif roles[name] == "int" and r[3].startswith("index:"):
                    k = int(r[3].split(":")[2])
                    fill = rng.choice(INT_OUT_OF_RANGE + ("index:-100:100",))
                    fill = fill.format(k=k, k3=k + 3)
                    kw_[name] = r[:3] + (fill,) + r[4:]
                    sure = fill != "index:-100:100" and not r[1].startswith("uint")
                    expect = combine(expect, "raise" if sure and math.prod(r[2]) else "any")
                else:
                    kw_[name] = r[:3] + ("mixed",) + r[4:]
                    expect = "any"
            elif kind == "dtype":
                kw_[name] = r[:1] + (rng.choice(BAD_DTYPES),) + r[2:]
                expect = "any"
            elif kind in ("rank", "shape"):
                shape = list(r[2])
                if kind == "rank":
                    shape = shape + [1] if (rng.random() < 0.5 or not shape) else shape[:-1]
                elif shape:
                    i = rng.randrange(len(shape))
                    shape[i] = rng.choice([0, shape[i] + 1, max(shape[i] - 1, 0), shape[i] * 3])
                kw_[name] = r[:2] + (tuple(shape),) + r[3:]
                expect = "any"
            elif kind == "huge":
                rank = max(len(r[2]), 1)
                dtype = r[1] if r[1] in ("float32", "int64", "uint8") else "float32"
                if rng.random() < 0.5:  # a zero-stride view of one element
                    dims = [rng.choice([1, 2, 2**10, 2**16, 2**20])
                            for _ in range(rank)]
                    while math.prod(dims) * 8 >= 2**62:
                        dims[dims.index(max(dims))] //= 2**8
                    kw_[name] = ("fake", dtype, tuple(dims))
                else:  # an empty batch: the other dimensions cost nothing
                    dims = [0] + [rng.choice([1, 3, 2**20, 2**30, 2**31 - 1])
                                  for _ in range(rank - 1)]
                    while math.prod(d for d in dims if d) * 8 >= 2**62:
                        dims[dims.index(max(dims))] //= 2**8
                    kw_[name] = ("empty", dtype, tuple(dims))
                expect = "any"
            elif kind == "list":
                kw_[name] = ("list", r)
                if roles[name] in ("inplace", "mask"):
                    expect = combine(expect, "raise")  # must be arrays
                elif not r[2] or not math.prod(r[2]) or r[1] != "float32" and roles[name] != "int":
                    expect = "any"  # empty nested lists lose their shape; 0-d is a scalar
                # otherwise a list of the same numbers must give the same result
            elif kind == "alias":
                if len(arrays) < 2:
                    continue
                a, b = rng.sample(arrays, 2)
                kw_[a] = ("ref", b)
                expect = "any"
            elif kind == "wrong_type":
                kw_[rng.choice(sorted(kw_))] = rng.choice(WRONG_TYPES)
                expect = "any"
            elif kind == "absurd":
                names = SIGNATURES[fn][0] + SIGNATURES[fn][1]
                pool = [h for h in HYPERS.get(fn, []) if h in names] + \
                    [k for k, role in roles.items() if role == "shape"]
                if not pool:
                    continue
                target = rng.choice(pool)
                if roles.get(target) == "shape":
                    value = rng.choice([
                        (1, 1, 2**40, 2**40), (2**40, 2**40, 1, 1), (-1, 1, 1, 1),
                        (1, 1, 2**41, 1), (0, 1, 2**40, 2**40), (1, 1, 1), (1, 1, 1, 1, 1),
                        (1.0, 1, 1, 1), (2**63, 1, 1, 1), (1, 1, 4096, 4096), (1, 2**20, 1, 1),
                        (1, 1, 2**17, 2**17)])
                elif target in ("momentum", "eps", "label_smoothing", "p", "lr", "dampening",
                                "weight_decay"):
                    value = rng.choice(ABSURD_FLOATS)
                elif target == "seed":
                    value = rng.choice([-1, 2**64, 2**64 + 5, -2**63, 1.5])
                elif target in ("ceil_mode", "count_include_pad", "training", "need_input_grad",
                                "need_grad", "nesterov", "first_step"):
                    value = rng.choice([2, -1, "", "no", [], [0], 0.0])
                else:
                    value = rng.choice(ABSURD_INTS)
                kw_[target] = V(value)
                expect = "any"
            elif kind == "missing":
                del kw_[rng.choice(sorted(kw_))]
                expect = "any"
            elif kind == "extra":
                kw_["no_such_argument"] = V(1)
                expect = combine(expect, "raise")
            elif kind == "positional":
                positional = True
            elif kind == "none":
                kw_[rng.choice(sorted(kw_))] = V(None)
                expect = "any"
            uses_name = kind in ("layout", "values", "dtype", "rank", "shape", "huge", "list")
            notes.append(f"{kind} {name}" if uses_name else kind)
        names = []
        if positional:  # pass the leading parameters by position
            for n in SIGNATURES[fn][0]:
                if n not in kw_:
                    break
                names.append(n)
        return {"fn": fn, "kwargs": kw_, "positional": names, "expect": expect,
                "inplace": inplace, "layout_inplace": layout_inplace,
                "compare": compare and expect == "ok", "notes": notes,
                "boom": any(uses_boom(r) for r in kw_.values())}


# ============================================================================ tests

if __name__ != "__main__":
    import pytest

    from weitiao import _C

    def c_functions() -> list[str]:
        return sorted(n for n in dir(_C) if not n.startswith("_") and callable(getattr(_C, n)))

    def fuzz_budget() -> int:
        return int(os.environ.get("WEITIAO_FUZZ_CALLS", FUZZ_CALLS_DEFAULT))

    COUNTS: dict[str, dict[str, int]] = {}  # fn -> outcome ("returned", "ValueError"...) -> n
    FAILURES: list[str] = []

    @pytest.fixture(scope="module")
    def worker(tmp_path_factory):
        w = WorkerProcess(str(tmp_path_factory.mktemp("fuzz")))
        started = time.time()
        yield w
        w.stop()
        report = os.environ.get("WEITIAO_FUZZ_REPORT")
        if report:
            with open(report, "w") as f:
                json.dump({"calls": w.calls, "outcomes": COUNTS, "workers_started": w.started,
                           "seconds": round(time.time() - started, 1),
                           "budget": fuzz_budget(), "failures": FAILURES}, f, indent=1)

    def test_every_c_function_has_a_case_generator():
        """New functions in the methods table get only wrong-type calls until a generator
        for their valid calls is written here: this test names them."""
        known = set(BASES) | set(ONE_ARG) | set(NO_ARGS)
        assert not (set(c_functions()) - known), \
            f"weitiao._C functions without a valid-call generator: {set(c_functions()) - known}"

    @pytest.mark.parametrize("fn", c_functions())
    def test_fuzz(worker, fn):
        # The budget goes to the array functions; the others have few distinct calls, which
        # hypothesis soon runs out of.
        examples = max(3, math.ceil(fuzz_budget() / len(BASES)))
        if fn not in BASES:
            examples = min(examples, 100)

        @settings(max_examples=examples, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), print_blob=True)
        @given(case=cases(fn))
        def check(case):
            verdict = worker.run(case)
            outcomes = COUNTS.setdefault(fn, {})
            key = verdict.get("outcome", "crashed")
            outcomes[key] = outcomes.get(key, 0) + 1
            if not verdict["ok"]:
                FAILURES.append(f"{fn}: {verdict['why'][:500]}")
                pytest.fail(f"{fn}: {verdict['why']}\ncase: {case!r}", pytrace=False)

        check()

    def test_harness_turns_a_crash_into_a_failure(worker):
        # The self-test: a real segfault in the worker is reported, and the next call works.
        verdict = worker.run({"fn": "__crash__"})
        assert not verdict["ok"] and verdict.get("crashed"), verdict
        assert "Segmentation fault" in verdict["why"] or verdict["crashed"] < 0
        ok = worker.run({"fn": "relu_forward", "args": [], "inplace": [], "expect": "ok",
                         "kwargs": {"x": ("arr", "float32", (2, 3), "normal", "c", 0)}})
        assert ok["ok"], ok

    # ------------------------------------------------------------ size overflow, by hand
    # Shapes whose element counts, padded planes or workspaces overflow int64 or size_t, and
    # hyperparameters at the parser's limits. Fake huge arrays are zero-stride views of one
    # element or arrays with an empty batch, so none of them costs memory to build. Each must
    # raise ValueError/MemoryError (or succeed with the right shape) without allocating.

    def arr(shape, dtype="float32", fill="normal"):
        return ("arr", dtype, tuple(shape), fill, "c", 0)

    ONE = arr((1, 1, 1, 1))
    OVERFLOW_CASES = {
        # input_shape of 2^40 x 2^40: OH*OW would overflow int64 inside conv2d_shape_init
        "conv_backward_data_plane_2^80": ("conv2d_backward_data", dict(
            grad_out=ONE, weight=ONE, input_shape=("val", (1, 1, 2**40, 2**40)))),
        "conv_backward_data_plane_2^80_padded": ("conv2d_backward_data", dict(
            grad_out=ONE, weight=ONE, input_shape=("val", (1, 1, 2**40, 2**40)),
            padding=("val", 65536), stride=("val", 65536))),
        # an empty batch of 2^60 x 1 planes with 65536 padding left and right
        "conv_forward_empty_batch_tall_plane": ("conv2d_forward", dict(
            x=("empty", "float32", (0, 1, 2**60, 1)), weight=ONE,
            padding=("val", (0, 0, 65536, 65536)))),
        "conv_backward_weight_empty_batch_tall_plane": ("conv2d_backward_weight", dict(
            grad_out=("empty", "float32", (0, 1, 1, 1)),
            x=("empty", "float32", (0, 1, 2**60, 1)), grad_weight=arr((1, 1, 1, 1), fill="zeros"),
            padding=("val", (0, 0, 65536, 65536)))),
        # a zero-stride N*C*H*W of 2^50 elements: copying it must fail, not be attempted
        "conv_forward_fake_2^50_input": ("conv2d_forward", dict(
            x=("fake", "float32", (2**10, 2**10, 2**15, 2**15)), weight=ONE)),
        "relu_fake_2^60": ("relu_forward", dict(x=("fake", "float32", (2**30, 2**30)))),
        "add_fake_2^60": ("add", dict(a=("fake", "float32", (2**30, 2**30)),
                                     b=("fake", "float32", (2**30, 2**30)))),
        "linear_forward_fake_rows": ("linear_forward", dict(
            x=("fake", "float32", (2**40, 4)), weight=arr((3, 4)))),
        "linear_forward_in_above_int32": ("linear_forward", dict(
            x=("empty", "float32", (0, 2**31)), weight=("empty", "float32", (0, 2**31)))),
        "cross_entropy_fake_labels": ("cross_entropy", dict(
            logits=("fake", "float32", (2**40, 3)), labels=("fake", "int64", (2**40,)))),
        "batch_norm_fake": ("batch_norm2d_forward_eval", dict(
            x=("fake", "float32", (2**20, 1, 2**20, 2**10)), weight=("val", None),
            bias=("val", None), running_mean=arr((1,)), running_var=arr((1,), fill="pos"))),
        "dropout_fake": ("dropout_forward", dict(x=("fake", "float32", (2**25, 2**25)),
                                                 p=("val", 0.5), seed=("val", 1))),
        # padding at the parser's limit on a 1x1 input: the output plane exceeds the BLAS
        "conv_padding_65536": ("conv2d_forward", dict(x=ONE, weight=ONE, padding=("val", 65536))),
        # ... and one just inside it: 40001^2 outputs, 6.4 GB, must be a MemoryError here
        "conv_padding_20000": ("conv2d_forward", dict(x=ONE, weight=ONE, padding=("val", 20000))),
        "conv_dilation_65536": ("conv2d_forward", dict(
            x=arr((1, 1, 3, 3)), weight=arr((1, 1, 2, 2)), dilation=("val", 65536),
            padding=("val", 65536))),
        "depthwise_padding_20000": ("conv2d_forward", dict(
            x=arr((1, 2, 1, 1)), weight=arr((2, 1, 1, 1)), groups=("val", 2),
            padding=("val", 20000))),
        "max_pool_kernel_65536": ("max_pool2d_forward", dict(
            x=ONE, kernel_size=("val", 65536), padding=("val", 32768), stride=("val", 1))),
        "max_pool_dilation_65536": ("max_pool2d_forward", dict(
            x=arr((1, 1, 5, 5)), kernel_size=("val", 3), dilation=("val", 65536),
            padding=("val", 1))),
        "max_pool_empty_batch_tall_plane": ("max_pool2d_forward", dict(
            x=("empty", "float32", (0, 1, 2**60, 1)), kernel_size=("val", 1),
            ceil_mode=("val", True), stride=("val", 65536))),
        "avg_pool_backward_plane_2^80": ("avg_pool2d_backward", dict(
            grad_out=ONE, input_shape=("val", (1, 1, 2**40, 2**40)), kernel_size=("val", 1),
            stride=("val", 65536))),
        "avg_pool_backward_64GB_grad_in": ("avg_pool2d_backward", dict(
            grad_out=arr((1, 1, 1, 1)), input_shape=("val", (1, 1, 2**17, 2**17)),
            kernel_size=("val", 1), stride=("val", 65536))),
        "global_pool_backward_4TB_grad_in": ("global_avg_pool2d_backward", dict(
            grad_out=ONE, input_shape=("val", (1, 1, 2**20, 2**20)))),
        "max_pool_backward_2^80": ("max_pool2d_backward", dict(
            grad_out=ONE, indices=arr((1, 1, 1, 1), "int64", "zeros"),
            input_shape=("val", (1, 1, 2**40, 2**40)))),
        "max_pool_backward_index_2^62": ("max_pool2d_backward", dict(
            grad_out=ONE, indices=("val", np.full((1, 1, 1, 1), 2**62)),
            input_shape=("val", (1, 1, 2, 2)))),
        "cross_entropy_label_2^63": ("cross_entropy", dict(
            logits=arr((1, 3)), labels=("val", np.array([2**63], np.uint64)))),
    }

    @pytest.mark.parametrize("name", sorted(OVERFLOW_CASES))
    def test_size_overflow(worker, name):
        fn, kwargs = OVERFLOW_CASES[name]
        verdict = worker.run({"fn": fn, "args": [], "kwargs": kwargs, "expect": "any",
                              "inplace": [k for k, r in ROLES[fn].items() if r == "inplace"]})
        assert verdict["ok"], verdict["why"]

    def test_workspace_size_cannot_wrap_with_many_threads(worker):
        # conv2d_workspace_size is threads * (columns + weight) floats. With 1024 threads, an
        # empty batch of 2^24-channel 2^16 x 2^16 planes and a (1, 2^24, 1, 1) stride-2 kernel
        # (64 MB, real) the columns are 2^54 floats a thread and the product passes 2^64.
        # The batch is empty, so the right answers are an empty output or MemoryError.
        verdict = worker.run({
            "fn": "conv2d_forward", "expect": "any", "threads": 1024, "kwargs": {
                "x": ("empty", "float32", (0, 2**24, 2**16, 2**16)),
                "weight": ("arr", "float32", (1, 2**24, 1, 1), "zeros", "c", 0),
                "stride": ("val", 2)}})
        assert verdict["ok"], verdict["why"]

    @pytest.mark.parametrize("fn, kwargs, name", [
        ("sgd_step", dict(grad=np.ones(4, np.float32), lr=0.5), "param"),
        ("linear_backward", dict(grad_out=np.ones((2, 3), np.float32),
                                 x=np.ones((2, 4), np.float32), weight=np.ones((3, 4), np.float32)),
         "grad_weight"),
    ])
    def test_inplace_byteswapped_arrays_are_refused(fn, kwargs, name):
        # The kernel would write native floats into them (found by this fuzz, now refused).
        shape = (4,) if name == "param" else (3, 4)
        target = np.ones(shape, ">f4")
        with pytest.raises(ValueError, match=rf"^{fn}: {name}: expected native byte order"):
            getattr(_C, fn)(**{name: target}, **kwargs)
        np.testing.assert_array_equal(target, np.ones(shape))


if __name__ == "__main__" and "--worker" in sys.argv:
    worker_main()
