"""set_num_threads / get_num_threads, and kernels giving the same results on 1 and 2 threads.

Convolutions spread images over the threads when N > 1; the other kernels' loops go parallel
above WT_PARALLEL_MIN = 2^18 elements (csrc/common.h). The shapes here are chosen to be above
those thresholds, so with 2 threads the parallel code really runs."""
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import weitiao
from conftest import assert_close, f32
from weitiao import _C


@pytest.fixture(autouse=True)
def restore_threads():
    before = weitiao.get_num_threads()
    yield
    weitiao.set_num_threads(before)


def on_threads(n, fn):
    weitiao.set_num_threads(n)
    assert weitiao.get_num_threads() == n
    return fn()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_then_get(n):
    weitiao.set_num_threads(n)
    assert weitiao.get_num_threads() == n
    assert _C.get_num_threads() == n
    _C.set_num_threads(1)
    assert weitiao.get_num_threads() == 1


@pytest.mark.parametrize("bad", [True, 2.0, "2", None])
def test_python_wrapper_refuses_non_ints(bad):
    with pytest.raises(TypeError, match="set_num_threads: expected an int"):
        weitiao.set_num_threads(bad)


@pytest.mark.parametrize("bad", [0, -1, 1025, 10**30])
def test_out_of_range_counts_are_refused(bad):
    before = weitiao.get_num_threads()
    with pytest.raises(ValueError, match=r"set_num_threads: expected 1 to 1024 threads"):
        weitiao.set_num_threads(bad)
    with pytest.raises(ValueError, match=r"set_num_threads: expected 1 to 1024 threads"):
        _C.set_num_threads(bad)
    assert weitiao.get_num_threads() == before


def test_c_level_refuses_non_ints():
    with pytest.raises(TypeError, match="set_num_threads: expected an int, got str"):
        _C.set_num_threads("2")
    with pytest.raises(TypeError, match="set_num_threads: expected an int, got NoneType"):
        _C.set_num_threads(None)


def test_blas_info_names_openblas():
    info = _C.blas_info()
    assert set(info) == {"config", "corename"}
    assert "openblas" in info["config"].lower()
    assert info["corename"]


def same_on_1_and_2_threads(fn):
    one = on_threads(1, fn)
    two = on_threads(2, fn)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert_close(b, a)


# (id, x shape, weight shape, stride, padding, groups): one per conv path.
CONV_PATHS = [
    ("im2col", (4, 8, 18, 18), (12, 8, 3, 3), 1, 1, 1),
    ("im2col_odd_batch_groups_stride", (5, 8, 19, 19), (8, 4, 3, 3), 2, (0, 1, 1, 0), 2),
    # One image: the im2col and col2im loops themselves go parallel (288 x 1156 > 2^18).
    ("im2col_batch1", (1, 32, 34, 34), (8, 32, 3, 3), 1, 1, 1),
    ("depthwise", (4, 32, 34, 34), (64, 1, 3, 3), 1, 1, 32),
    ("pointwise", (3, 16, 20, 21), (24, 16, 1, 1), 1, 0, 1),
    # Small maps: several images per matrix product, as many as each thread's share.
    ("im2col_tiles_of_images", (7, 8, 9, 9), (12, 8, 3, 3), 2, 1, 1),
    ("pointwise_tiles_of_images", (5, 16, 7, 7), (8, 16, 1, 1), 1, 0, 1),
    ("winograd", (4, 16, 18, 18), (16, 16, 3, 3), 1, 1, 1),
]


@pytest.mark.parametrize("case", CONV_PATHS, ids=[c[0] for c in CONV_PATHS])
def test_conv_same_on_1_and_2_threads(rng, case):
    _, xs, ws, stride, padding, groups = case
    x = f32(rng.standard_normal(xs))
    w = f32(rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:])))
    b = f32(rng.standard_normal(ws[0]))
    kw = dict(stride=stride, padding=padding, groups=groups)
    dy = f32(rng.standard_normal(_C.conv2d_forward(x, w, b, **kw).shape))

    def run():
        dw, db = np.zeros_like(w), np.zeros_like(b)
        _C.conv2d_backward_weight(dy, x, dw, db, **kw)
        return (_C.conv2d_forward(x, w, b, **kw), _C.conv2d_backward_data(dy, w, x.shape, **kw),
                dw, db)

    same_on_1_and_2_threads(run)


def test_batchnorm_same_on_1_and_2_threads(rng):
    x = f32(rng.standard_normal((4, 8, 96, 96)) * 2 + 1)  # 294912 elements
    w, b = f32(rng.uniform(0.5, 1.5, 8)), f32(rng.standard_normal(8))
    dy = f32(rng.standard_normal(x.shape))

    def run():
        rm, rv = np.zeros(8, np.float32), np.ones(8, np.float32)
        y, mean, invstd = _C.batch_norm2d_forward_train(x, w, b, rm, rv)
        dw, db = np.zeros(8, np.float32), np.zeros(8, np.float32)
        dx = _C.batch_norm2d_backward(dy, x, w, mean, invstd, dw, db)
        y_eval = _C.batch_norm2d_forward_eval(x, w, b, rm, rv)
        dx_eval = _C.batch_norm2d_backward(dy, x, w, rm, f32(1 / np.sqrt(rv + 1e-5)),
                                           training=False)
        return y, mean, invstd, rm, rv, dx, dw, db, y_eval, dx_eval

    same_on_1_and_2_threads(run)


