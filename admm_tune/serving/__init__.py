"""Serving an exported deployment: the raw rows a service receives, prepared and run as the search timed them.

:mod:`.rows` prepares raw rows (the estimator's ``predict`` uses it too),
:mod:`.model` runs a deployed graph on them; ``load_model.py`` ships the
source of both (``docs/serving.md``).  Nothing here imports scikit-learn,
ONNX or a backend.
"""

from __future__ import annotations

from pathlib import Path

from .model import Model, graph_feeds
from .rows import MISSING, RowError, features, prepare, unseen


def load(folder: str | Path) -> Model:
    """The deployment exported to ``folder``, opened with its backend's functions, as ``load_model.py`` opens it.

    Raises
    ------
    FileNotFoundError
        When ``folder`` has no ``deployment.json``.
    KeyError
        When ``deployment.json`` names a backend admm_tune does not know.
    """
    import json

    from ..evaluate.backends import get_backend

    spec = json.loads((Path(folder) / "deployment.json").read_text())
    return Model.from_folder(folder, *get_backend(spec["backend"]).serving_functions())


__all__ = ["MISSING", "Model", "RowError", "features", "graph_feeds", "load", "prepare", "unseen"]
