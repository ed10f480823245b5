"""The Python/C boundary: every function of weitiao._C refuses bad arguments with an exception
whose message says what was expected, accepts any view for its read-only inputs, and demands
writeable, aligned, C-contiguous float32 arrays for what it updates in place."""
import numpy as np
import pytest

from conftest import f32
from weitiao import _C

CONV = dict(stride=2, padding=(1, 0, 1, 1), dilation=1, groups=2)
POOL = dict(kernel_size=3, stride=2, padding=1)


def base_calls():
    """One valid keyword call of every function: name -> kwargs. Fresh arrays on each call."""
    rng = np.random.default_rng(0)
    x = f32(rng.standard_normal((2, 4, 6, 6)))
    w = f32(rng.standard_normal((6, 2, 3, 3)))
    b = f32(rng.standard_normal(6))
    y_conv = f32(rng.standard_normal(_C.conv2d_forward(x, w, b, **CONV).shape))
    y_max, idx = _C.max_pool2d_forward(x, **POOL)
    y_avg = _C.avg_pool2d_forward(x, **POOL)
    c = x.shape[1]
    v = f32(rng.standard_normal((3, 5)))
    mask = _C.dropout_forward(v, 0.5, 1)[1]
    return {
        "conv2d_forward": dict(x=x, weight=w, bias=b, **CONV),
        "conv2d_backward_data": dict(grad_out=y_conv, weight=w, input_shape=x.shape, **CONV),
        "conv2d_backward_weight": dict(grad_out=y_conv, x=x, grad_weight=np.zeros_like(w),
                                       grad_bias=np.zeros_like(b), **CONV),
        "max_pool2d_forward": dict(x=x, **POOL),
        "max_pool2d_backward": dict(grad_out=y_max, indices=idx, input_shape=x.shape),
        "avg_pool2d_forward": dict(x=x, **POOL),
        "avg_pool2d_backward": dict(grad_out=y_avg, input_shape=x.shape, **POOL),
        "global_avg_pool2d_forward": dict(x=x),
        "global_avg_pool2d_backward": dict(grad_out=f32(rng.standard_normal((2, 4, 1, 1))),
                                           input_shape=x.shape),
        "batch_norm2d_forward_train": dict(x=x, weight=f32(np.ones(c)), bias=f32(np.zeros(c)),
                                           running_mean=f32(np.zeros(c)),
                                           running_var=f32(np.ones(c)), momentum=0.1, eps=1e-5),
        "batch_norm2d_forward_eval": dict(x=x, weight=f32(np.ones(c)), bias=f32(np.zeros(c)),
                                          running_mean=f32(np.zeros(c)),
                                          running_var=f32(np.ones(c))),
        "batch_norm2d_backward": dict(grad_out=x * 2, x=x, weight=f32(np.ones(c)),
                                      mean=f32(np.zeros(c)), invstd=f32(np.ones(c)),
                                      grad_weight=f32(np.zeros(c)), grad_bias=f32(np.zeros(c))),
        "relu_forward": dict(x=v),
        "relu_backward": dict(grad_out=v * 2, y=_C.relu_forward(v)),
        "relu6_forward": dict(x=v),
        "relu6_backward": dict(grad_out=v * 2, y=_C.relu6_forward(v)),
        "add": dict(a=v, b=v * 2),
        "linear_forward": dict(x=f32(rng.standard_normal((4, 5))),
                               weight=f32(rng.standard_normal((3, 5))), bias=f32(np.ones(3))),
        "linear_backward": dict(grad_out=f32(rng.standard_normal((4, 3))),
                                x=f32(rng.standard_normal((4, 5))),
                                weight=f32(rng.standard_normal((3, 5))),
                                grad_weight=np.zeros((3, 5), np.float32),
                                grad_bias=np.zeros(3, np.float32)),
        "cross_entropy": dict(logits=f32(rng.standard_normal((4, 5))),
                              labels=np.array([0, 4, 2, 1]), weight=f32(np.ones(5))),
        "soft_cross_entropy": dict(logits=f32(rng.standard_normal((4, 5))),
                                   targets=f32(np.full((4, 5), 0.2)), weight=f32(np.ones(5))),
        "dropout_forward": dict(x=v, p=0.5, seed=1),
        "dropout_backward": dict(grad_out=v, mask=mask, p=0.5),
        "sgd_step": dict(param=v.copy(), grad=v * 2, momentum_buffer=np.zeros_like(v), lr=0.1,
                         momentum=0.9),
    }


