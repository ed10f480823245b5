"""The fine-tuning workflow: FineTuner, compare(), label mapping, reports and plots."""
from .compare import Comparison, compare
from .evaluation import Evaluation
from .history import EpochRecord, History
from .label_map import ReuseReport
from .lr_find import LRFinderResult
from .tuner import FineTuner

__all__ = ["Comparison", "EpochRecord", "Evaluation", "FineTuner", "History", "LRFinderResult",
           "ReuseReport", "compare"]
