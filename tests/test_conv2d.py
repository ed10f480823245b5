"""conv2d_forward, conv2d_backward_data, conv2d_backward_weight against a NumPy reference,
float64 central differences and torch.nn.functional.conv2d."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_close, check_grad, f32
import weitiao
from weitiao import _C


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pad4(padding):
    """(top, bottom, left, right) from an int, (pad_h, pad_w) or a 4-tuple."""
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolution in float64: zero-pad explicitly, then for every kernel tap (i, j) add
    w[:, :, i, j] times the strided window of the padded input that tap sees."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    top, bottom, left, right = pad4(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, hp, wp = xp.shape
    oc, cg, kh, kw = w.shape
    assert cg * groups == c and oc % groups == 0
    ocg = oc // groups
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, oc, oh, ow))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * ocg:(g + 1) * ocg]
        for i in range(kh):
            for j in range(kw):
                window = xg[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                            j * dw:j * dw + sw * (ow - 1) + 1:sw]
                y[:, g * ocg:(g + 1) * ocg] += np.einsum("nchw,oc->nohw", window, wg[:, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


# (id, x shape, weight shape, stride, padding, dilation, groups, bias)
CASES = [
    ("3x3_pad1", (2, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1, 1, True),
    ("odd_sizes_5x3", (1, 5, 9, 11), (7, 5, 5, 3), 1, (2, 1), 1, 1, True),
    ("stride2_pad1", (2, 3, 9, 8), (5, 3, 3, 3), 2, 1, 1, 1, True),
    ("stride_2x1_pad_1x2_dil_1x2", (1, 2, 8, 9), (3, 2, 3, 3), (2, 1), (1, 2), (1, 2), 1, True),
    ("stride3_no_bias", (2, 3, 10, 11), (4, 3, 3, 2), 3, 0, 1, 1, False),
    ("dilation2", (2, 3, 9, 9), (4, 3, 3, 3), 1, 2, 2, 1, True),
    ("dilation2_stride2", (1, 4, 11, 10), (3, 4, 3, 3), 2, 1, 2, 1, True),
    ("groups2", (2, 4, 7, 7), (6, 2, 3, 3), 1, 1, 1, 2, True),
    ("groups2_stride2", (2, 6, 8, 7), (4, 3, 3, 3), 2, 1, 1, 2, False),
    ("depthwise", (2, 5, 7, 6), (5, 1, 3, 3), 1, 1, 1, 5, True),
    ("depthwise_stride2", (1, 6, 9, 8), (6, 1, 3, 3), 2, 1, 1, 6, True),
    ("depthwise_mult2", (2, 3, 7, 7), (6, 1, 3, 3), 1, 1, 1, 3, True),
    ("depthwise_mult2_stride2_dil2", (1, 3, 10, 9), (6, 1, 3, 3), 2, 2, 2, 3, False),
    ("depthwise_asym_pad", (1, 4, 7, 8), (4, 1, 3, 3), 2, (0, 1, 1, 1), 1, 4, True),
    # Several images make one stack of depthwise planes (see STACKED below): dilation, a
    # channel multiplier and asymmetric padding in the stacked layout.
    ("depthwise_stack_mult2_stride2_dil2", (3, 3, 10, 9), (6, 1, 3, 3), 2, 2, 2, 3, True),
    ("depthwise_stack_asym_pad", (3, 4, 7, 8), (4, 1, 3, 3), 2, (0, 1, 1, 1), 1, 4, True),
    ("asym_pad_same_s2", (2, 3, 8, 7), (4, 3, 3, 3), 2, (0, 1, 1, 1), 1, 1, True),
    ("asym_pad_bigger_than_kernel", (1, 2, 4, 5), (3, 2, 2, 2), 1, (3, 0, 0, 3), 1, 1, True),
    ("batch1_c10", (1, 10, 6, 5), (6, 10, 3, 3), 1, 1, 1, 1, True),
    ("stem_7x7_s2_p3", (1, 3, 11, 12), (4, 3, 7, 7), 2, 3, 1, 1, False),
    ("pointwise_fast_path", (2, 9, 5, 6), (5, 9, 1, 1), 1, 0, 1, 1, True),
    ("pointwise_groups2", (2, 6, 4, 5), (4, 3, 1, 1), 1, 0, 1, 2, True),
    ("pointwise_dilation2", (1, 3, 4, 4), (2, 3, 1, 1), 1, 0, 2, 1, False),
    ("1x1_stride2", (2, 5, 7, 8), (3, 5, 1, 1), 2, 0, 1, 1, True),
    ("1x1_pad1", (1, 3, 4, 5), (2, 3, 1, 1), 1, 1, 1, 1, True),
    ("kernel_covers_input", (2, 2, 3, 3), (3, 2, 3, 3), 1, 0, 1, 1, True),
    ("single_channel", (3, 1, 6, 5), (1, 1, 2, 3), 1, 0, 1, 1, True),
    # 3x3 stride-1 convs with 16 or more channels and 16 or more 4x4 output tiles in the
    # batch take the Winograd F(4x4, 3x3) path (the batches below are sized for that): odd
    # output sizes leave partial 4x4 tiles, padding 0, 1, 2 and asymmetric, one output pixel.
    # Output maps under 256 pixels put several images into one matrix product (up to each
    # thread's share of the batch, so the last tile is smaller here), pointwise ones too.
    ("tiles_of_images_stride2_groups", (9, 4, 9, 8), (6, 2, 3, 3), 2, 1, 1, 2, True),
    ("tiles_of_images_pointwise", (5, 6, 4, 5), (4, 6, 1, 1), 1, 0, 1, 1, True),
    ("winograd_pad1_odd_width", (4, 16, 7, 5), (16, 16, 3, 3), 1, 1, 1, 1, True),
    ("winograd_pad0_rect", (8, 16, 9, 6), (24, 16, 3, 3), 1, 0, 1, 1, False),
    ("winograd_asym_pad_17ch", (3, 17, 6, 9), (20, 17, 3, 3), 1, (2, 0, 1, 2), 1, 1, True),
    ("winograd_pad2_grows", (4, 16, 4, 3), (16, 16, 3, 3), 1, 2, 1, 1, False),
    ("winograd_single_output", (16, 16, 3, 3), (18, 16, 3, 3), 1, 0, 1, 1, True),
    ("winograd_wide_right_pad", (6, 16, 4, 3), (16, 16, 3, 3), 1, (1, 0, 2, 9), 1, 1, False),
    ("winograd_pad3_uses_im2col", (1, 16, 3, 4), (16, 16, 3, 3), 1, 3, 1, 1, False),
]
IDS = [c[0] for c in CASES]
# Small depthwise planes are stacked, several images one under another (up to 16,384 floats
# of padded plane; the small cases above are one stack): 11 images of 42x42 padded planes
# make stacks of 9 and 2; at stride 2 with 5x5 windows each image's block of rows is one
# longer than its windows read. Too many inputs for central differences: checked against
# the reference and PyTorch.
STACKED = [
    ("depthwise_partial_stack", (11, 3, 40, 40), (3, 1, 3, 3), 1, 1, 1, 3, True),
    ("depthwise_stack_stride2_5x5", (7, 4, 9, 9), (8, 1, 5, 5), 2, 2, 1, 4, False),
]
STACKED_IDS = [c[0] for c in STACKED]


def tolerance(case, expected):
    """The suite's float32 tolerances, except on the Winograd path: F(4x4, 3x3) adds and
    subtracts transformed values up to 100x larger than its inputs (interpolation points
    +-2), so its rounding error is about 1e-6 of the largest output rather than of each
    output, as in cuDNN's and oneDNN's Winograd convolutions."""
    if case[0].startswith("winograd"):
        return dict(atol=1e-5 * float(np.abs(expected).max()))
    return {}


def make_case(rng, case):
    _, xs, ws, stride, padding, dilation, groups, has_bias = case
    x = f32(rng.standard_normal(xs))
    w = f32(rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:])))
    b = f32(rng.standard_normal(ws[0])) if has_bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kw


@pytest.mark.parametrize("case", CASES + STACKED, ids=IDS + STACKED_IDS)
def test_forward_matches_reference(rng, case):
    x, w, b, kw = make_case(rng, case)
    ref = conv2d_ref(x, w, b, **kw)
    assert_close(_C.conv2d_forward(x, w, b, **kw), ref, **tolerance(case, ref))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_data_by_central_differences(rng, case):
    x, w, b, kw = make_case(rng, case)
    dy = f32(rng.standard_normal(conv2d_ref(x, w, b, **kw).shape))
    dx = _C.conv2d_backward_data(dy, w, x.shape, **kw)
    assert dx.dtype == np.float32
    check_grad(dx, lambda x64: np.sum(conv2d_ref(x64, w, b, **kw) * dy), x,
               **tolerance(case, dx))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_weight_and_bias_by_central_differences(rng, case):
    x, w, b, kw = make_case(rng, case)
    dy = f32(rng.standard_normal(conv2d_ref(x, w, b, **kw).shape))
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0], np.float32)
    assert _C.conv2d_backward_weight(dy, x, dw, db, **kw) is None
    check_grad(dw, lambda w64: np.sum(conv2d_ref(x, w64, b, **kw) * dy), w,
               **tolerance(case, dw))
    check_grad(db, lambda b64: np.sum(conv2d_ref(x, w, b64, **kw) * dy),
               np.zeros(w.shape[0]))


@pytest.mark.parametrize("case", CASES + STACKED, ids=IDS + STACKED_IDS)
def test_forward_and_backward_match_torch(rng, torch, case):
    F = torch.nn.functional
    x, w, b, kw = make_case(rng, case)
    top, bottom, left, right = pad4(kw["padding"])
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    # Asymmetric padding as TensorFlow's "SAME" does it: pad first, then an unpadded conv.
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=kw["stride"],
                  dilation=kw["dilation"], groups=kw["groups"])
    dy = f32(rng.standard_normal(tuple(yt.shape)))
    yt.backward(torch.tensor(dy))

    y_ref, dx_ref, dw_ref = yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()
    assert_close(_C.conv2d_forward(x, w, b, **kw), y_ref, **tolerance(case, y_ref))
    assert_close(_C.conv2d_backward_data(dy, w, x.shape, **kw), dx_ref,
                 **tolerance(case, dx_ref))
    dw, db = np.zeros_like(w), np.zeros(w.shape[0], np.float32)
    _C.conv2d_backward_weight(dy, x, dw, db if b is not None else None, **kw)
    assert_close(dw, dw_ref, **tolerance(case, dw_ref))
    if b is not None:
        assert_close(db, bt.grad.numpy())


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in (
    "3x3_pad1", "depthwise_mult2", "pointwise_fast_path", "groups2", "stride2_pad1",
    "winograd_pad1_odd_width")],
    ids=lambda c: c[0])
def test_backward_weight_adds_into_gradients(rng, case):
    x, w, b, kw = make_case(rng, case)
    dy = f32(rng.standard_normal(conv2d_ref(x, w, b, **kw).shape))
    dw, db = np.zeros_like(w), np.zeros(w.shape[0], np.float32)
    _C.conv2d_backward_weight(dy, x, dw, db, **kw)
    once_w, once_b = dw.copy(), db.copy()
    assert np.any(once_w != 0) and np.any(once_b != 0)
    _C.conv2d_backward_weight(dy, x, dw, db, **kw)
    assert_close(dw, 2 * once_w, **tolerance(case, once_w))
    assert_close(db, 2 * once_b)
    # Also on top of non-zero contents, without a bias gradient this time.
    start = f32(rng.standard_normal(w.shape))
    dw = start.copy()
    _C.conv2d_backward_weight(dy, x, dw, None, **kw)
    assert_close(dw, start + once_w, **tolerance(case, once_w))


# The im2col forward multiplies the columns of a few channels at a time (csrc/conv2d.c,
# BLOCK_FLOATS): 10 channels in 2 groups at 62x62 outputs go one channel per block; the 7x7
# stem-like case puts 2 images in each product and its 8 channels in blocks of 3, 3 and 2.
@pytest.mark.parametrize("case", [
    ("one_channel_blocks_groups2", (1, 10, 62, 62), (4, 5, 3, 3), 1, 2, 2, 2, True),
    ("uneven_blocks_tiled_images", (6, 8, 28, 28), (5, 8, 7, 7), 2, 3, 1, 1, False),
], ids=lambda case: case[0])
def test_forward_in_channel_blocks_matches_reference(rng, case):
    x, w, b, kw = make_case(rng, case)
    assert_close(_C.conv2d_forward(x, w, b, **kw), conv2d_ref(x, w, b, **kw))


@pytest.mark.parametrize("shape", [(5, 64, 64, 64), (33, 512, 7, 7)], ids=["5x64x64", "33x7x7"])
def test_winograd_batches_split_into_chunks_match_torch(rng, torch, shape):
    """Batches too large for one chunk of transformed tiles (csrc/winograd.c: 4 MB, or half
    the transformed filters up to 16 MB): no two 64x64 images with 64 channels fit, so 5 run
    one by one; 28 of 7x7 with 512 channels, so 33 run as 17 + 16."""
    F = torch.nn.functional
    c = shape[1]
    x = f32(rng.standard_normal(shape))
    w = f32(rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = F.conv2d(xt, wt, padding=1)
    dy = f32(rng.standard_normal(tuple(yt.shape)))
    yt.backward(torch.tensor(dy, dtype=torch.float64))

    def close(actual, expected):
        assert_close(actual, expected, **tolerance(("winograd",), expected))

    close(_C.conv2d_forward(x, w, padding=1), yt.detach().numpy())
    close(_C.conv2d_backward_data(dy, w, x.shape, padding=1), xt.grad.numpy())
    dw = np.zeros_like(w)
    _C.conv2d_backward_weight(dy, x, dw, None, padding=1)
    close(dw, wt.grad.numpy())


@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("where", [(1, 2, 3, 7), (0, 2, 7, 3)], ids=["column", "row"])
def test_depthwise_weight_gradient_ignores_inputs_no_window_reads(rng, bad, where):
    """8x8 planes, 3x3 windows at stride 2 without padding: column 7 and row 7 are never
    read, so an infinity or NaN there must not reach the weight gradient (the depthwise
    kernel's flat layout multiplies it by the zeros of an unused column; row 7 of the first
    image lies between the two stacked images' windows)."""
    x = f32(rng.standard_normal((2, 3, 8, 8)))
    x[where] = bad
    w = f32(rng.standard_normal((3, 1, 3, 3)))
    kw = dict(stride=2, padding=0, dilation=1, groups=3)
    dy = f32(rng.standard_normal((2, 3, 3, 3)))
    dw = np.zeros_like(w)
    _C.conv2d_backward_weight(dy, x, dw, None, **kw)
    # dw[c, 0, i, j] = sum over n, oh, ow of dy[n, c, oh, ow] * x[n, c, 2 oh + i, 2 ow + j]
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    expected = np.einsum("ncij,ncijkl->ckl", dy.astype(np.float64), windows)[:, None]
    assert np.all(np.isfinite(dw))
    assert_close(dw, expected)


def test_padding_forms_agree(rng):
    x = f32(rng.standard_normal((1, 2, 6, 7)))
    w = f32(rng.standard_normal((3, 2, 3, 3)))
    y_int = _C.conv2d_forward(x, w, padding=1)
    np.testing.assert_array_equal(_C.conv2d_forward(x, w, padding=(1, 1)), y_int)
    np.testing.assert_array_equal(_C.conv2d_forward(x, w, padding=(1, 1, 1, 1)), y_int)
    np.testing.assert_array_equal(_C.conv2d_forward(x, w, padding=[1, 1, 1, 1]), y_int)
    y_hw = _C.conv2d_forward(x, w, padding=(2, 0))
    assert y_hw.shape == (1, 3, 8, 5)
    np.testing.assert_array_equal(_C.conv2d_forward(x, w, padding=(2, 2, 0, 0)), y_hw)


def test_keyword_arguments_and_defaults(rng):
    x = f32(rng.standard_normal((2, 3, 5, 5)))
    w = f32(rng.standard_normal((4, 3, 3, 3)))
    y = _C.conv2d_forward(x=x, weight=w)
    assert y.shape == (2, 4, 3, 3) and y.dtype == np.float32
    assert_close(y, conv2d_ref(x, w))
    dx = _C.conv2d_backward_data(grad_out=y, weight=w, input_shape=[2, 3, 5, 5])
    assert dx.shape == x.shape


def test_zero_batch_gives_empty_outputs_and_leaves_gradients(rng):
    x = np.zeros((0, 3, 6, 6), np.float32)
    w = f32(rng.standard_normal((4, 3, 3, 3)))
    y = _C.conv2d_forward(x, w, f32(np.ones(4)), stride=2, padding=1)
    assert y.shape == (0, 4, 3, 3) and y.dtype == np.float32
    dx = _C.conv2d_backward_data(y, w, x.shape, stride=2, padding=1)
    assert dx.shape == x.shape
    dw, db = f32(np.ones(w.shape)), f32(np.ones(4))
    _C.conv2d_backward_weight(y, x, dw, db, stride=2, padding=1)
    np.testing.assert_array_equal(dw, 1.0)
    np.testing.assert_array_equal(db, 1.0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_shapes_match_reference(data):
    """Random small configurations, to reach combinations the table above does not list."""
    groups = data.draw(st.sampled_from([1, 1, 2, 3]), "groups")
    cg = data.draw(st.integers(1, 3), "C/groups")
    ocg = data.draw(st.integers(1, 3), "OC/groups")
    kh, kw_ = data.draw(st.integers(1, 4), "KH"), data.draw(st.integers(1, 4), "KW")
    dil = (data.draw(st.integers(1, 3), "dil_h"), data.draw(st.integers(1, 3), "dil_w"))
    stride = (data.draw(st.integers(1, 3), "stride_h"), data.draw(st.integers(1, 3), "stride_w"))
    pad = tuple(data.draw(st.integers(0, 3), f"pad{i}") for i in range(4))
    span_h, span_w = dil[0] * (kh - 1) + 1, dil[1] * (kw_ - 1) + 1
    h = data.draw(st.integers(max(1, span_h - pad[0] - pad[1]), span_h + 6), "H")
    w_ = data.draw(st.integers(max(1, span_w - pad[2] - pad[3]), span_w + 6), "W")
    n = data.draw(st.integers(0, 2), "N")
    seed = data.draw(st.integers(0, 2**32 - 1), "seed")
    rng = np.random.default_rng(seed)
    x = f32(rng.standard_normal((n, cg * groups, h, w_)))
    w = f32(rng.standard_normal((ocg * groups, cg, kh, kw_)))
    b = f32(rng.standard_normal(ocg * groups)) if seed % 2 else None
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    ref = conv2d_ref(x, w, None, **kw)
    # atol grows with the number of float32 products summed per output (C/groups*KH*KW).
    atol = 1e-5 * cg * kh * kw_
    y = _C.conv2d_forward(x, w, b, **kw)
    assert_close(y, ref if b is None else ref + b[None, :, None, None], atol=atol)

    # Both backward passes through the adjoint identity
    # <conv(x, w), dy> = <x, backward_data(dy, w)> = <w, backward_weight(dy, x)>,
    # exact for the float64 reference. The kernels' float32 rounding is bounded by a small
    # multiple of 2^-24 times the same sum over absolute values, hence the tolerance.
    dy = f32(rng.standard_normal(ref.shape))
    inner = np.sum(ref * dy)
    scale = np.sum(conv2d_ref(np.abs(x), np.abs(w), None, **kw) * np.abs(dy))
    dx = _C.conv2d_backward_data(dy, w, x.shape, **kw)
    dw = np.zeros_like(w)
    _C.conv2d_backward_weight(dy, x, dw, None, **kw)
    assert abs(np.sum(x.astype(np.float64) * dx) - inner) <= 1e-5 * scale + 1e-6
    assert abs(np.sum(w.astype(np.float64) * dw) - inner) <= 1e-5 * scale + 1e-6


WINOGRAD_CASES = [c for c in CASES if c[0].startswith("winograd")]


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=[c[0] for c in WINOGRAD_CASES])
def test_set_winograd_false_takes_the_direct_path_in_all_three_passes(rng, case):
    x, w, b, kw = make_case(rng, case)
    ref = conv2d_ref(x.astype(np.float64), w.astype(np.float64), b, **kw)
    dy = f32(rng.standard_normal(ref.shape))
    weitiao.set_winograd(False)
    try:
        y = _C.conv2d_forward(x, w, b, **kw)
        dx = _C.conv2d_backward_data(dy, w, x.shape, **kw)
        dw = np.zeros_like(w)
        _C.conv2d_backward_weight(dy, x, dw, None, **kw)
    finally:
        weitiao.set_winograd(True)
    assert weitiao.get_winograd() is True
    # The direct path's rounding is ~1e-7 of the largest value, ten times under Winograd's.
    assert np.abs(y - ref).max() <= 1e-6 * np.abs(ref).max()
    dx_fast = _C.conv2d_backward_data(dy, w, x.shape, **kw)
    dw_fast = np.zeros_like(w)
    _C.conv2d_backward_weight(dy, x, dw_fast, None, **kw)
    assert_close(dx, dx_fast, atol=1e-5 * float(np.abs(dx).max()))
    assert_close(dw, dw_fast, atol=1e-5 * float(np.abs(dw).max()))


@pytest.mark.parametrize("bad", [0, 1, "no", None])
def test_set_winograd_takes_only_a_bool(bad):
    with pytest.raises(TypeError, match="set_winograd: expected True or False"):
        weitiao.set_winograd(bad)
    assert weitiao.get_winograd() is True


def test_layer_plan_follows_the_input_shape_and_the_hyperparameters():
    """Conv2d derives its C arguments once per input shape; a new shape (which moves "same"
    padding) or a changed hyperparameter gives a new plan, never a stale one."""
    from weitiao.nn import Conv2d
    from weitiao.nn.conv import same_padding

    rng = np.random.default_rng(0)
    conv = Conv2d(3, 4, 3, stride=2, padding="same", rng=0)
    for size in (9, 8, 9):
        x = rng.standard_normal((1, 3, size, size), dtype=np.float32)
        pad = same_padding(size, 3, 2, 1) * 2
        expected = _C.conv2d_forward(x, conv.weight.data, conv.bias.data, stride=2,
                                     padding=(pad[0], pad[1], pad[0], pad[1]))
        np.testing.assert_array_equal(conv(x), expected)
    conv.padding, conv.stride = (0, 0), (1, 1)
    assert conv(x).shape == (1, 4, 7, 7)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\), got shape "
                                         r"\(1, 2, 9, 9\)"):
        conv(x[:, :2])