# How each array argument is checked. in: float32 input of a fixed rank; any: float32 input
# whose rank sets the others'; opt_: None allowed; inplace: updated in place; int: integer
# input; mask: dropout's uint8 mask.
KINDS = {
    "conv2d_forward": {"x": "in", "weight": "in", "bias": "opt_in"},
    "conv2d_backward_data": {"grad_out": "in", "weight": "in"},
    "conv2d_backward_weight": {"grad_out": "in", "x": "in", "grad_weight": "inplace",
                               "grad_bias": "opt_inplace"},
    "max_pool2d_forward": {"x": "in"},
    "max_pool2d_backward": {"grad_out": "in", "indices": "int"},
    "avg_pool2d_forward": {"x": "in"},
    "avg_pool2d_backward": {"grad_out": "in"},
    "global_avg_pool2d_forward": {"x": "in"},
    "global_avg_pool2d_backward": {"grad_out": "in"},
    "batch_norm2d_forward_train": {"x": "in", "weight": "opt_in", "bias": "opt_in",
                                   "running_mean": "opt_inplace", "running_var": "opt_inplace"},
    "batch_norm2d_forward_eval": {"x": "in", "weight": "opt_in", "bias": "opt_in",
                                  "running_mean": "in", "running_var": "in"},
    "batch_norm2d_backward": {"grad_out": "in", "x": "in", "weight": "opt_in", "mean": "in",
                              "invstd": "in", "grad_weight": "opt_inplace",
                              "grad_bias": "opt_inplace"},
    "relu_forward": {"x": "any"},
    "relu_backward": {"grad_out": "in", "y": "any"},
    "relu6_forward": {"x": "any"},
    "relu6_backward": {"grad_out": "in", "y": "any"},
    "add": {"a": "any", "b": "in"},
    "linear_forward": {"x": "in", "weight": "in", "bias": "opt_in"},
    "linear_backward": {"grad_out": "in", "x": "in", "weight": "in",
                        "grad_weight": "opt_inplace", "grad_bias": "opt_inplace"},
    "cross_entropy": {"logits": "in", "labels": "int", "weight": "opt_in"},
    "soft_cross_entropy": {"logits": "in", "targets": "in", "weight": "opt_in"},
    "dropout_forward": {"x": "any"},
    "dropout_backward": {"grad_out": "any", "mask": "mask"},
    "sgd_step": {"param": "inplace_any", "grad": "in", "momentum_buffer": "opt_inplace"},
}
assert set(KINDS) == set(base_calls())


def args_where(predicate):
    return [pytest.param(fn, arg, id=f"{fn}-{arg}")
            for fn, kinds in KINDS.items() for arg, kind in kinds.items() if predicate(kind)]


FLOAT_ARGS = args_where(lambda k: k not in ("int", "mask"))
INPUT_ARGS = args_where(lambda k: "inplace" not in k)
INPLACE_ARGS = args_where(lambda k: "inplace" in k)
FIXED_RANK_ARGS = args_where(lambda k: "any" not in k)
REQUIRED_ARGS = args_where(lambda k: not k.startswith("opt_"))


def call(fn, **kwargs):
    return getattr(_C, fn)(**kwargs)


def call_with(fn, **overrides):
    kwargs = base_calls()[fn]
    kwargs.update(overrides)
    return call(fn, **kwargs)


def outcome(fn, kwargs):
    """Everything a call produces: its results and its in-place arguments afterwards."""
    result = call(fn, **kwargs)
    parts = list(result) if isinstance(result, tuple) else [result]
    parts += [kwargs[a] for a, k in KINDS[fn].items() if "inplace" in k]
    return parts


def assert_same_outcome(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
        else:
            assert g == w or (g is None and w is None)


# ---------------------------------------------------------------------------- the base calls


@pytest.mark.parametrize("fn", sorted(KINDS))
def test_base_call_works(fn):
    # Every test below changes one thing in these calls: they must succeed as they are.
    call(fn, **base_calls()[fn])


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32, np.float16])
@pytest.mark.parametrize("fn, arg", FLOAT_ARGS)
def test_float_arguments_refuse_other_dtypes(fn, arg, dtype):
    kwargs = base_calls()[fn]
    before = {a: kwargs[a].copy() for a, k in KINDS[fn].items() if "inplace" in k and a != arg}
    kwargs[arg] = kwargs[arg].astype(dtype)
    with pytest.raises(TypeError, match=rf"^{fn}: {arg}: expected a float32 array"):
        call(fn, **kwargs)
    for a, value in before.items():  # nothing was updated before the refusal
        np.testing.assert_array_equal(kwargs[a], value)


@pytest.mark.parametrize("fn, arg", args_where(lambda k: k == "int"))
def test_integer_arguments_refuse_floats(fn, arg):
    kwargs = base_calls()[fn]
    kwargs[arg] = kwargs[arg].astype(np.float32)
    with pytest.raises(TypeError, match=rf"^{fn}: {arg}: expected an integer array, got dtype"):
        call(fn, **kwargs)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int64, np.float32])
def test_dropout_mask_must_be_uint8(dtype):
    kwargs = base_calls()["dropout_backward"]
    kwargs["mask"] = kwargs["mask"].astype(dtype)
    with pytest.raises(TypeError, match=r"^dropout_backward: mask: expected the uint8 array"):
        call("dropout_backward", **kwargs)


# ---------------------------------------------------------------------------- ranks


