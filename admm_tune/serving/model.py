"""An exported deployment as a service calls it: raw rows in, predictions out.

:class:`Model` is what ``load_model.py``'s ``load(folder)`` returns, and
what the search times end to end (``latency_*`` of a candidate are the
figures of :meth:`Model.predict` on raw records, ``graph_latency_*`` those
of the graph call alone).  ``load_model.py`` holds this module's source
below the ``SHIPPED`` line, after :mod:`.rows`, and the backend module's
``open_session`` and ``infer``; it imports nothing of admm_tune.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .rows import prepare

# -- SHIPPED: load_model.py holds the source from here on ----------------------------------------------------


def graph_feeds(prepared: Mapping[str, np.ndarray], inputs: list[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The graph's inputs from prepared columns: a float32 matrix, strings, or the strings' int64 codes.

    ``inputs`` is ``deployment.json``'s ``graph_inputs``: each input's name,
    type (``float32``, ``string``, ``int64``), the prepared columns it takes,
    and for a graph that takes strings as codes, the codes (``-1``: never seen).
    """
    feeds = {}
    for graph_input in inputs:
        columns = [prepared[c] for c in graph_input["columns"]]
        if "codes" in graph_input:
            codes = graph_input["codes"]
            array = np.array([[codes.get(v, -1) for v in row] for row in zip(*columns)], dtype=np.int64)
        elif graph_input["type"] == "string":
            array = np.stack(columns, axis=1).astype(object) if len(columns) > 1 else columns[0].reshape(-1, 1)
        else:
            array = np.stack(columns, axis=1).astype(np.float32) if len(columns) > 1 else \
                columns[0].astype(np.float32).reshape(-1, 1)
        feeds[graph_input["name"]] = array.reshape(len(columns[0]), len(columns))
    return feeds


class Model:
    """A deployed graph with its data preparation: ``predict(rows)`` (and ``predict_proba`` for classifiers).

    Parameters
    ----------
    run : callable
        ``run(feeds) -> list of arrays``: the graph's outputs for its inputs.
    spec : mapping
        The deployment's ``deployment.json`` (``rows``, ``graph_inputs``,
        ``outputs``, ``task``).
    """

    def __init__(self, run: Callable[[dict[str, np.ndarray]], list[Any]], spec: Mapping[str, Any]) -> None:
        self.run = run
        self.spec = spec
        self.classes_ = np.asarray(spec["classes"]) if spec.get("classes") is not None else None

    @classmethod
    def from_folder(cls, folder: str | pathlib.Path, open_session: Callable[..., Any],
                    infer: Callable[[Any, dict[str, np.ndarray]], list[Any]]) -> Model:
        """The model of an exported folder (``deployment.json`` and the graph), opened with the backend's functions."""
        here = pathlib.Path(folder)
        spec = json.loads((here / "deployment.json").read_text())
        session = open_session(str(here / spec["model"]), spec["session"])
        return cls(lambda feeds: infer(session, feeds), spec)

    def feeds(self, rows: Any) -> dict[str, np.ndarray]:
        """The graph's inputs for raw ``rows`` (a DataFrame, a list of records or one record)."""
        return graph_feeds(prepare(rows, self.spec["rows"]), self.spec["graph_inputs"])

    def outputs(self, rows: Any) -> list[np.ndarray]:
        """Every output of the graph for raw ``rows``, in ``deployment.json``'s ``outputs`` order."""
        return [np.asarray(o) for o in self.run(self.feeds(rows))]

    def predict(self, rows: Any) -> np.ndarray:
        """Labels (classification) or values (regression) of raw ``rows``, shape ``(n_rows,)``.

        A regressor's graph predicts the standardised target when ``deployment.json`` has ``target``: its mean
        and scale are restored here, in float64 (float32 cannot hold a target at 1e7 ± 3 to a unit).
        """
        values = self.outputs(rows)[0].reshape(-1)
        target = self.spec.get("target")
        return values if not target else values.astype(np.float64) * target["scale"] + target["mean"]

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities of raw ``rows``, shape ``(n_rows, n_classes)``, columns in ``classes_`` order.

        Raises
        ------
        AttributeError
            For a regressor, or a classifier whose graph outputs decision scores (``deployment.json``'s
            ``scores``; see :meth:`decision_function`), as scikit-learn's estimators without probabilities.
        """
        if self.classes_ is None:
            raise AttributeError("a regressor has no predict_proba")
        if self.spec.get("scores") == "decision_function":
            raise AttributeError("this classifier has no predict_proba: its graph outputs decision scores (an "
                                 "estimator without probabilities, as the search was not asked for them: "
                                 "objective.probabilities); use decision_function")
        return self._scores(rows)

    def decision_function(self, rows: Any) -> np.ndarray:
        """Decision scores of raw ``rows`` of a classifier without probabilities, as scikit-learn's
        ``decision_function``: shape ``(n_rows,)`` for two classes (positive for the second class; the output's
        column ``deployment.json`` names), else ``(n_rows, n_classes)``.

        Raises
        ------
        AttributeError
            For a regressor, or a classifier whose graph outputs probabilities (see :meth:`predict_proba`).
        """
        if self.classes_ is None or self.spec.get("scores") != "decision_function":
            raise AttributeError("this model has no decision_function: " + (
                "a regressor" if self.classes_ is None else "its graph outputs probabilities (predict_proba)"))
        values = self._scores(rows)
        column = self.spec.get("decision_column")
        return values if column is None else values[:, column]

    def _scores(self, rows: Any) -> np.ndarray:
        """The graph's second output for raw ``rows``, one row of scores per row, in float64."""
        outputs = self.outputs(rows)
        return np.asarray(outputs[1], dtype=np.float64).reshape(len(outputs[0].reshape(-1)), -1)
