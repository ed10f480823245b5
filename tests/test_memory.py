"""The array cache: NumPy arrays allocated from weitiao's block cache behave like any other,
freed blocks are reused, and the limit and clear work."""
import threading

import numpy as np
import pytest

import weitiao
from weitiao import _C

get_handler_name = pytest.importorskip("numpy._core.multiarray").get_handler_name


@pytest.fixture(autouse=True)
def fresh_cache():
    weitiao.clear_array_cache()
    yield
    weitiao.set_array_cache_limit(2 << 30)
    weitiao.clear_array_cache()


def test_arrays_from_the_cache_are_ordinary_arrays():
    with weitiao.array_cache():
        a = np.arange(1 << 20, dtype=np.float32)
        b = np.zeros((512, 1024), np.float32)
        c = a.reshape(1024, 1024) + 1
    assert get_handler_name(a) == get_handler_name(c) == "weitiao_block_cache"
    assert get_handler_name(np.empty(3)) != "weitiao_block_cache"
    assert a.ctypes.data % 64 == 0
    assert b.sum() == 0 and c[0, 0] == 1 and c[-1, -1] == (1 << 20)


def test_freed_large_blocks_are_kept_and_reused():
    with weitiao.array_cache():
        a = np.empty(1 << 20, np.float32)
        address = a.ctypes.data
        del a
        assert weitiao.array_cache_info()["held"] >= 4 << 20
        b = np.empty(1 << 20, np.float32)
        assert b.ctypes.data == address
        z = np.zeros(1 << 20, np.float32)  # calloc from a reused block is zeroed too
    assert not z.any()
    del b
    weitiao.clear_array_cache()
    assert weitiao.array_cache_info()["held"] == 0


def test_limit_zero_disables_keeping():
    weitiao.set_array_cache_limit(0)
    with weitiao.array_cache():
        a = np.empty(1 << 20, np.float32)
        del a
    assert weitiao.array_cache_info() == {"held": 0, "limit": 0}
    for bad in (-1, 10**30):  # below 0, and past what a long long holds
        with pytest.raises(ValueError, match="bytes >= 0"):
            weitiao.set_array_cache_limit(bad)
    with pytest.raises(TypeError, match="expected an int"):
        weitiao.set_array_cache_limit("1GB")


def test_handler_is_restored_after_the_block():
    before = get_handler_name()
    with weitiao.array_cache():
        assert get_handler_name() == "weitiao_block_cache"
    assert get_handler_name() == before
    with pytest.raises(TypeError, match="mem_handler capsule"):
        _C.set_array_handler(object())


def test_resize_keeps_contents():
    with weitiao.array_cache():
        a = np.arange(300_000, dtype=np.float32)
        a.resize(400_000, refcheck=False)
    assert a[299_999] == 299_999 and a[-1] == 0


def test_many_threads_allocating_and_freeing():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            with weitiao.array_cache():
                for _ in range(50):
                    n = int(rng.integers(1 << 16, 1 << 19))
                    a = np.full(n, seed, np.float32)
                    if not (a == seed).all():
                        errors.append(seed)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
