"""Shared helpers: for the tests of weitiao._C, and test images for the data transforms.

Each kernel is checked three ways (see STYLE.md, "Tests"): against a naive NumPy reference
written in its test file, by float64 central differences of that reference for the backward
passes, and against PyTorch through the ``torch`` fixture (those tests skip without torch).
"""
import numpy as np
import pytest
from PIL import Image

# Tolerances for float32 kernels on well-conditioned ops, stated once. Every test that passes
# other values says why in a comment.
RTOL = 1e-4
ATOL = 1e-5


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    """allclose in float64 with the suite's float32 tolerances, shapes compared exactly."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture
def rng():
    """A fresh, seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or skip the requesting test (and only it) when it is not installed."""
    return pytest.importorskip("torch")


def f32(a):
    """A C-contiguous float32 copy."""
    return np.ascontiguousarray(a, dtype=np.float32)


def numerical_grad(f, x, eps=1e-6):
    """d f / d x by float64 central differences, one element at a time.

    f maps a float64 array shaped like x to a float64 scalar; it must be smooth within eps of
    x, so callers build inputs away from the kinks of ReLU, max and clamp. In float64 with
    eps = 1e-6 the truncation error (~eps^2) and the rounding error (~1e-16 |f| / eps) are
    both far below the float32 tolerances the analytic gradient is compared with.
    """
    x = np.array(x, dtype=np.float64)  # a private copy, perturbed in place
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f(x)
        flat[i] = orig - eps
        minus = f(x)
        flat[i] = orig
        gflat[i] = (plus - minus) / (2.0 * eps)
    return grad


def check_grad(analytic, f, x, rtol=RTOL, atol=ATOL, eps=1e-6):
    """Asserts that the kernel's gradient ``analytic`` matches central differences of f at x."""
    assert_close(analytic, numerical_grad(f, x, eps=eps), rtol=rtol, atol=atol)


def spaced_values(rng, shape, gap=0.01):
    """Distinct float32 values at least ``gap`` apart, shuffled, centred on 0 and never within
    gap/2 of 0: no ties for max-pool and argmax, and no ReLU input near its kink."""
    n = int(np.prod(shape))
    values = (np.arange(n) - n // 2 + 0.5) * gap
    return f32(rng.permutation(values).reshape(shape))


def photo(h, w, mode="RGB", seed=0):
    """A random-noise PIL image of height h and width w."""
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode in ("RGB", "P") else (h, w)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    if mode == "P":
        return img.convert("P")
    return img.convert(mode) if img.mode != mode else img


def small_resnet18(size: int = 32):
    """A 'pretrained' ResNet-18 for FineTuner tests: random weights (rng 1), ImageNet's class
    names, and a config that takes ``size`` x ``size`` inputs."""
    from weitiao.models import resnet18

    model = resnet18(rng=1)
    model.config = model.config.resized(size)
    return model
