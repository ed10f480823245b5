"""Weight initialisation, PyTorch's formulas, with an explicit random generator.

Every function fills a Parameter or array in place and returns it; ``rng`` is a
``numpy.random.Generator``, a seed, or None for fresh entropy.

>>> w = np.empty((10, 4), dtype=np.float32)
>>> _ = xavier_uniform_(w, rng=0)
"""
from __future__ import annotations

import math

import numpy as np

from .module import Parameter


def as_generator(rng) -> np.random.Generator:
    """A Generator from a Generator, an int seed or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _array(t) -> np.ndarray:
    return t.data if isinstance(t, Parameter) else t


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel)."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {shape}")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def uniform_(t, a: float = 0.0, b: float = 1.0, rng=None):
    arr = _array(t)
    arr[...] = as_generator(rng).uniform(a, b, arr.shape)
    return t


def normal_(t, mean: float = 0.0, std: float = 1.0, rng=None):
    arr = _array(t)
    arr[...] = as_generator(rng).normal(mean, std, arr.shape)
    return t


def constant_(t, value: float):
    _array(t).fill(value)
    return t


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain: float = 1.0, rng=None):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    fan_in, fan_out = fans(_array(t).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, rng)


def xavier_normal_(t, gain: float = 1.0, rng=None):
    fan_in, fan_out = fans(_array(t).shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(shape, a, mode, nonlinearity) -> float:
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", rng=None):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015)."""
    bound = math.sqrt(3.0) * _kaiming_std(_array(t).shape, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", rng=None):
    return normal_(t, 0.0, _kaiming_std(_array(t).shape, a, mode, nonlinearity), rng)


def default_layer_init_(weight, bias, rng=None) -> None:
    """PyTorch's default for Conv2d and Linear: kaiming_uniform_(a=sqrt(5)) for the weight,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias."""
    gen = as_generator(rng)
    kaiming_uniform_(weight, a=math.sqrt(5), rng=gen)
    if bias is not None:
        fan_in, _ = fans(_array(weight).shape)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, gen)