@pytest.mark.parametrize("case", WINOGRAD_CASES[:-1], ids=[c[0] for c in WINOGRAD_CASES[:-1]])
def test_winograd_cases_take_the_winograd_path(rng, case):
    """Each Winograd case really runs F(4x4, 3x3): its rounding differs from im2col's."""
    x, w, b, kw = make_case(rng, case)
    y = _C.conv2d_forward(x, w, b, **kw)
    weitiao.set_winograd(False)
    try:
        direct = _C.conv2d_forward(x, w, b, **kw)
    finally:
        weitiao.set_winograd(True)
    assert not np.array_equal(y, direct)


@pytest.mark.parametrize("shape", [(1, 64, 7, 7), (3, 32, 4, 4), (8, 512, 7, 7)])
def test_too_few_tiles_take_im2col(rng, shape):
    """Below 16 output tiles in the batch (128 at 512 channels), transforming the filters
    costs more than it saves (benchmarks/winograd_switch.py): im2col, bit for bit."""
    x = f32(rng.standard_normal(shape))
    w = f32(rng.standard_normal((shape[1], shape[1], 3, 3)) * 0.05)
    y = _C.conv2d_forward(x, w, None, padding=1)
    weitiao.set_winograd(False)
    try:
        np.testing.assert_array_equal(y, _C.conv2d_forward(x, w, None, padding=1))
    finally:
        weitiao.set_winograd(True)
