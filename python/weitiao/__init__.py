"""weitiao (微调, "fine-tuning"): fine-tune pretrained CNNs on small image datasets on the
CPU, with a C core and NumPy arrays in and out.

>>> import weitiao
>>> weitiao.set_num_threads(2)
>>> weitiao.get_num_threads()
2
"""
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
