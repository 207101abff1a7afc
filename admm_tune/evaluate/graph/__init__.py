"""Graph rewrites of exported pipelines: lowering of ai.onnx.ml operators and lossless passes.

:func:`lower` rewrites every ai.onnx.ml operator skl2onnx emits into
standard ONNX operators (so OpenVINO, and TensorRT's parser, can run every
pipeline), with tree ensembles in one of three strategies
(:data:`~.trees.STRATEGIES`); ``docs/lowering.md`` gives each rewrite's
exactness argument.  :func:`fold_scalers_into_trees` folds an affine scaler
into the thresholds of the trees behind it; :func:`prepared` is what the
backends compile.
"""

from ._builder import CapacityError, LoweringError
from .passes import drop_dead_nodes, fold_scalers_into_trees, merge_linear_chains, zero_safe_l2_norms
from .lower import ML_DOMAIN, NATIVE, TREE_LOWERINGS, encode_strings, lower, ml_operators, prepared, string_codes
from .tensorrt import tensorrt_unsupported
from .trees import STRATEGIES

__all__ = ["ML_DOMAIN", "NATIVE", "STRATEGIES", "TREE_LOWERINGS", "CapacityError", "LoweringError", "drop_dead_nodes",
           "encode_strings", "fold_scalers_into_trees", "lower", "merge_linear_chains", "ml_operators", "prepared",
           "string_codes", "tensorrt_unsupported", "zero_safe_l2_norms"]