@pytest.mark.parametrize("fn, arg", FIXED_RANK_ARGS)
@pytest.mark.parametrize("change", ["add_axis", "drop_axis"])
def test_wrong_rank(fn, arg, change):
    kwargs = base_calls()[fn]
    a = kwargs[arg]
    kwargs[arg] = np.ascontiguousarray(a[None] if change == "add_axis" else a[0])
    with pytest.raises(ValueError, match=rf"^{fn}: {arg}: expected (a \d-D array|shape)"):
        call(fn, **kwargs)


# ---------------------------------------------------------------------------- Python types


@pytest.mark.parametrize("fn, arg", REQUIRED_ARGS)
def test_none_for_a_required_array(fn, arg):
    with pytest.raises(TypeError, match=rf"^{fn}: {arg}: expected"):
        call_with(fn, **{arg: None})


@pytest.mark.parametrize("fn, arg", FLOAT_ARGS + args_where(lambda k: k in ("int", "mask")))
def test_dict_for_an_array(fn, arg):
    with pytest.raises(TypeError, match=rf"^{fn}: {arg}: expected"):
        call_with(fn, **{arg: {"a": 1}})


@pytest.mark.parametrize("fn, arg", FLOAT_ARGS + args_where(lambda k: k in ("int", "mask")))
def test_str_for_an_array(fn, arg):
    # NumPy's own message may answer first for a str that looks like a sequence of numbers.
    with pytest.raises((TypeError, ValueError),
                       match=rf"^{fn}: {arg}: expected|could not convert string to float"):
        call_with(fn, **{arg: "abc"})


def test_nested_lists_are_converted_like_arrays():
    kwargs = base_calls()["linear_forward"]
    want = call("linear_forward", **kwargs)
    got = _C.linear_forward(kwargs["x"].tolist(), kwargs["weight"].tolist(), kwargs["bias"].tolist())
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fn, overrides, exc, match", [
    ("conv2d_forward", dict(stride=None), TypeError, r"stride: expected an integer or 2 integers"),
    ("conv2d_forward", dict(stride="2"), TypeError, r"stride: expected an integer or 2 integers"),
    ("conv2d_forward", dict(stride=2.0), TypeError, r"stride: expected an integer or 2 integers"),
    ("conv2d_forward", dict(stride=(1, 2, 3)), TypeError, r"stride: expected an integer or 2 integers"),
    ("conv2d_forward", dict(stride={"h": 1}), TypeError, r"stride: expected an integer or 2 integers"),
    ("conv2d_forward", dict(dilation=(1.0, 1)), TypeError, r"dilation: expected integers"),
    ("conv2d_forward", dict(padding=None), TypeError, r"padding: expected an int, \(pad_h"),
    ("conv2d_forward", dict(padding=1.5), TypeError, r"padding: expected an int, \(pad_h"),
    ("conv2d_forward", dict(padding=(1, 1, 1)), TypeError, r"padding: expected an int, \(pad_h"),
    ("conv2d_forward", dict(padding={}), TypeError, r"padding: expected an int, \(pad_h"),
    ("conv2d_forward", dict(padding="same"), TypeError, r"padding: expected"),
    ("conv2d_forward", dict(padding=(1, 0, 1, "1")), TypeError, r"padding: expected integers"),
    ("conv2d_forward", dict(groups=None), TypeError, r"integer"),
    ("conv2d_forward", dict(groups=2.0), TypeError, r"integer"),
    ("conv2d_backward_data", dict(input_shape=None), TypeError, r"input_shape: expected a 4-tuple"),
    ("conv2d_backward_data", dict(input_shape=(2, 4, 6)), TypeError,
     r"input_shape: expected a 4-tuple"),
    ("conv2d_backward_data", dict(input_shape={}), TypeError, r"input_shape: expected a 4-tuple"),
    ("conv2d_backward_data", dict(input_shape=(2, 4, 6.0, 6)), ValueError,
     r"input_shape: expected 4 non-negative ints"),
    ("conv2d_backward_data", dict(input_shape="abcd"), ValueError,
     r"input_shape: expected 4 non-negative ints"),
    ("max_pool2d_forward", dict(kernel_size=None), TypeError,
     r"kernel_size: expected an integer or 2 integers"),
    ("max_pool2d_forward", dict(padding=(1, 1, 1, 1)), TypeError,
     r"padding: expected an integer or 2 integers"),
    ("max_pool2d_backward", dict(input_shape=[2, 4]), TypeError, r"input_shape: expected a 4-tuple"),
    ("avg_pool2d_backward", dict(input_shape=None), TypeError, r"input_shape: expected a 4-tuple"),
    ("global_avg_pool2d_backward", dict(input_shape=7), TypeError,
     r"input_shape: expected a 4-tuple"),
    ("batch_norm2d_forward_train", dict(momentum=None), TypeError, r"must be real number"),
    ("batch_norm2d_forward_eval", dict(eps="1e-5"), TypeError, r"must be real number"),
    ("cross_entropy", dict(label_smoothing=None), TypeError, r"must be real number"),
    ("dropout_forward", dict(p=None), TypeError, r"must be real number"),
    ("dropout_forward", dict(seed=None), TypeError, r"must be int"),
    ("dropout_forward", dict(seed="1"), TypeError, r"must be int"),
    ("dropout_backward", dict(p="0.5"), TypeError, r"must be real number"),
    ("sgd_step", dict(lr=None), TypeError, r"must be real number"),
    ("sgd_step", dict(momentum="0.9"), TypeError, r"must be real number"),
])
def test_wrong_types_for_other_arguments(fn, overrides, exc, match):
    with pytest.raises(exc, match=match):
        call_with(fn, **overrides)


def test_unknown_keyword_is_refused():
    with pytest.raises(TypeError, match="keyword argument"):
        call_with("conv2d_forward", strides=2)
    with pytest.raises(TypeError, match="keyword argument"):
        _C.relu_forward(x=np.ones(3, np.float32), inplace=True)


# ---------------------------------------------------------------------------- shapes


def conv_weight(shape):
    return np.ones(shape, np.float32)


@pytest.mark.parametrize("fn, overrides, match", [
    ("conv2d_forward", dict(weight=conv_weight((6, 4, 3, 3))),
     r"weight: expected shape \(OC, 2, KH, KW\) .* for 4 input channels and groups=2"),
    ("conv2d_forward", dict(groups=3), r"groups=3 must divide the input channels \(4\)"),
    ("conv2d_forward", dict(weight=conv_weight((5, 2, 3, 3)), bias=None),
     r"groups=2 must divide .* output channels \(5\)"),
    ("conv2d_forward", dict(weight=conv_weight((0, 2, 3, 3)), bias=None),
     r"weight: expected shape \(OC, 2, KH, KW\) with OC, KH, KW >= 1"),
    ("conv2d_forward", dict(weight=conv_weight((6, 2, 0, 3))),
     r"weight: expected shape \(OC, 2, KH, KW\) with OC, KH, KW >= 1"),
    ("conv2d_forward", dict(bias=np.ones(7, np.float32)), r"bias: expected shape \(6,\), got \(7,\)"),
    ("conv2d_forward", dict(weight=conv_weight((6, 2, 9, 3))),
     r"padded input \(7 x 8\) is smaller than the dilated kernel \(9 x 3\)"),
    ("conv2d_forward", dict(dilation=4), r"smaller than the dilated kernel \(9 x 9\)"),
    ("conv2d_backward_data", dict(grad_out=np.ones((2, 6, 3, 4), np.float32)),
     r"grad_out: expected shape \(2, 6, 3, 3\), got \(2, 6, 3, 4\)"),
    ("conv2d_backward_data", dict(input_shape=(2, 6, 6, 6)),
     r"weight: expected shape \(OC, 3, KH, KW\)"),
    ("conv2d_backward_weight", dict(grad_out=np.ones((2, 6, 4, 3), np.float32)),
     r"grad_out: expected shape \(2, 6, 3, 3\)"),
    ("conv2d_backward_weight", dict(grad_bias=np.zeros(5, np.float32)),
     r"grad_bias: expected shape \(6,\)"),
    ("conv2d_backward_weight", dict(grad_weight=np.zeros((6, 4, 3, 3), np.float32)),
     r"expected shape \(OC, 2, KH, KW\)"),
    ("max_pool2d_backward", dict(indices=np.zeros((2, 4, 3, 2), np.int64)),
     r"indices: expected shape \(2, 4, 3, 3\)"),
    ("max_pool2d_backward", dict(input_shape=(3, 4, 6, 6)),
     r"grad_out: expected N=3 and C=4 as in input_shape, got 2 and 4"),
    ("max_pool2d_backward", dict(input_shape=(2, 5, 6, 6)), r"grad_out: expected N=2 and C=5"),
    ("avg_pool2d_backward", dict(grad_out=np.ones((2, 4, 3, 2), np.float32)),
     r"grad_out: expected shape \(2, 4, 3, 3\)"),
    ("avg_pool2d_backward", dict(input_shape=(2, 4, 8, 6)),
     r"grad_out: expected shape \(2, 4, 4, 3\)"),
    ("global_avg_pool2d_backward", dict(grad_out=np.ones((2, 4, 2, 1), np.float32)),
     r"grad_out: expected shape \(2, 4, 1, 1\)"),
    ("global_avg_pool2d_backward", dict(input_shape=(2, 3, 6, 6)),
     r"grad_out: expected shape \(2, 3, 1, 1\)"),
    ("batch_norm2d_forward_train", dict(weight=np.ones(5, np.float32)),
     r"weight: expected shape \(4,\), got \(5,\)"),
    ("batch_norm2d_forward_train", dict(bias=np.ones(3, np.float32)), r"bias: expected shape \(4,\)"),
    ("batch_norm2d_forward_train", dict(running_var=np.ones(3, np.float32)),
     r"running_var: expected shape \(4,\)"),
    ("batch_norm2d_forward_eval", dict(running_mean=np.ones(5, np.float32)),
     r"running_mean: expected shape \(4,\)"),
    ("batch_norm2d_backward", dict(grad_out=np.ones((2, 4, 6, 5), np.float32)),
     r"grad_out: expected shape \(2, 4, 6, 6\)"),
    ("batch_norm2d_backward", dict(invstd=np.ones(3, np.float32)), r"invstd: expected shape \(4,\)"),
    ("batch_norm2d_backward", dict(grad_bias=np.zeros(5, np.float32)),
     r"grad_bias: expected shape \(4,\)"),
    ("relu_backward", dict(grad_out=np.ones((3, 4), np.float32)), r"grad_out: expected shape \(3, 5\)"),
    ("relu6_backward", dict(grad_out=np.ones((5, 3), np.float32)), r"grad_out: expected shape \(3, 5\)"),
    ("add", dict(b=np.ones((3, 4), np.float32)), r"b: expected shape \(3, 5\), got \(3, 4\)"),
    ("linear_forward", dict(weight=np.ones((3, 4), np.float32)),
     r"weight: expected shape \(3, 5\), got \(3, 4\)"),
    ("linear_forward", dict(bias=np.ones(4, np.float32)), r"bias: expected shape \(3,\)"),
    ("linear_backward", dict(grad_out=np.ones((4, 2), np.float32)), r"grad_out: expected shape \(4, 3\)"),
    ("linear_backward", dict(weight=np.ones((3, 4), np.float32)), r"weight: expected shape \(3, 5\)"),
    ("linear_backward", dict(grad_weight=np.zeros((3, 4), np.float32)),
     r"grad_weight: expected shape \(3, 5\)"),
    ("linear_backward", dict(grad_bias=np.zeros(2, np.float32)), r"grad_bias: expected shape \(3,\)"),
    ("cross_entropy", dict(labels=np.array([0, 1, 2, 3, 4])), r"labels: expected shape \(4,\), got \(5,\)"),
    ("cross_entropy", dict(labels=np.array([0, 1])), r"labels: expected shape \(4,\), got \(2,\)"),
    ("dropout_backward", dict(mask=np.ones((5, 3), np.uint8)), r"mask: expected shape \(3, 5\)"),
    ("sgd_step", dict(grad=np.ones((3, 4), np.float32)), r"grad: expected shape \(3, 5\)"),
    ("sgd_step", dict(momentum_buffer=np.zeros((5, 3), np.float32)),
     r"momentum_buffer: expected shape \(3, 5\)"),
])
def test_mismatched_shapes(fn, overrides, match):
    kwargs = base_calls()[fn]
    kwargs.update(overrides)
    before = {a: kwargs[a].copy() for a, k in KINDS[fn].items()
              if "inplace" in k and isinstance(kwargs.get(a), np.ndarray)}
    with pytest.raises(ValueError, match=rf"^{fn}: .*{match}"):
        call(fn, **kwargs)
    for a, value in before.items():  # a refused call updates nothing
        np.testing.assert_array_equal(kwargs[a], value)


@pytest.mark.parametrize("labels", [[0, 1, 5, 2], [-1, 0, 0, 0], [0, 0, 0, 2**40]])
def test_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"^cross_entropy: labels: expected class indices in \[0, 5\)"):
        call_with("cross_entropy", labels=np.array(labels, np.int64))


def test_uint64_labels_beyond_int64_are_out_of_range():
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 5\)"):
        call_with("cross_entropy", labels=np.array([0, 1, 2, 2**63 + 1], np.uint64))


@pytest.mark.parametrize("bad", [-1, 36, 10**12])
def test_max_pool_indices_out_of_range(bad):
    kwargs = base_calls()["max_pool2d_backward"]
    kwargs["indices"] = kwargs["indices"].copy()
    kwargs["indices"][1, 3, 2, 2] = bad
    with pytest.raises(ValueError,
                       match=r"^max_pool2d_backward: indices: expected flat positions in \[0, H\*W\) = \[0, 36\)"):
        call("max_pool2d_backward", **kwargs)


# ---------------------------------------------------------------------------- zero sizes


@pytest.mark.parametrize("fn", sorted(set(KINDS) - {"batch_norm2d_forward_train"}))
def test_zero_batch_works_and_gives_empty_results(fn):
    # Training batch norm needs values for its statistics: see the test after this one.
    kwargs = base_calls()[fn]
    empty = {}
    for arg, kind in KINDS[fn].items():
        a = kwargs[arg]
        # Batch-like leading axes become 0: NCHW tensors, (N, IN) matrices, labels, and the
        # elementwise functions' arrays. Per-channel and weight arrays keep their shapes.
        batched = a.ndim == 4 and arg not in ("weight", "grad_weight") or \
            fn in ("linear_forward", "linear_backward", "cross_entropy",
                   "soft_cross_entropy") and arg in (
                "x", "grad_out", "logits", "labels", "targets") or \
            fn in ("relu_forward", "relu_backward", "relu6_forward", "relu6_backward", "add",
                   "dropout_forward", "dropout_backward", "sgd_step")
        if batched:
            empty[arg] = np.ascontiguousarray(a[:0])
    if "input_shape" in kwargs:
        empty["input_shape"] = (0,) + tuple(kwargs["input_shape"][1:])
    kwargs.update(empty)
    result = call(fn, **kwargs)
    for r in (result if isinstance(result, tuple) else (result,)):
        if isinstance(r, np.ndarray):
            assert r.shape[0] == 0, r.shape


