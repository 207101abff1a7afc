"""The run report: one self-contained HTML file with tables and plots.

:func:`write_report` renders a :class:`~admm_tune.result.Result` (or one
read back from a run directory) as HTML with the images embedded (PNG,
base64): the problem, the best pipeline and deployment, convergence (best
feasible loss against evaluations and time), the ADMM trace (residual,
constraint violation, penalty, multipliers), score against latency with the
Pareto front and the constraint line, latency per backend, (deploy
problems) accuracy against latency per precision and backend, the failed
evaluations grouped by reason, and the trials.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .space import describe

LATENCY = "metric:latency_p95_ms"
"""The cost axis of the Pareto front when deployments were timed (else ``fit_time_s``)."""


def pareto(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed trials not dominated in (loss, cost); cost is :func:`cost_column`.

    Sorted by cost.  A trial is dominated when another has no higher loss
    and no higher cost, and is strictly better in one of them.
    """
    cost = cost_column(trials)
    done = trials[(trials["state"] == "complete") & trials[cost].notna()].sort_values([cost, "loss"])
    front, best = [], math.inf
    for index, row in done.iterrows():
        if row["loss"] < best:
            front.append(index)
            best = row["loss"]
    return done.loc[front]


def cost_column(trials: pd.DataFrame) -> str:
    """``metric:latency_p95_ms`` when measured, else ``metric:fit_time_s``, else ``duration_s`` (a callable's)."""
    measured = [c for c in (LATENCY, "metric:fit_time_s") if c in trials and trials[c].notna().any()]
    return measured[0] if measured else "duration_s"


def write_report(result: Any, path: str | Path) -> Path:
    """Write ``result`` as one HTML file at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result), encoding="utf-8")
    return path


def render(result: Any) -> str:
    """The report of ``result`` as an HTML string."""
    trials, trace, problem = result.trials, result.trace, result.problem
    sections = [_problem_section(problem), _best_section(result), _figure("Convergence", _convergence(trials))]
    if len(trace):
        sections.append(_figure("ADMM trace", _trace(trace, problem.constraints)))
    sections.append(_figure("Score against cost, with the Pareto front", _front(trials, problem)))
    if "backend" in trials and cost_column(trials) == LATENCY:
        sections.append(_figure("Latency per backend", _per_backend(trials)))
    if problem.kind == "deploy" and "metric:accuracy" in trials:
        sections.append(_figure("Accuracy against latency per precision and backend", _per_precision(trials)))
    sections.append(_failures_section(trials))
    sections.append(_trials_section(trials))
    title = f"admm_tune report: {html.escape(problem.name)}"
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ddd; padding: 3px 7px; }
th { background: #f4f4f4; text-align: left; } img { max-width: 100%; }
.scroll { max-height: 480px; overflow: auto; } .bad { color: #b00; } .ok { color: #070; }
"""


def _problem_section(problem: Any) -> str:
    source = problem.source or {}
    rows = [("name", problem.name), ("description", source.get("description", "")),
            ("data", problem.data.name if problem.data is not None else "Python objective"),
            ("objective", getattr(problem.objective, "name", "callable")),
            ("constraints", "; ".join(str(c) for c in problem.constraints) or "none"),
            ("budget", str(problem.budget)), ("seed", problem.seed)]
    if problem.deployment is not None:
        rows.append(("deployment", f"{problem.deployment.name}, batch {problem.deployment.batch_size}, backends "
                                   f"{', '.join(problem.deployment.space.module('backend').names)}"))
    rows += [("note", note) for note in problem.notes]
    return "<h2>Problem</h2>" + _kv(rows)


def _best_section(result: Any) -> str:
    best = result.best
    state = "<span class='ok'>feasible</span>" if best.feasible else \
        f"<span class='bad'>INFEASIBLE (violation {best.violation:.3g})</span>"
    rows = [("pipeline", describe(best.config)), ("loss", _Html(f"{best.loss:.6g} ({state})")), ("trial", best.trial)]
    if "cv_score" in best.metrics:
        rows.append(("CV score", f"{best.metrics['cv_score']:.4f}"))
    for c in result.problem.constraints:
        rows.append((f"constraint {c}", f"measured {best.metrics.get(c.metric, float('nan')):.4g}"))
    rows += [(f"test score, {which}", f"{score:.4f}") for which, score in (result.test_scores or {}).items()]
    rows += [("not met", _Html(f"<span class='bad'>{html.escape(shortfall)}</span>"))
             for shortfall in result.shortfalls()]
    deployment = result.deployment
    if deployment is not None:
        rows.append(("deployment", f"{deployment['backend']} {deployment['precision']}, "
                                   + ", ".join(f"{k}={v}" for k, v in deployment["knobs"].items())))
        rows += [(k, f"{v:.4g}") for k, v in deployment["measured"].items()]
        if deployment["final"] is not None:
            rows.append(("refit graph", deployment["final"]["verification"]))
            rows += [(f"refit graph {k}", f"{v:.4g}") for k, v in deployment["final"]["measured"].items()
                     if k.startswith(("latency", "model_size", "accuracy"))]
    return "<h2>Best candidate</h2>" + _kv(rows)


