"""The forms a tree ensemble can take in a deployed graph: names only, so that backends declare their knobs
without importing ONNX (the rewrites themselves are in :mod:`.trees` and :mod:`.lowering`)."""

from __future__ import annotations

STRATEGIES = ("gemm", "traversal", "perfect")
"""Standard-operator forms of a tree ensemble (``native`` keeps the ai.onnx.ml operator)."""

NATIVE = "native"
"""``tree_lowering`` value that keeps tree ensembles as ai.onnx.ml operators (ONNX Runtime only)."""

TREE_LOWERINGS = (NATIVE, *STRATEGIES)
"""Every value of the ``tree_lowering`` deployment choice."""

__all__ = ["NATIVE", "STRATEGIES", "TREE_LOWERINGS"]