def test_training_batch_norm_refuses_an_empty_batch():
    x = np.zeros((0, 4, 6, 6), np.float32)
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel when training"):
        _C.batch_norm2d_forward_train(x)


def test_training_batch_norm_refuses_one_value_per_channel():
    x = np.ones((1, 4, 1, 1), np.float32)
    rm = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"^batch_norm2d_forward_train: expected more than 1 value per channel when training, got input shape \(1, 4, 1, 1\)"):
        _C.batch_norm2d_forward_train(x, running_mean=rm)
    np.testing.assert_array_equal(rm, 0.0)


def nchw_zero_cases():
    """(fn, overrides) with C, H or W of the NCHW input set to 0, for every NCHW function."""
    cases = []
    for axis, name in ((1, "C"), (2, "H"), (3, "W")):
        shape = [2, 4, 6, 6]
        shape[axis] = 0
        x = np.zeros(shape, np.float32)
        c = shape[1]
        per_c = np.zeros(c, np.float32)
        ones_c = np.ones(c, np.float32)
        cases += [
            (name, "conv2d_forward", dict(x=x)),
            (name, "conv2d_backward_data", dict(input_shape=tuple(shape))),
            (name, "conv2d_backward_weight", dict(x=x)),
            (name, "max_pool2d_forward", dict(x=x)),
            (name, "max_pool2d_backward", dict(input_shape=tuple(shape))),
            (name, "avg_pool2d_forward", dict(x=x)),
            (name, "avg_pool2d_backward", dict(input_shape=tuple(shape))),
            (name, "global_avg_pool2d_forward", dict(x=x)),
            (name, "global_avg_pool2d_backward", dict(input_shape=tuple(shape))),
            (name, "batch_norm2d_forward_train", dict(x=x, weight=None, bias=None,
                                                      running_mean=None, running_var=None)),
            (name, "batch_norm2d_forward_eval", dict(x=x, weight=None, bias=None,
                                                     running_mean=per_c, running_var=ones_c)),
            (name, "batch_norm2d_backward", dict(grad_out=x, x=x, weight=None, mean=per_c,
                                                 invstd=ones_c, grad_weight=None,
                                                 grad_bias=None)),
        ]
    return [pytest.param(fn, o, id=f"{fn}-{name}0") for name, fn, o in cases]


@pytest.mark.parametrize("fn, overrides", nchw_zero_cases())
def test_zero_channels_or_spatial_size_raise_value_error(fn, overrides):
    # Only the batch may be empty: C, H and W of an NCHW tensor must be >= 1, as in PyTorch.
    # The message text varies with what else the zero breaks; it always names the function.
    with pytest.raises(ValueError, match=rf"^{fn}: "):
        call_with(fn, **overrides)


# ---------------------------------------------------------------------------- hyperparameters

CONV_FNS = ["conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight"]
POOL_FNS = ["max_pool2d_forward", "avg_pool2d_forward", "avg_pool2d_backward"]


@pytest.mark.parametrize("fn", CONV_FNS + POOL_FNS)
@pytest.mark.parametrize("name, value, lo", [
    ("stride", 0, 1), ("stride", -1, 1), ("stride", 10**12, 1), ("stride", 10**100, 1),
    ("stride", -10**100, 1), ("stride", (1, 0), 1), ("stride", (2**31, 1), 1),
    ("padding", -1, 0), ("padding", 10**12, 0), ("padding", (0, -1), 0),
    ("padding", (0, 2**63), 0),
])
def test_negative_or_absurd_stride_and_padding(fn, name, value, lo):
    with pytest.raises(ValueError, match=rf"^{fn}: {name}: expected values in \[{lo}, 65536\]"):
        call_with(fn, **{name: value})


@pytest.mark.parametrize("fn", CONV_FNS)
@pytest.mark.parametrize("name, value, match", [
    ("padding", (0, 0, -1, 0), r"padding: expected values in \[0, 65536\]"),
    ("padding", (0, 10**12, 0, 0), r"padding: expected values in \[0, 65536\]"),
    ("dilation", 0, r"dilation: expected values in \[1, 65536\]"),
    ("dilation", 10**12, r"dilation: expected values in \[1, 65536\]"),
    ("groups", 0, r"groups: expected values in \[1, 65536\], got 0"),
    ("groups", -2, r"groups: expected values in \[1, 65536\], got -2"),
    ("groups", 10**6, r"groups: expected values in \[1, 65536\]"),
])
def test_bad_conv_hyperparameters(fn, name, value, match):
    with pytest.raises(ValueError, match=rf"^{fn}: {match}"):
        call_with(fn, **{name: value})


