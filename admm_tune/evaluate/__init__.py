"""Black-box evaluation of candidates (knows nothing of ADMM)."""

from .function import FunctionEvaluator
from .pipeline import MLEvaluator, build_pipeline

__all__ = ["FunctionEvaluator", "MLEvaluator", "build_pipeline"]
