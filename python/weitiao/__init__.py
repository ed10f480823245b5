"""weitiao (微调, "fine-tuning"): fine-tune pretrained CNNs on small image datasets on the
CPU, with a C core and NumPy arrays in and out.

``import weitiao`` loads only the C core and the thread and cache controls; the subpackages
(``weitiao.models``, ``weitiao.data``, ``weitiao.finetune``, ...) are imported on first
attribute access (PEP 562), so ``weitiao.models.resnet18()`` works after ``import weitiao``
alone.

>>> import weitiao
>>> weitiao.set_num_threads(2)
>>> weitiao.get_num_threads()
2
>>> weitiao.models.resnet18(num_classes=2, rng=0).num_classes
2
"""
import importlib

try:
    # Loads the OpenBLAS shared library the default build links against, before _C needs it.
    import scipy_openblas32 as _scipy_openblas32  # noqa: F401
except ImportError:  # a WEITIAO_BLAS=system build does not need it
    pass

from . import _C
from ._threads import get_num_threads, set_num_threads
from ._winograd import get_winograd, set_winograd
from .memory import array_cache, array_cache_info, clear_array_cache, set_array_cache_limit

__version__ = "0.1.0"
__all__ = ["array_cache", "array_cache_info", "clear_array_cache", "get_num_threads",
           "get_winograd", "set_array_cache_limit", "set_num_threads", "set_winograd",
           "__version__"]

# The subpackages reachable as attributes of ``weitiao``, imported when first used. A new
# subpackage is one more name here.
_SUBPACKAGES = ("data", "dist", "export", "finetune", "io", "models", "nn", "optim")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        # import_module also binds the subpackage as an attribute of this package, so this
        # runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES))