@pytest.mark.parametrize("fn", CONV_FNS)
def test_groups_too_large_for_a_c_long_is_refused(fn):
    with pytest.raises((OverflowError, ValueError)):
        call_with(fn, groups=10**30)


def test_huge_padding_within_the_limit_is_refused_not_allocated():
    # 65536 is accepted by the parser; the output plane would then exceed what sgemm's 32-bit
    # sizes take, and that must be an error, not a crash or a giant allocation.
    with pytest.raises(ValueError, match=r"^conv2d_forward: .*too large"):
        call_with("conv2d_forward", padding=65536)


@pytest.mark.parametrize("fn", ["max_pool2d_forward", "avg_pool2d_forward", "avg_pool2d_backward",
                                "max_pool2d_forward"])
@pytest.mark.parametrize("overrides, match", [
    (dict(kernel_size=0), r"kernel_size: expected values in \[1, 65536\]"),
    (dict(kernel_size=(3, -1)), r"kernel_size: expected values in \[1, 65536\]"),
    (dict(kernel_size=10**12), r"kernel_size: expected values in \[1, 65536\]"),
    (dict(padding=2), r"padding should be at most half the kernel size"),
    (dict(kernel_size=2, padding=(0, 2)), r"padding should be at most half the kernel size"),
    (dict(kernel_size=9, padding=0),
     r"the padded input \(6 x 6\) is smaller than the kernel window: the output would be empty"),
])
def test_bad_pool_hyperparameters(fn, overrides, match):
    with pytest.raises(ValueError, match=rf"^{fn}: {match}"):
        call_with(fn, **overrides)


@pytest.mark.parametrize("value", [0, -1, 10**12])
def test_bad_max_pool_dilation(value):
    with pytest.raises(ValueError, match=r"^max_pool2d_forward: dilation: expected values in"):
        call_with("max_pool2d_forward", dilation=value)


def test_avg_pool_has_no_dilation():
    with pytest.raises(TypeError, match="dilation"):
        call_with("avg_pool2d_forward", dilation=2)


@pytest.mark.parametrize("fn", ["conv2d_backward_data", "max_pool2d_backward",
                                "avg_pool2d_backward", "global_avg_pool2d_backward"])
@pytest.mark.parametrize("shape, exc, match", [
    ((2, -4, 6, 6), ValueError, r"input_shape: expected 4 non-negative ints"),
    ((2, 4, 6, 2**41), ValueError, r"input_shape: expected 4 non-negative ints"),
    ((2, 4, 6, 10**30), ValueError, r"input_shape: expected 4 non-negative ints"),
    ((2, 4, 2**40, 2**40), ValueError, r""),
])
def test_absurd_input_shapes(fn, shape, exc, match):
    with pytest.raises(exc, match=rf"^{fn}: {match}"):
        call_with(fn, input_shape=shape)


@pytest.mark.parametrize("fn, overrides, match", [
    ("batch_norm2d_forward_train", dict(eps=0.0), r"eps: expected a positive number"),
    ("batch_norm2d_forward_train", dict(eps=-1e-5), r"eps: expected a positive number"),
    ("batch_norm2d_forward_train", dict(eps=float("nan")), r"eps: expected a positive number"),
    ("batch_norm2d_forward_train", dict(eps=float("inf")), r"eps: expected a positive number"),
    ("batch_norm2d_forward_eval", dict(eps=0.0), r"eps: expected a positive number"),
    ("batch_norm2d_forward_train", dict(momentum=-0.1), r"momentum: expected a number in \[0, 1\]"),
    ("batch_norm2d_forward_train", dict(momentum=1.5), r"momentum: expected a number in \[0, 1\]"),
    ("batch_norm2d_forward_train", dict(momentum=float("nan")), r"momentum: expected a number"),
    ("dropout_forward", dict(p=-0.1), r"p: expected a probability in \[0, 1\]"),
    ("dropout_forward", dict(p=1.1), r"p: expected a probability in \[0, 1\]"),
    ("dropout_forward", dict(p=float("nan")), r"p: expected a probability in \[0, 1\]"),
    ("dropout_backward", dict(p=2.0), r"p: expected a probability in \[0, 1\]"),
    ("dropout_backward", dict(p=float("nan")), r"p: expected a probability in \[0, 1\]"),
    ("cross_entropy", dict(label_smoothing=-0.1), r"label_smoothing: expected a number in \[0, 1\]"),
    ("cross_entropy", dict(label_smoothing=1.5), r"label_smoothing: expected a number in \[0, 1\]"),
    ("cross_entropy", dict(label_smoothing=float("nan")), r"label_smoothing: expected a number"),
    ("cross_entropy", dict(logits=np.zeros((4, 0), np.float32)),
     r"logits: expected at least one class, got shape \(4, 0\)"),
])
def test_bad_scalar_hyperparameters(fn, overrides, match):
    kwargs = base_calls()[fn]
    kwargs.update(overrides)
    before = {a: kwargs[a].copy() for a, k in KINDS[fn].items()
              if "inplace" in k and isinstance(kwargs.get(a), np.ndarray)}
    with pytest.raises(ValueError, match=rf"^{fn}: {match}"):
        call(fn, **kwargs)
    for a, value in before.items():
        np.testing.assert_array_equal(kwargs[a], value)


