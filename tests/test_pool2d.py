"""Max, average and global average pooling against NumPy references, float64 central
differences and torch.nn.functional."""
import numpy as np
import pytest

from conftest import assert_close, check_grad, f32, spaced_values
from weitiao import _C


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's output length: floor (or ceil) of the number of window steps, and in ceil
    mode no window may start in the right padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool_ref(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Window maxima and their flat h*W+w positions, scanning each window row by row (the
    first of equal maxima wins, as in PyTorch). Padding never wins: it is not looked at."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw), (dh, dw) = pair(kernel), pair(padding), pair(dilation)
    sh, sw = pair(kernel if stride is None else stride)
    oh, ow = out_size(h, kh, sh, ph, dh, ceil_mode), out_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.empty((n, c, oh, ow))
    idx = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        rows = [r for r in (i * sh - ph + a * dh for a in range(kh)) if 0 <= r < h]
        for j in range(ow):
            cols = [q for q in (j * sw - pw + b * dw for b in range(kw)) if 0 <= q < w]
            window = x[:, :, rows][:, :, :, cols].reshape(n, c, -1)
            best = np.argmax(window, axis=2)
            y[:, :, i, j] = np.take_along_axis(window, best[..., None], axis=2)[..., 0]
            idx[:, :, i, j] = np.asarray(rows)[best // len(cols)] * w + np.asarray(cols)[
                best % len(cols)]
    return y, idx


def avg_pool_ref(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window means. With count_include_pad the divisor is the window clipped to the padded
    input (PyTorch's rule), else the number of real input elements in it."""
    x = np.asarray(x, np.float64)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = pair(kernel), pair(padding)
    sh, sw = pair(kernel if stride is None else stride)
    oh, ow = out_size(h, kh, sh, ph, 1, ceil_mode), out_size(w, kw, sw, pw, 1, ceil_mode)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        hs = i * sh - ph
        he = min(hs + kh, h + ph)
        for j in range(ow):
            ws = j * sw - pw
            we = min(ws + kw, w + pw)
            window = x[:, :, max(hs, 0):min(he, h), max(ws, 0):min(we, w)]
            divisor = (he - hs) * (we - ws) if count_include_pad else window[0, 0].size
            y[:, :, i, j] = window.sum(axis=(2, 3)) / divisor
    return y


# (id, x shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    ("k2_s2", (2, 3, 8, 8), 2, None, 0, 1, False),
    ("k3_s2_p1", (2, 3, 9, 10), 3, 2, 1, 1, False),
    ("k3_s1_p1_overlapping", (1, 4, 5, 6), 3, 1, 1, 1, False),
    ("odd_floor", (2, 3, 7, 9), 2, 2, 0, 1, False),
    ("odd_ceil", (2, 3, 7, 9), 2, 2, 0, 1, True),
    ("k3_s2_p1_ceil", (1, 2, 8, 8), 3, 2, 1, 1, True),
    # ceil_mode would add a window starting in the right padding here: it must be dropped.
    ("ceil_window_would_start_in_padding", (1, 2, 5, 9), (2, 4), (2, 4), (1, 2), 1, True),
    ("dilation2", (2, 2, 9, 9), 3, 2, 1, 2, False),
    ("dilation2_ceil", (1, 2, 10, 9), 3, 2, 1, 2, True),
    ("dilation_2x3", (1, 3, 8, 11), 2, 1, 0, (2, 3), False),
    ("non_square", (2, 3, 7, 8), (3, 2), (2, 1), (1, 0), 1, False),
    ("batch1_c10", (1, 10, 6, 6), 2, 2, 0, 1, False),
    ("kernel_is_input", (2, 2, 3, 3), 3, 1, 0, 1, False),
    ("k1_s2", (1, 2, 5, 5), 1, 2, 0, 1, False),
]
MAX_IDS = [c[0] for c in MAX_CASES]


def small(shape):
    """The case's spatial shape with one sample and at most two channels: enough for the
    central differences, which call the reference twice per input element."""
    return (1, min(shape[1], 2)) + tuple(shape[2:])


def max_kwargs(case):
    _, _, k, s, p, d, ceil = case
    return dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


def ref_max_kwargs(case):
    _, _, k, s, p, d, ceil = case
    return dict(kernel=k, stride=s, padding=p, dilation=d, ceil_mode=ceil)


@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_forward_matches_reference(rng, case):
    x = f32(rng.standard_normal(case[1]))
    y, idx = _C.max_pool2d_forward(x, **max_kwargs(case))
    y_ref, idx_ref = max_pool_ref(x, **ref_max_kwargs(case))
    assert y.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)  # a max copies an input: exact
    np.testing.assert_array_equal(idx, idx_ref)


def test_max_pool_forward_long_rows_with_ties_match_reference(rng):
    """Rows of 300 outputs (the kernel works through a row 256 outputs at a time) over values
    rounded to a few levels, so most windows hold tied maxima: the first one in scan order
    must win, as in the reference."""
    x = f32(np.round(rng.standard_normal((2, 3, 5, 600)) * 2) / 2)
    y, idx = _C.max_pool2d_forward(x, kernel_size=3, stride=2, padding=1)
    y_ref, idx_ref = max_pool_ref(x, kernel=3, stride=2, padding=1, dilation=1, ceil_mode=False)
    assert y.shape == (2, 3, 3, 300)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


def test_max_pool_forward_refuses_planes_past_32_bit_indices():
    """The kernel tracks each window's argmax as a 32-bit index into its plane: a plane of
    more than 2^31 - 1 elements (here an empty batch, so nothing is allocated) is refused."""
    x = np.empty((0, 1, 46341, 46341), np.float32)
    with pytest.raises(ValueError, match=r"^max_pool2d_forward: .*too large.*2\^31-1"):
        _C.max_pool2d_forward(x, kernel_size=2)


@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_backward_by_central_differences(rng, case):
    x = spaced_values(rng, small(case[1]))  # no ties: the max is differentiable everywhere here
    y, idx = _C.max_pool2d_forward(x, **max_kwargs(case))
    dy = f32(rng.standard_normal(y.shape))
    dx = _C.max_pool2d_backward(dy, idx, x.shape)
    check_grad(dx, lambda x64: np.sum(max_pool_ref(x64, **ref_max_kwargs(case))[0] * dy), x)


@pytest.mark.parametrize("case", MAX_CASES, ids=MAX_IDS)
def test_max_pool_matches_torch_including_indices(rng, torch, case):
    F = torch.nn.functional
    x = f32(rng.standard_normal(case[1]))
    _, _, k, s, p, d, ceil = case
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil, return_indices=True)
    dy = f32(rng.standard_normal(tuple(yt.shape)))
    yt.backward(torch.tensor(dy))
    y, idx = _C.max_pool2d_forward(x, **max_kwargs(case))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    assert_close(_C.max_pool2d_backward(dy, idx, x.shape), xt.grad.numpy())


