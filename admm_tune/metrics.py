"""The metric catalogue: every figure an evaluation measures that a constraint (or a deploy problem's objective)
may name, what it means where it is measured, for which task, and which way is better.

Three measurers: :data:`ML` (the pipeline's cross-validation, every ML problem), :data:`DEPLOYMENT` (the deployed
graph of a pipeline, ML problems with a ``deployment``) and :data:`DEPLOY` (a deploy problem's trained model).
Validation, the deployment layer, deploy problems and the bound sense of ``{metric: bound}`` constraints all read
it (a leaf module: it imports nothing of admm_tune).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ML, DEPLOYMENT, DEPLOY = "ml", "deployment", "deploy"
"""Who measures a metric (see the module's docstring)."""


@dataclass(frozen=True)
class Metric:
    """One metric: its ``name`` (ending in its unit, see :func:`~admm_tune.settings.unit`), its ``meaning`` for
    each measurer that measures it, the ``task`` it is measured for (None: both), and whether higher is better
    (then a bound is a minimum)."""

    name: str
    meaning: Mapping[str, str]
    task: str | None = None
    higher_is_better: bool = False

    @property
    def bound(self) -> str:
        """The sense of a bound written ``{name: value}``: ``min`` when higher is better, else ``max``."""
        return "min" if self.higher_is_better else "max"


def _service(what: str) -> dict[str, str]:
    return {DEPLOYMENT: f"{what} of one service call at the batch size, end to end: load_model.py's predict on "
                        "raw records (ms)", DEPLOY: f"{what} of one call at the batch size (ms)"}


CATALOGUE: tuple[Metric, ...] = (
    Metric("fit_time_s", {ML: "mean wall time to fit the pipeline on one CV training fold (s)"}),
    Metric("score_time_s", {ML: "mean wall time to score one CV validation fold (s)"}),
    Metric("cv_score_std", {ML: "standard deviation of the CV score across folds"}),
    Metric("latency_p50_ms", _service("median latency")),
    Metric("latency_p95_ms", _service("95th percentile latency")),
    Metric("latency_p99_ms", _service("99th percentile latency")),
    Metric("latency_mean_ms", _service("mean latency")),
    Metric("throughput_rps", {DEPLOYMENT: "rows per second of service calls at the batch size, end to end (use "
                                          "with min)",
                              DEPLOY: "rows per second at the batch and requests in flight the knobs set (else the "
                                      "problem's batch)"}, higher_is_better=True),
    Metric("graph_latency_p50_ms", {DEPLOYMENT: "median latency of the graph call alone, without the data "
                                                "preparation (ms; diagnosis)"}),
    Metric("graph_latency_p95_ms", {DEPLOYMENT: "95th percentile latency of the graph call alone (ms; diagnosis)"}),
    Metric("graph_latency_p99_ms", {DEPLOYMENT: "99th percentile latency of the graph call alone (ms; diagnosis)"}),
    Metric("graph_latency_mean_ms", {DEPLOYMENT: "mean latency of the graph call alone (ms; diagnosis)"}),
    Metric("graph_throughput_rps", {DEPLOYMENT: "rows per second of graph calls alone (diagnosis)"},
           higher_is_better=True),
    Metric("model_size_kb", {DEPLOYMENT: "size of the deployed ONNX graph (kB)",
                             DEPLOY: "size of the compiled ONNX graph (kB)"}),
    Metric("compile_time_s", {DEPLOYMENT: "session creation / compilation time (s)",
                              DEPLOY: "session creation / compilation time (s)"}),
    Metric("compress_time_s", {DEPLOY: "time to quantise or convert the graph (s; 0 for fp32 and runtime hints)"}),
    Metric("accuracy", {DEPLOY: "the preserved metric (top-1 accuracy, or agreement with fp32) on the held-out "
                                "rows"}, higher_is_better=True),
    Metric("accuracy_drop", {DEPLOYMENT: "accuracy (R² for regression) of the Python pipeline minus that of the "
                                         "deployed graph on held-out rows",
                             DEPLOY: "the fp32 model's metric minus the deployed one's, on the held-out rows"}),
    Metric("label_agreement", {DEPLOYMENT: "share of held-out rows whose deployed label equals the Python "
                                           "pipeline's"}, task="classification", higher_is_better=True),
    Metric("max_proba_diff", {DEPLOYMENT: "largest absolute difference of deployed vs Python probabilities "
                                          "(classifiers that have them: constraining it rules out the others)"},
           task="classification"),
    Metric("max_output_diff", {DEPLOYMENT: "regression: largest difference of deployed vs Python predictions, in "
                                           "target sd"}, task="regression"),
    Metric("output_mismatch", {DEPLOYMENT: "verification figure: <= 1 when the deployed outputs agree within "
                                           "tolerance"}),
)
"""Every metric admm_tune measures that a constraint may name."""

BY_NAME = {m.name: m for m in CATALOGUE}


def measured(by: str, task: str | None = None) -> dict[str, str]:
    """``{name: meaning}`` of the metrics ``by`` measures (for ``task``; None: every task's)."""
    return {m.name: m.meaning[by] for m in CATALOGUE if by in m.meaning and task in (None, m.task or task)}


def bound_sense(name: str) -> str:
    """The sense of a bound written ``{name: value}`` (:attr:`Metric.bound`; ``max`` for a metric of the user's
    own objective, which the catalogue does not know)."""
    return BY_NAME[name].bound if name in BY_NAME else "max"


__all__ = ["BY_NAME", "CATALOGUE", "DEPLOY", "DEPLOYMENT", "ML", "Metric", "bound_sense", "measured"]
