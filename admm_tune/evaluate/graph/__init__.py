"""Graph rewrites of exported pipelines: lowering of ai.onnx.ml operators and lossless passes.

:func:`lower` rewrites every ai.onnx.ml operator skl2onnx emits into
standard ONNX operators (so OpenVINO, and TensorRT's parser, can run every
pipeline), with tree ensembles in one of three strategies
(:data:`~.trees.STRATEGIES`); ``docs/lowering.md`` gives each rewrite's
exactness argument.  :func:`fold_scalers_into_trees` folds an affine scaler
into the thresholds of the trees behind it; :func:`prepared` is what the
backends compile.
"""

from __future__ import annotations

import importlib
from typing import Any

from .strategies import NATIVE, STRATEGIES, TREE_LOWERINGS

_HOMES = {"CapacityError": "_builder", "LoweringError": "_builder", "ML_DOMAIN": "lowering",
          "drop_dead_nodes": "passes", "encode_strings": "lowering", "fold_scalers_into_trees": "passes",
          "for_tensorrt": "tensorrt", "lower": "lowering", "merge_linear_chains": "passes", "ml_operators": "lowering",
          "prepared": "lowering", "string_codes": "lowering", "tensorrt_unsupported": "tensorrt",
          "zero_safe_l2_norms": "passes"}
"""Where each rewrite lives: imported at first use (PEP 562), since they import ONNX (0.6 s) and a backend's knobs,
a problem's validation and ``admm-tune validate`` need only the names of :mod:`.strategies`."""


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = importlib.import_module(f".{_HOMES[name]}", __name__)
    # bound here, so that later lookups of this module's names skip this function
    globals().update({n: getattr(home, n) for n, m in _HOMES.items() if m == _HOMES[name]})
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = ["NATIVE", "STRATEGIES", "TREE_LOWERINGS", *sorted(_HOMES)]