def test_max_pool_ties_and_nan_follow_torch(rng, torch):
    F = torch.nn.functional
    x = f32(rng.integers(0, 3, size=(2, 3, 7, 7)))  # many equal maxima per window
    x[0, 0, 1, 1] = np.nan
    x[1, 2] = -np.inf
    for kw in (dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, stride=1)):
        y, idx = _C.max_pool2d_forward(x, **kw)
        yt, it = F.max_pool2d(torch.tensor(x), return_indices=True, **kw)
        np.testing.assert_array_equal(y, yt.numpy())  # NaN positions compare equal here
        np.testing.assert_array_equal(idx, it.numpy())
    y, idx = _C.max_pool2d_forward(x, 3, 2, 1)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 1, 1])  # NaN wins both windows
    assert idx[0, 0, 0, 0] == 1 * 7 + 1
    assert np.all(y[1, 2] == -np.inf)


def test_max_pool_window_without_input_matches_torch_and_backward_refuses(torch):
    # kernel 2, padding 1, dilation 3 on a 2x2 input: the only window's taps are rows/cols
    # -1 and 2, both outside. PyTorch returns -inf with an out-of-range index (6); the
    # backward must refuse that index instead of writing outside grad_in.
    F = torch.nn.functional
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    y, idx = _C.max_pool2d_forward(x, 2, 1, 1, 3)
    yt, it = F.max_pool2d(torch.tensor(x), 2, 1, 1, 3, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    with pytest.raises(ValueError, match=r"indices: expected flat positions in \[0, H\*W\)"):
        _C.max_pool2d_backward(np.ones_like(y), idx, x.shape)


def test_max_pool_backward_accepts_int32_indices_and_adds_shared_maxima(rng):
    x = spaced_values(rng, (1, 1, 4, 4))
    x[0, 0, 1, 1] = 100.0  # the max of every 3x3/stride-1 window that contains it
    y, idx = _C.max_pool2d_forward(x, 3, 1)
    assert np.all(idx == 5)
    dy = f32(rng.standard_normal(y.shape))
    dx = _C.max_pool2d_backward(dy, idx.astype(np.int32), x.shape)
    expected = np.zeros_like(x)
    expected[0, 0, 1, 1] = dy.sum()
    assert_close(dx, expected)


def test_max_pool_stride_defaults_to_kernel(rng):
    x = f32(rng.standard_normal((1, 2, 6, 6)))
    y_none, i_none = _C.max_pool2d_forward(x, 3)
    y_k, i_k = _C.max_pool2d_forward(x, 3, 3)
    assert y_none.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(y_none, y_k)
    np.testing.assert_array_equal(i_none, i_k)
    np.testing.assert_array_equal(_C.max_pool2d_forward(x, 3, None)[0], y_k)


# (id, x shape, kernel, stride, padding, ceil_mode)
AVG_CASES = [
    ("k2_s2", (2, 3, 8, 8), 2, None, 0, False),
    ("k3_s2_p1", (2, 3, 9, 10), 3, 2, 1, False),
    ("k3_s1_p1", (1, 4, 5, 6), 3, 1, 1, False),
    ("odd_ceil", (2, 3, 7, 9), 2, 2, 0, True),
    # The last window is [7, 10) but the padded input ends at 9: divisor 2*3 with the pad.
    ("k3_s2_p1_ceil_clipped_window", (1, 2, 8, 8), 3, 2, 1, True),
    ("ceil_window_would_start_in_padding", (1, 2, 5, 9), (2, 4), (2, 4), (1, 2), True),
    ("non_square", (2, 3, 7, 8), (3, 2), (2, 1), (1, 0), False),
    ("non_square_ceil", (1, 3, 7, 8), (3, 2), (2, 3), (1, 1), True),
    ("batch1_c10", (1, 10, 6, 6), 2, 2, 0, False),
    ("kernel_is_input", (2, 2, 3, 3), 3, 1, 0, False),
    ("k1_s2", (1, 2, 5, 5), 1, 2, 0, False),
]
AVG_IDS = [c[0] for c in AVG_CASES]


def avg_kwargs(case, include_pad):
    _, _, k, s, p, ceil = case
    return dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include_pad)