def _failures_section(trials: pd.DataFrame) -> str:
    """Failed evaluations grouped by reason, above the (scrolling) trials table; empty when none failed."""
    if "reason" not in trials:
        return ""
    failed = trials[(trials["state"] == "fail") & trials["reason"].fillna("").astype(bool)]
    if not len(failed):
        return ""
    groups = failed.groupby("reason", sort=False)["number"].agg(["count", lambda n: ", ".join(map(str, n[:8]))])
    groups = groups.sort_values("count", ascending=False)
    rows = "".join(f"<tr><td>{n}</td><td>{html.escape(numbers)}</td><td>{html.escape(str(reason))}</td></tr>"
                   for reason, (n, numbers) in groups.iterrows())
    return (f"<h2>Failures ({len(failed)} of {len(trials)} evaluations)</h2><table><tr><th>count</th>"
            f"<th>trials</th><th>reason</th></tr>{rows}</table>")


def _trials_section(trials: pd.DataFrame) -> str:
    cols = [c for c in ["number", "state", "step", "iteration", "structure", "loss", "feasible", "metric:cv_score",
                        "metric:fit_time_s", LATENCY, "metric:model_size_kb", "backend", "precision", "reused_fit",
                        "reason"] if c in trials]
    table = trials[cols].rename(columns=lambda c: c.removeprefix("metric:")).to_html(
        index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
    return f"<h2>Trials ({len(trials)})</h2><div class='scroll'>{table}</div>"


class _Html(str):
    """Text that is already HTML (not escaped again)."""


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{v if isinstance(v, _Html) else html.escape(str(v))}"
                   f"</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _new_figure(width: float, height: float) -> Any:
    """A matplotlib figure outside pyplot: rendering a report leaves the user's pyplot state and backend alone."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _figure(title: str, fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"


def _best_so_far(trials: pd.DataFrame) -> np.ndarray:
    """Best feasible loss after each trial, of those evaluated in full (a stopped one's loss is partial)."""
    ok = (trials["state"] == "complete") & trials["feasible"].fillna(False).astype(bool)
    if "fidelity" in trials:
        ok &= trials["fidelity"].fillna(1.0) >= 1.0
    return np.fmin.accumulate(np.where(ok, trials["loss"].astype(float), np.inf))


def _shown(best: np.ndarray) -> np.ndarray:
    """Best-so-far values to plot: NaN (no line) until the first feasible one."""
    return np.where(np.isfinite(best), best, np.nan)


def _convergence(trials: pd.DataFrame) -> Any:
    trials = trials.sort_values("number")
    shown = _shown(_best_so_far(trials))
    # by time: in finishing order, which differs from the trials' (start) order when evaluations overlap
    by_end = trials.assign(end=pd.to_datetime(trials["datetime_complete"])).sort_values("end", kind="stable")
    elapsed = (by_end["end"] - pd.to_datetime(trials["datetime_start"]).min()).dt.total_seconds().to_numpy()
    fig = _new_figure(10, 3.4)
    a, b = fig.subplots(1, 2)
    done = trials["state"] == "complete"
    a.scatter(trials["number"][done] + 1, trials["loss"][done], s=10, color="#bbb", label="each evaluation")
    a.step(trials["number"] + 1, shown, where="post", color="#1f5fa8", label="best feasible")
    a.set(xlabel="evaluations", ylabel="loss", title="best feasible loss by evaluations")
    _integer_ticks(a)
    a.legend(fontsize=8)
    b.step(elapsed, _shown(_best_so_far(by_end)), where="post", color="#1f5fa8")
    b.set(xlabel="seconds", ylabel="loss", title="by time")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    return fig


def _trace(trace: pd.DataFrame, constraints: Any = ()) -> Any:
    """Residual, violation and ρ, and (with constraints) one multiplier line per constraint, by iteration."""
    it = trace["iteration"].to_numpy()
    mus = np.array([json.loads(m) for m in trace["mu"]], dtype=float).reshape(len(trace), -1)
    fig = _new_figure(12 if mus.shape[1] else 8, 3.2)
    axes = fig.subplots(1, 3 if mus.shape[1] else 2)
    axes[0].plot(it, trace["primal_residual"], marker="o", ms=3)
    axes[0].set(title="integer residual ‖θ̃ᵈ − δ‖", xlabel="iteration")
    violation = trace["violation"].replace([np.inf], np.nan)
    axes[1].plot(it, violation, marker="o", ms=3, color="#b5651d", label="violation")
    axes[1].plot(it, trace["rho"], marker=".", ms=3, color="#555", label="ρ")
    axes[1].set(title="constraint violation and ρ" if mus.shape[1] else "ρ (no constraints)", xlabel="iteration")
    axes[1].legend(fontsize=8)
    if mus.shape[1]:
        names = [str(c) for c in constraints]
        for j in range(mus.shape[1]):
            axes[2].plot(it, mus[:, j], marker="o", ms=3, label=names[j] if j < len(names) else f"μ{j}")
        axes[2].set(title="multiplier μ of each constraint", xlabel="iteration")
        axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        _integer_ticks(ax)
    return fig


def _integer_ticks(ax: Any) -> None:
    """Whole numbers only on the x axis (iterations, evaluations)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _log_if_spread(ax: Any, values: pd.Series, axis: str = "x") -> None:
    """A log scale when positive ``values`` span more than :data:`LOG_SPREAD` (one order of magnitude and more)."""
    values = values.dropna()
    if len(values) and (values > 0).all() and values.max() / values.min() > LOG_SPREAD:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


LOG_SPREAD = 20.0
"""Largest over smallest value beyond which a latency axis is logarithmic."""


def _front(trials: pd.DataFrame, problem: Any) -> Any:
    cost = cost_column(trials)
    done = trials[(trials["state"] == "complete") & trials[cost].notna()]
    feasible = done["feasible"].fillna(False).astype(bool)
    score = "metric:cv_score" if "metric:cv_score" in done else "loss"
    fig = _new_figure(7, 4)
    ax = fig.subplots()
    ax.scatter(done[cost][~feasible], done[score][~feasible], s=14, color="#d9534f", alpha=0.7, label="infeasible")
    ax.scatter(done[cost][feasible], done[score][feasible], s=14, color="#1f5fa8", alpha=0.8, label="feasible")
    front = pareto(trials)
    ax.step(front[cost], front[score], where="post", color="#333", lw=1, label="Pareto front (all trials)")
    for c in problem.constraints:
        if f"metric:{c.metric}" == cost:
            ax.axvline(c.bound, color="#b5651d", ls="--", label=f"constraint {c}")
    ax.set(xlabel=cost.removeprefix("metric:"), ylabel=score.removeprefix("metric:"))
    _log_if_spread(ax, done[cost])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _per_backend(trials: pd.DataFrame) -> Any:
    done = trials[(trials["state"] == "complete") & trials[LATENCY].notna()]
    groups = sorted(done["backend"].dropna().unique())
    fig = _new_figure(7, 3.2)
    ax = fig.subplots()
    ax.boxplot([done.loc[done["backend"] == g, LATENCY] for g in groups], tick_labels=groups, orientation="horizontal")
    ax.set(xlabel="latency p95 (ms)", title="measured p95 latency of every timed candidate")
    _log_if_spread(ax, done[LATENCY])
    ax.grid(alpha=0.3)
    return fig


def _per_precision(trials: pd.DataFrame) -> Any:
    """Held-out accuracy against p50 latency of each deploy candidate: a marker per backend, a colour per precision."""
    latency = "metric:latency_p50_ms"
    done = trials[(trials["state"] == "complete") & trials[latency].notna()]
    fig = _new_figure(7, 4)
    ax = fig.subplots()
    markers = dict(zip(sorted(done["backend"].dropna().unique()), "os^Dvx"))
    colours = dict(zip(sorted(done["precision"].dropna().unique()), [f"C{i}" for i in range(10)]))
    for (backend, precision), group in done.groupby(["backend", "precision"]):
        ax.scatter(group[latency], group["metric:accuracy"], s=18, alpha=0.75, marker=markers[backend],
                   color=colours[precision], label=f"{backend} {precision}")
    ax.set(xlabel="latency p50 (ms)", ylabel="accuracy on the held-out rows")
    _log_if_spread(ax, done[latency])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig
