"""Leaks at the C boundary: every entry of weitiao._C, called many times with valid arguments
and with arguments it refuses late (after converting its inputs, allocating its outputs or
running its kernel), leaves its inputs' reference counts, None's and the bools', the memory
Python traces and the process's resident size where they were.

``WEITIAO_LEAK_CALLS`` sets the calls per entry and path: 300 by default (a few seconds),
10000 for the long check recorded in docs/reliability.md (``scripts/fuzz_long.sh``).
"""
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

from weitiao import _C

CALLS = int(os.environ.get("WEITIAO_LEAK_CALLS", 300))
WARMUP = 30
# Python-traced memory may move by a few allocator blocks between two measurements; a leak
# of even one small array per call is CALLS * (>= 96 bytes) above this.
TRACED_SLACK = 4096
# Resident size moves with malloc's arenas and pages touched once; a leak of one 400-byte
# conv output per call is 4 MB over 10,000 calls.
RSS_SLACK = (2 << 20) if CALLS < 5000 else (1 << 20)
# Under AddressSanitizer (scripts/sanitize.sh) freed memory waits in ASan's quarantine, so
# resident size grows by design; the reference and traced-memory checks still hold.
if "libasan" in os.environ.get("LD_PRELOAD", ""):
    RSS_SLACK = 1 << 40


def f32(*shape, fill=None, seed=0):
    if fill is not None:
        return np.full(shape, fill, np.float32)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def strided(a):
    """A non-contiguous view of a copy of ``a``: the C code must copy it, then free the copy."""
    big = np.zeros(a.shape + (2,), a.dtype)
    big[..., 0] = a
    return big[..., 0]


