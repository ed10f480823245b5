"""Whether 3x3 stride-1 convolutions use Winograd's fast algorithm."""
from . import _C


def set_winograd(enabled: bool) -> None:
    """Let 3x3 stride-1 convolutions with 16 or more channels use Winograd F(4x4, 3x3)
    where the batch has enough output tiles to pay for it (16 4x4 tiles; 128 above
    256 x 256 channels).

    On by default: it ran those convolutions up to 3.8 times faster than the im2col path
    (AMD EPYC, AVX2, 2 threads; benchmarks/winograd_switch.py in docs/performance.md).
    Its price is rounding, about 1e-5 of a layer's largest output instead of 3e-7; through
    the 50 layers of a ResNet-50 that is about 3.5 times PyTorch's float32 gradient error
    (docs/performance.md). Turn it off to compare with another framework digit by digit.
    The setting applies to calls that start after it.

    >>> set_winograd(False); get_winograd()
    False
    >>> set_winograd(True)
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_winograd: expected True or False, got {type(enabled).__name__}")
    _C.set_winograd(enabled)


def get_winograd() -> bool:
    """Whether 3x3 stride-1 convolutions may use Winograd F(4x4, 3x3)."""
    return _C.get_winograd()