def ref_avg_kwargs(case, include_pad):
    _, _, k, s, p, ceil = case
    return dict(kernel=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include_pad)


@pytest.mark.parametrize("include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("case", AVG_CASES, ids=AVG_IDS)
def test_avg_pool_forward_matches_reference(rng, case, include_pad):
    x = f32(rng.standard_normal(case[1]))
    y = _C.avg_pool2d_forward(x, **avg_kwargs(case, include_pad))
    assert y.dtype == np.float32
    assert_close(y, avg_pool_ref(x, **ref_avg_kwargs(case, include_pad)))


@pytest.mark.parametrize("include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("case", AVG_CASES, ids=AVG_IDS)
def test_avg_pool_backward_by_central_differences(rng, case, include_pad):
    x = f32(rng.standard_normal(small(case[1])))
    kw = avg_kwargs(case, include_pad)
    dy = f32(rng.standard_normal(_C.avg_pool2d_forward(x, **kw).shape))
    dx = _C.avg_pool2d_backward(dy, x.shape, **kw)
    check_grad(dx, lambda x64: np.sum(avg_pool_ref(x64, **ref_avg_kwargs(case, include_pad)) * dy),
               x)


@pytest.mark.parametrize("include_pad", [True, False], ids=["include_pad", "exclude_pad"])
@pytest.mark.parametrize("case", AVG_CASES, ids=AVG_IDS)
def test_avg_pool_matches_torch(rng, torch, case, include_pad):
    F = torch.nn.functional
    x = f32(rng.standard_normal(case[1]))
    _, _, k, s, p, ceil = case
    xt = torch.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=include_pad)
    dy = f32(rng.standard_normal(tuple(yt.shape)))
    yt.backward(torch.tensor(dy))
    kw = avg_kwargs(case, include_pad)
    assert_close(_C.avg_pool2d_forward(x, **kw), yt.detach().numpy())
    assert_close(_C.avg_pool2d_backward(dy, x.shape, **kw), xt.grad.numpy())


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 10, 1, 1), (1, 1, 1, 13), (3, 2, 5, 4)])
def test_global_avg_pool(rng, torch, shape):
    F = torch.nn.functional
    x = f32(rng.standard_normal(shape) + 3.0)
    y = _C.global_avg_pool2d_forward(x)
    assert y.shape == shape[:2] + (1, 1) and y.dtype == np.float32
    assert_close(y, x.astype(np.float64).mean(axis=(2, 3), keepdims=True))

    dy = f32(rng.standard_normal(y.shape))
    dx = _C.global_avg_pool2d_backward(dy, x.shape)
    check_grad(dx, lambda x64: np.sum(x64.mean(axis=(2, 3), keepdims=True) * dy), x)

    xt = torch.tensor(x, requires_grad=True)
    yt = F.adaptive_avg_pool2d(xt, 1)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt.detach().numpy())
    assert_close(dx, xt.grad.numpy())


def test_global_avg_pool_equals_full_window_avg_pool(rng):
    x = f32(rng.standard_normal((2, 3, 5, 6)))
    assert_close(_C.global_avg_pool2d_forward(x), _C.avg_pool2d_forward(x, (5, 6)))


def test_zero_batch_gives_empty_outputs():
    x = np.zeros((0, 3, 6, 6), np.float32)
    y, idx = _C.max_pool2d_forward(x, 2)
    assert y.shape == idx.shape == (0, 3, 3, 3)
    assert _C.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    y = _C.avg_pool2d_forward(x, 3, 2, 1)
    assert y.shape == (0, 3, 3, 3)
    assert _C.avg_pool2d_backward(y, x.shape, 3, 2, 1).shape == x.shape
    y = _C.global_avg_pool2d_forward(x)
    assert y.shape == (0, 3, 1, 1)
    assert _C.global_avg_pool2d_backward(y, x.shape).shape == x.shape