@pytest.mark.parametrize("fn, overrides, match", [
    ("batch_norm2d_forward_train", dict(eps=-0.5), r"eps: expected a positive number, got -0\.5$"),
    ("batch_norm2d_forward_eval", dict(eps=0.0), r"eps: expected a positive number, got 0$"),
    ("batch_norm2d_forward_train", dict(momentum=1.5), r"momentum: .*, got 1\.5$"),
    ("dropout_forward", dict(p=1.25), r"p: expected a probability in \[0, 1\], got 1\.25$"),
    ("dropout_backward", dict(p=-2.0), r"p: expected a probability in \[0, 1\], got -2$"),
    ("cross_entropy", dict(label_smoothing=2.5), r"label_smoothing: .*, got 2\.5$"),
    ("sgd_step", dict(lr=-0.25), r"got lr=-0\.25 momentum=0\.9 weight_decay=0 dampening=0$"),
    ("sgd_step", dict(momentum=0.0, nesterov=True), r"got momentum=0 dampening=0$"),
])
def test_messages_show_the_offending_value(fn, overrides, match):
    with pytest.raises(ValueError, match=rf"^{fn}: .*{match}"):
        call_with(fn, **overrides)


# ---------------------------------------------------------------------------- views


def strided_view(a):
    """The same values, every other element of a buffer twice as large: not contiguous."""
    big = np.zeros(a.shape + (2,), a.dtype)
    big[..., 0] = a
    view = big[..., 0]
    assert not view.flags.c_contiguous
    return view


def fortran_view(a):
    view = np.asfortranarray(a)
    if a.ndim < 2 or a.shape[0] == 1:
        view = strided_view(a)
    assert not view.flags.c_contiguous
    return view


def reversed_view(a):
    """The same values through a negative stride."""
    view = np.ascontiguousarray(a[::-1])[::-1]
    if a.shape[0] == 1:
        view = strided_view(a)
    assert not view.flags.c_contiguous
    return view


def unaligned_view(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)
    view = buf[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    if a.dtype.alignment > 1:
        assert not view.flags.aligned
    return view


def readonly_view(a):
    view = a.copy()
    view.flags.writeable = False
    return view


VIEWS = [strided_view, fortran_view, reversed_view, unaligned_view, readonly_view]


@pytest.mark.parametrize("make_view", VIEWS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("fn, arg", INPUT_ARGS)
def test_inputs_may_be_any_view(fn, arg, make_view):
    want = outcome(fn, base_calls()[fn])
    kwargs = base_calls()[fn]
    kwargs[arg] = make_view(kwargs[arg])
    np.testing.assert_array_equal(kwargs[arg], base_calls()[fn][arg])
    assert_same_outcome(outcome(fn, kwargs), want)


def test_input_views_are_not_written_to():
    kwargs = base_calls()["relu_forward"]
    x = reversed_view(kwargs["x"])
    before = x.copy()
    _C.relu_forward(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("fn, arg", INPLACE_ARGS)
@pytest.mark.parametrize("make_view, exc, match", [
    (strided_view, ValueError, r"expected a C-contiguous, aligned array \(it is updated in place\)"),
    (fortran_view, ValueError, r"expected a C-contiguous, aligned array"),
    (reversed_view, ValueError, r"expected a C-contiguous, aligned array"),
    (unaligned_view, ValueError, r"expected a C-contiguous, aligned array"),
    (readonly_view, ValueError, r"expected a writeable array \(it is updated in place\), got a read-only one"),
    (lambda a: a.astype(np.float64), TypeError, r"expected a float32 array \(it is updated in place\), got dtype"),
    (lambda a: a.tolist(), TypeError, r"expected a writeable C-contiguous float32 numpy array \(it is updated in place\), got list"),
], ids=["strided", "fortran", "reversed", "unaligned", "readonly", "float64", "list"])
def test_inplace_arguments_must_be_writeable_contiguous_float32(fn, arg, make_view, exc, match):
    kwargs = base_calls()[fn]
    kwargs[arg] = make_view(kwargs[arg])
    before = {a: kwargs[a].copy() for a, k in KINDS[fn].items()
              if "inplace" in k and isinstance(kwargs[a], np.ndarray)}
    with pytest.raises(exc, match=rf"^{fn}: {arg}: {match}"):
        call(fn, **kwargs)
    for a, value in before.items():
        np.testing.assert_array_equal(kwargs[a], value)


def test_inplace_argument_is_updated_in_the_callers_array():
    kwargs = base_calls()["linear_backward"]
    dw = kwargs["grad_weight"]
    call("linear_backward", **kwargs)
    assert kwargs["grad_weight"] is dw and np.any(dw != 0)