def test_pooling_and_elementwise_same_on_1_and_2_threads(rng):
    x = f32(rng.standard_normal((2, 16, 96, 96)))  # 294912 elements

    def run():
        y, idx = _C.max_pool2d_forward(x, 3, 2, 1)
        dx_max = _C.max_pool2d_backward(y, idx, x.shape)
        a = _C.avg_pool2d_forward(x, 3, 2, 1, count_include_pad=False)
        dx_avg = _C.avg_pool2d_backward(a, x.shape, 3, 2, 1, count_include_pad=False)
        g = _C.global_avg_pool2d_forward(x)
        r = _C.relu_forward(x)
        return (y, idx, dx_max, a, dx_avg, g, _C.global_avg_pool2d_backward(g, x.shape), r,
                _C.relu_backward(x, r), _C.relu6_forward(x * 4), _C.add(x, r))

    same_on_1_and_2_threads(run)


def test_dropout_mask_does_not_depend_on_thread_count(rng):
    x = f32(rng.standard_normal(300_000))
    y1, m1 = on_threads(1, lambda: _C.dropout_forward(x, 0.3, 42))
    y2, m2 = on_threads(2, lambda: _C.dropout_forward(x, 0.3, 42))
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)


def test_sgd_same_on_1_and_2_threads(rng):
    param, grad = f32(rng.standard_normal(300_000)), f32(rng.standard_normal(300_000))

    def run():
        p, buf = param.copy(), np.zeros_like(param)
        for step in range(3):
            _C.sgd_step(p, grad, buf, lr=0.1, momentum=0.9, weight_decay=1e-4,
                        first_step=step == 0)
        return p, buf

    same_on_1_and_2_threads(run)


FEWER_THREADS_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import weitiao
    from weitiao import _C

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 5, 6, 6)).astype(np.float32)

    def run():
        # Leave freed heap memory full of 1e30, so scratch that is read before it is
        # written shows in the result instead of happening to be zero.
        junk = [np.full(4096, 1e30, np.float32) for _ in range(64)]
        del junk
        dw = np.zeros_like(w)
        _C.conv2d_backward_weight(dy, x, dw)
        return [_C.conv2d_forward(x, w), _C.conv2d_backward_data(dy, w, x.shape), dw]

    weitiao.set_num_threads(1)
    want = run()
    weitiao.set_num_threads(2)
    errors = []
    for _ in range(3):
        errors.append([float(np.max(np.abs(a - b))) for a, b in zip(run(), want)])
    print(json.dumps(errors))
""")


def test_conv_correct_when_openmp_grants_fewer_threads_than_requested():
    # OpenMP may run a parallel region on fewer threads than num_threads asks for: under
    # OMP_THREAD_LIMIT, with OMP_DYNAMIC=true on a busy machine, or inside another parallel
    # region. Per-thread scratch must then not be summed unless a thread filled it.
    package_dir = os.path.dirname(os.path.dirname(weitiao.__file__))
    env = dict(os.environ, OMP_THREAD_LIMIT="1",
               PYTHONPATH=os.pathsep.join([package_dir, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", FEWER_THREADS_SCRIPT], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # Max absolute differences from the 1-thread run. The values are O(1)-O(10); a correct
    # kernel differs at most by float32 summation order, the bug by about 1e30.
    for forward, backward_data, backward_weight in json.loads(out.stdout):
        assert forward <= 1e-5 and backward_data <= 1e-5
        assert backward_weight <= 1e-4, "conv2d_backward_weight summed unwritten scratch"


def test_setting_applies_to_kernels_called_from_other_python_threads():
    # The count is documented as the kernels' thread count, not the calling thread's: a model
    # trained from a worker thread (a GUI, a data-loading pipeline) must honour it too.
    weitiao.set_num_threads(1)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(weitiao.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]


def test_concurrent_calls_from_python_threads_are_independent(rng):
    # The kernels release the GIL; calls running at the same time must not share scratch.
    weitiao.set_num_threads(2)
    xs = [f32(rng.standard_normal((3, 8, 12, 12))) for _ in range(4)]
    w = f32(rng.standard_normal((6, 8, 3, 3)))
    dy = f32(rng.standard_normal((3, 6, 12, 12)))

    def work(x):
        dw = np.zeros_like(w)
        _C.conv2d_backward_weight(dy, x, dw, padding=1)
        return _C.conv2d_forward(x, w, padding=1), _C.conv2d_backward_data(
            dy, w, x.shape, padding=1), dw

    want = [work(x) for x in xs]
    results = [None] * len(xs)

    def run(i):
        for _ in range(5):
            results[i] = work(xs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, expected in zip(results, want):
        for a, b in zip(got, expected):
            assert_close(a, b)