def entries():
    """name -> (valid kwargs, kwargs refused late, the exception) for every keyword entry."""
    x, w, b = f32(2, 4, 6, 6), f32(6, 2, 3, 3, seed=1), f32(6, seed=2)
    conv = dict(stride=2, padding=(1, 0, 1, 1), groups=2)
    y = _C.conv2d_forward(x, w, b, **conv)
    pool = dict(kernel_size=3, stride=2, padding=1)
    ymax, idx = _C.max_pool2d_forward(x, **pool)
    yavg = _C.avg_pool2d_forward(x, **pool)
    c = x.shape[1]
    v = f32(3, 5, seed=3)
    _, mask = _C.dropout_forward(v, 0.5, 1)
    bad_idx = idx.copy()
    bad_idx.flat[-1] = 10**6
    return {
        "conv2d_forward": (dict(x=x, weight=w, bias=b, **conv),
                           dict(x=strided(x), weight=strided(w), bias=f32(5), **conv),
                           ValueError),
        "conv2d_backward_data": (dict(grad_out=y, weight=w, input_shape=x.shape, **conv),
                                 dict(grad_out=strided(y)[:1], weight=strided(w),
                                      input_shape=x.shape, **conv), ValueError),
        "conv2d_backward_weight": (
            dict(grad_out=y, x=x, grad_weight=np.zeros_like(w), grad_bias=np.zeros_like(b),
                 **conv),
            dict(grad_out=strided(y), x=strided(x), grad_weight=np.zeros_like(w),
                 grad_bias=np.zeros(5, np.float32), **conv), ValueError),
        "max_pool2d_forward": (dict(x=x, **pool), dict(x=strided(x), kernel_size=9),
                               ValueError),
        # the indices are checked by the kernel, after grad_in is allocated
        "max_pool2d_backward": (dict(grad_out=ymax, indices=idx, input_shape=x.shape),
                                dict(grad_out=strided(ymax), indices=bad_idx.astype(np.int32),
                                     input_shape=x.shape), ValueError),
        "avg_pool2d_forward": (dict(x=x, **pool), dict(x=strided(x), kernel_size=2, padding=2),
                               ValueError),
        "avg_pool2d_backward": (dict(grad_out=yavg, input_shape=x.shape, **pool),
                                dict(grad_out=strided(yavg)[:, :1], input_shape=x.shape,
                                     **pool), ValueError),
        "global_avg_pool2d_forward": (dict(x=x), dict(x=strided(x)[:, :, :0]), ValueError),
        "global_avg_pool2d_backward": (dict(grad_out=f32(2, 4, 1, 1), input_shape=x.shape),
                                       dict(grad_out=strided(f32(2, 4, 1, 2)),
                                            input_shape=x.shape), ValueError),
        "batch_norm2d_forward_train": (
            dict(x=x, weight=f32(c, fill=1), bias=f32(c, fill=0), running_mean=f32(c, fill=0),
                 running_var=f32(c, fill=1)),
            dict(x=strided(x), weight=strided(f32(c)), bias=f32(c, fill=0),
                 running_mean=f32(c, fill=0), running_var=f32(c + 1, fill=1)), ValueError),
        "batch_norm2d_forward_eval": (
            dict(x=x, weight=f32(c, fill=1), bias=f32(c, fill=0), running_mean=f32(c, fill=0),
                 running_var=f32(c, fill=1)),
            dict(x=strided(x), weight=strided(f32(c)), bias=None, running_mean=f32(c, fill=0),
                 running_var=f32(c + 1, fill=1)), ValueError),
        "batch_norm2d_backward": (
            dict(grad_out=x * 2, x=x, weight=f32(c, fill=1), mean=f32(c, fill=0),
                 invstd=f32(c, fill=1), grad_weight=f32(c, fill=0), grad_bias=f32(c, fill=0)),
            dict(grad_out=strided(x), x=strided(x), weight=strided(f32(c)), mean=f32(c),
                 invstd=f32(c), grad_weight=f32(c, fill=0), grad_bias=f32(c - 1, fill=0)),
            ValueError),
        "relu_forward": (dict(x=v), dict(x=v.astype(np.float64)), TypeError),
        "relu_backward": (dict(grad_out=v * 2, y=_C.relu_forward(v)),
                          dict(grad_out=strided(v)[:2], y=strided(v)), ValueError),
        "relu6_forward": (dict(x=v), dict(x=[[1.0, 2.0], [3.0]]), ValueError),
        "relu6_backward": (dict(grad_out=v * 2, y=_C.relu6_forward(v)),
                           dict(grad_out=strided(v)[:2], y=strided(v)), ValueError),
        "add": (dict(a=v, b=v * 2), dict(a=strided(v), b=strided(v)[:1]), ValueError),
        "linear_forward": (dict(x=f32(4, 5), weight=f32(3, 5, seed=1), bias=f32(3, fill=1)),
                           dict(x=strided(f32(4, 5)), weight=strided(f32(3, 5)), bias=f32(2)),
                           ValueError),
        "linear_backward": (
            dict(grad_out=f32(4, 3), x=f32(4, 5, seed=1), weight=f32(3, 5, seed=2),
                 grad_weight=f32(3, 5, fill=0), grad_bias=f32(3, fill=0)),
            dict(grad_out=strided(f32(4, 3)), x=strided(f32(4, 5)), weight=f32(3, 5),
                 grad_weight=f32(3, 5, fill=0), grad_bias=f32(4, fill=0)), ValueError),
        # labels are checked by the kernel, after the gradient is allocated
        "cross_entropy": (dict(logits=f32(4, 5), labels=np.array([0, 4, 2, 1])),
                          dict(logits=strided(f32(4, 5)), labels=np.array([0, 4, 2, 9], np.int32)),
                          ValueError),
        # targets and weights are checked by the kernel, after the gradient is allocated
        "soft_cross_entropy": (
            dict(logits=f32(4, 5), targets=f32(4, 5, fill=0.2), weight=f32(5, fill=1)),
            dict(logits=strided(f32(4, 5)), targets=f32(4, 5, fill=0.2),
                 weight=strided(f32(5, fill=-1))), ValueError),
        "dropout_forward": (dict(x=v, p=0.5, seed=1), dict(x=strided(v), p=1.5, seed=1),
                            ValueError),
        "dropout_backward": (dict(grad_out=v, mask=mask, p=0.5),
                             dict(grad_out=strided(v), mask=mask[:1], p=0.5), ValueError),
        "sgd_step": (dict(param=v.copy(), grad=v * 2, momentum_buffer=np.zeros_like(v), lr=0.1,
                          momentum=0.9),
                     dict(param=v.copy(), grad=strided(v)[:1], momentum_buffer=np.zeros_like(v),
                          lr=0.1, momentum=0.9), ValueError),
    }


def other_entries():
    """name -> (valid call, refused call, exception) for the entries without keywords."""
    threads = _C.get_num_threads()
    table = {
        "set_num_threads": (lambda: _C.set_num_threads(threads), lambda: _C.set_num_threads(0),
                            ValueError),
        "get_num_threads": (_C.get_num_threads, lambda: _C.get_num_threads(1), TypeError),
        "set_winograd": (lambda: _C.set_winograd(True), lambda: _C.set_winograd(1), TypeError),
        "get_winograd": (_C.get_winograd, lambda: _C.get_winograd(1), TypeError),
        "blas_info": (_C.blas_info, lambda: _C.blas_info(None), TypeError),
        "vector_isa": (_C.vector_isa, lambda: _C.vector_isa(None), TypeError),
    }
    if hasattr(_C, "array_cache_handler"):
        handler = _C.array_cache_handler()
        limit = _C.array_cache_info()["limit"]

        def swap_handler():
            previous = _C.set_array_handler(handler)
            _C.set_array_handler(previous)

        table.update({
            "array_cache_handler": (_C.array_cache_handler, lambda: _C.array_cache_handler(1),
                                    TypeError),
            "set_array_handler": (swap_handler, lambda: _C.set_array_handler(object()),
                                  TypeError),
            "array_cache_info": (_C.array_cache_info, lambda: _C.array_cache_info(1), TypeError),
            "array_cache_clear": (_C.array_cache_clear, lambda: _C.array_cache_clear(1),
                                  TypeError),
            "set_array_cache_limit": (lambda: _C.set_array_cache_limit(limit),
                                      lambda: _C.set_array_cache_limit(-1), ValueError),
        })
    return table


def test_every_entry_is_checked():
    names = {n for n in dir(_C) if not n.startswith("_") and callable(getattr(_C, n))}
    assert names == set(entries()) | set(other_entries())


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def repeat(call, n):
    for _ in range(n):
        call()


def measure(call, tracked, calls):
    """Run ``call`` ``calls`` times after a warm-up; return the changes it left behind.

    Everything is measured between the end of a traced warm-up and the end of the run, with
    the loop in one function used for both: one-off allocations (tracemalloc's bookkeeping,
    the interpreter specialising the loop, lazily created caches) fall before the first
    measurement."""
    repeat(call, WARMUP)
    tracemalloc.start()
    repeat(call, WARMUP)
    gc.collect()
    refs = [sys.getrefcount(o) for o in tracked]
    singletons = [sys.getrefcount(o) for o in (None, True, False)]
    rss_before = rss()
    traced_before = tracemalloc.get_traced_memory()[0]
    repeat(call, calls)
    gc.collect()  # (it empties the interpreter's free lists: do it at both ends)
    traced_after = tracemalloc.get_traced_memory()[0]
    rss_after = rss()
    singletons_after = [sys.getrefcount(o) for o in (None, True, False)]
    tracemalloc.stop()
    return {
        "refs": ([sys.getrefcount(o) for o in tracked], refs),
        "singletons": (singletons_after, singletons),
        "traced": traced_after - traced_before,
        "rss": rss_after - rss_before,
    }


RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Kernels on one thread: the boundary code is the same, and waking an OpenMP team for
    each tiny call would only make the loops slow on a busy machine."""
    import weitiao

    previous = weitiao.get_num_threads()
    weitiao.set_num_threads(1)
    yield
    weitiao.set_num_threads(previous)


@pytest.fixture(scope="module", autouse=True)
def report():
    """With WEITIAO_LEAK_REPORT=path.json, write every measurement there at the end."""
    yield
    path = os.environ.get("WEITIAO_LEAK_REPORT")
    if path:
        import json

        worst = {k: max(r[k] for r in RESULTS.values()) for k in ("traced", "rss")}
        with open(path, "w") as f:
            json.dump({"calls_per_test": CALLS, "tests": len(RESULTS), "worst": worst,
                       "results": RESULTS}, f, indent=1)


def assert_flat(change, what):
    RESULTS[what] = {"traced": change["traced"], "rss": change["rss"]}
    got, want = change["refs"]
    assert got == want, f"{what}: input reference counts went from {want} to {got}"
    got, want = change["singletons"]
    assert got == want, f"{what}: None/True/False reference counts went from {want} to {got}"
    assert change["traced"] <= TRACED_SLACK, \
        f"{what}: {change['traced']} bytes of Python-traced memory left after {CALLS} calls"
    assert change["rss"] <= RSS_SLACK, \
        f"{what}: resident size grew by {change['rss']} bytes over {CALLS} calls"


def swallow(fn, exc, kwargs):
    def call():
        try:
            fn(**kwargs)
        except exc:
            pass
        else:
            raise AssertionError(f"{fn.__name__} accepted {kwargs}")
    return call


@pytest.mark.parametrize("path", ["valid", "refused"])
@pytest.mark.parametrize("name", sorted(entries()))
def test_keyword_entry_does_not_leak(name, path):
    valid, refused, exc = entries()[name]
    fn = getattr(_C, name)
    kwargs = valid if path == "valid" else refused
    tracked = [v for v in kwargs.values() if isinstance(v, (np.ndarray, list, tuple))]
    if path == "valid":
        def call():
            fn(**kwargs)
    else:
        call = swallow(fn, exc, kwargs)
    assert_flat(measure(call, tracked, CALLS), f"{name} ({path})")


@pytest.mark.parametrize("path", ["valid", "refused"])
@pytest.mark.parametrize("name", sorted(other_entries()))
def test_other_entry_does_not_leak(name, path):
    valid, refused, exc = other_entries()[name]
    if path == "valid":
        call = valid
    else:
        def call():
            try:
                refused()
            except exc:
                pass
    assert_flat(measure(call, [], CALLS), f"{name} ({path})")


def test_arrays_from_the_array_cache_are_reused_not_leaked():
    import weitiao

    if not hasattr(weitiao, "array_cache"):
        pytest.skip("no array cache in this build")

    def call():
        with weitiao.array_cache():
            a = np.ones((512, 512), np.float32)  # 1 MiB: a cached size
            _C.relu_forward(a)

    change = measure(call, [], CALLS)
    assert change["rss"] <= RSS_SLACK + (2 << 20), change
    assert _C.array_cache_info()["held"] <= 4 << 20
