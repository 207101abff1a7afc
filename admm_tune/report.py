"""The run report: one self-contained HTML file with tables and plots.

:func:`write_report` renders a :class:`~admm_tune.result.Result` (or one
read back from a run directory) as HTML with the images embedded (PNG,
base64): the problem (the constraints the user wrote apart from the ones
admm_tune adds, each explained), the chosen candidate (how it was chosen,
the score to expect, its constraints and deployment; every other figure
folded), convergence (best feasible loss against evaluations and time), the
ADMM trace (only the panels that moved; a sentence for the flat ones),
score against latency with the Pareto front and the constraint line
(pipelines), latency per backend, (deploy problems) accuracy against
latency per precision and backend, the failed evaluations grouped by
reason, the infeasible ones grouped by the constraint they broke, and the
trials (with why each infeasible one is).
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

from .problem import constraint_list
from .settings import unit

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
    chosen = result.best.trial
    loss = f"{problem.objective.objective} (ms)" if problem.kind == "deploy" and \
        problem.objective.objective.endswith("_ms") else "loss"
    sections = [_problem_section(problem), _best_section(result),
                _figure("Convergence", _convergence(trials, chosen, loss))]
    if len(trace):
        sections.append(_trace_section(trace, problem.constraints))
    if problem.kind != "deploy":  # a deploy run's loss is its latency: accuracy against latency is plotted below
        sections.append(_figure("Score against cost, with the Pareto front", _front(trials, problem, chosen)))
    if "backend" in trials and cost_column(trials) == LATENCY:
        sections.append(_figure("Latency per backend", _per_backend(trials)))
    if problem.kind == "deploy" and "metric:accuracy" in trials:
        sections.append(_figure("Accuracy against latency per precision and backend", _per_precision(trials, chosen)))
    sections.append(_failures_section(trials))
    sections.append(_infeasible_section(trials, problem.constraints))
    sections.append(_trials_section(trials, problem.constraints))
    title = f"admm_tune report: {html.escape(problem.name)}"
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ddd; padding: 3px 7px; }
th { background: #f4f4f4; text-align: left; white-space: nowrap; } img { max-width: 100%; }
.scroll { max-height: 480px; overflow: auto; } .bad { color: #b00; } .ok { color: #070; }
"""


def _problem_section(problem: Any) -> str:
    source = problem.source or {}
    if problem.kind == "deploy":  # a trained model, its evaluation rows, the figure it minimises
        data, objective = f"{source.get('model', 'a model')}, evaluated on {_data_name(source.get('data'))}", \
            problem.objective.objective
    else:
        data = problem.data.name if problem.data is not None else "none (a Python objective over the space)"
        objective = getattr(problem.objective, "name", None) or getattr(problem.objective, "__name__", "callable")
    given = {c.get("metric") for c in constraint_list(source.get("constraints")) if isinstance(c, dict)}
    yours = [c for c in problem.constraints if c.metric in given]
    added = [c for c in problem.constraints if c.metric not in given]
    rows = [("name", problem.name)] + ([("description", source["description"])] if source.get("description") else [])
    rows += [("data", data), ("objective", objective),
             ("constraints (yours)", "; ".join(str(c) for c in yours) or "none")]
    rows += [("constraint added", f"{c}: {ADDED.get(c.metric, 'added by admm_tune')}") for c in added]
    rows += [("budget", str(problem.budget)), ("seed", problem.seed)]
    if problem.deployment is not None:
        rows.append(("deployment", f"{problem.deployment.name}, batch {problem.deployment.batch_size}, backends "
                                   f"{', '.join(problem.deployment.space.module('backend').names)}"))
    rows += [("note", note) for note in problem.notes]
    return "<h2>Problem</h2>" + _kv(rows)


def _data_name(spec: Any) -> str:
    """A deploy problem's evaluation rows as its file gave them: the ``.npz`` path, or arrays from Python."""
    if isinstance(spec, dict):
        return str(spec.get("path") or "arrays given from Python")
    return str(spec) if spec else "no rows"


def _best_section(result: Any) -> str:
    """The chosen candidate in a few rows (what was chosen, its score, its constraints, its deployment); every other
    figure folded below them."""
    best = result.best
    state = "<span class='ok'>feasible</span>" if result.feasible else \
        "<span class='bad'>feasible in the search, not as exported (not met below)</span>" if best.feasible else \
        f"<span class='bad'>INFEASIBLE (violation {best.violation:.3g})</span>"
    rows: list[tuple[str, Any]] = [("chosen", _Html(f"trial {best.trial}: {html.escape(result.described())} "
                                                    f"({state})"))]
    rows += result.story()
    if result.race is not None and result.problem.kind == "deploy":
        rows.append(("final race", result.race["note"]))
    rows += result.constraint_story()
    rows += [(f"test score, {which}", f"{score:.4f}") for which, score in (result.test_scores or {}).items()]
    rows += [("not met", _Html(f"<span class='bad'>{html.escape(shortfall)}</span>"))
             for shortfall in result.shortfalls()]
    rows += result.deployment_story()
    details: list[tuple[str, Any]] = []
    deployment = result.deployment
    if deployment is not None:
        details += [(f"search {k}", f"{v:.4g}{unit(k)}") for k, v in deployment["measured"].items()]
        if deployment["final"] is not None:
            details += [(f"exported graph {k}", f"{v:.4g}{unit(k)}")
                        for k, v in deployment["final"]["measured"].items()]
    details += [(k, f"{v:.4g}{unit(k)}") for k, v in best.metrics.items()
                if deployment is None or k not in deployment["measured"]]
    folded = f"<details><summary>every figure measured for the chosen candidate ({len(details)})</summary>" \
             f"{_kv(details)}</details>" if details else ""
    return "<h2>Chosen candidate</h2>" + _kv(rows) + folded


ADDED = {"output_mismatch": "the deployed graph must compute what the Python pipeline computes: the number of "
                            "held-out rows whose label or probabilities differ beyond tolerance, over the number "
                            "allowed (<= 1: within tolerance; a graph failing it is never exported)"}
"""Why admm_tune adds a constraint the user did not write, per metric."""


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


def why_infeasible(trials: pd.DataFrame, constraints: Any) -> pd.Series:
    """For each completed infeasible trial, the constraints it broke with what was measured (``latency_p95_ms 0.31 ms
    > 0.25 ms``); empty for the others."""
    def broken(row: pd.Series) -> str:
        if row["state"] != "complete" or bool(row["feasible"]):
            return ""
        out = []
        stopped = isinstance(row.get("stopped"), str)  # stopped early: what it did not measure broke nothing
        for c in constraints:
            value = row.get(f"metric:{c.metric}")
            value = float(value) if value is not None and pd.notna(value) else math.nan
            if c.violation(value) > 0 and not (stopped and math.isnan(value)):
                out.append(f"{c.metric} not measured" if math.isnan(value) else c.broken_by(value))
        return "; ".join(out)

    return trials.apply(broken, axis=1) if len(trials) else pd.Series(dtype=str)


def _infeasible_section(trials: pd.DataFrame, constraints: Any) -> str:
    """Completed candidates that broke a constraint, grouped by which (each point the plots mark infeasible)."""
    why = why_infeasible(trials, constraints)
    broken = trials[why != ""]
    if not len(broken):
        return ""
    kinds = why[why != ""].str.replace(r" [-0-9.e+]+( \S+)? ([<>]) ", r" \2 ", regex=True)
    groups = broken.groupby(kinds.loc[broken.index], sort=False)["number"].agg(
        ["count", lambda n: ", ".join(map(str, n[:8])) + (" ..." if len(n) > 8 else "")])
    rows = "".join(f"<tr><td>{n}</td><td>{html.escape(numbers)}</td><td>{html.escape(str(what))}</td></tr>"
                   for what, (n, numbers) in groups.sort_values("count", ascending=False).iterrows())
    return (f"<h2>Infeasible candidates ({len(broken)} of {len(trials)} evaluations)</h2><table><tr><th>count</th>"
            f"<th>trials</th><th>broke</th></tr>{rows}</table><p>Each trial's measured figures are in the "
            "<em>infeasible because</em> column of the trials below.</p>")


def _trials_section(trials: pd.DataFrame, constraints: Any = ()) -> str:
    trials = trials.assign(**{"infeasible because": why_infeasible(trials, constraints)})
    cols = [c for c in ["number", "state", "step", "iteration", "structure", "loss", "feasible", "metric:cv_score",
                        "metric:fit_time_s", LATENCY, "metric:model_size_kb", "backend", "precision", "reused_fit",
                        "infeasible because", "stopped", "reason"] if c in trials]
    shown = trials[cols].replace("", np.nan)
    same = [c for c in cols if c not in ("number", "loss") and len(trials) > 1
            and shown[c].astype(str).nunique(dropna=False) == 1]
    table = trials[[c for c in cols if c not in same]].rename(columns=lambda c: c.removeprefix("metric:")).to_html(
        index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
    said = [f"{c.removeprefix('metric:')} {'empty' if shown[c].isna().all() else shown[c].iloc[0]}" for c in same]
    note = f"<p>The same in every trial, so not shown: {html.escape(', '.join(said))}.</p>" if said else ""
    return f"<h2>Trials ({len(trials)})</h2>{note}<div class='scroll'>{table}</div>"


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


def _convergence(trials: pd.DataFrame, chosen: int | None = None, loss: str = "loss") -> Any:
    """Best feasible loss by evaluations and by time, each evaluation in grey, the chosen trial starred; the
    loss axis stops at the 85th percentile of the losses when the worst lie far above (they would flatten the
    line)."""
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
    picked = trials[done & (trials["number"] == chosen)]
    if len(picked):
        a.scatter(picked["number"] + 1, picked["loss"], marker="*", s=120, color="#e08a00", zorder=3,
                  label=f"chosen (trial {chosen})")
    a.set(xlabel="evaluations", ylabel=loss, title="best feasible loss by evaluations")
    _integer_ticks(a)
    b.step(elapsed, _shown(_best_so_far(by_end)), where="post", color="#1f5fa8")
    b.set(xlabel="seconds", ylabel=loss, title="by time")
    losses = trials["loss"][done].astype(float)
    losses = losses[np.isfinite(losses)]
    if len(losses) >= 10:
        low, top, high = losses.min(), losses.quantile(0.85), losses.max()
        if high - low > 2 * (top - low) > 0:
            margin = 0.05 * (top - low)
            a.set_ylim(low - margin, top + margin)
            a.set_title("best feasible loss by evaluations (the worst 15 % above the axis)", fontsize=10)
    a.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    return fig


def _trace_section(trace: pd.DataFrame, constraints: Any = ()) -> str:
    """The ADMM trace: the panels that moved in this run, a sentence for the flat ones (no figure when nothing
    moved)."""
    fig, flat = trace_figure(trace, constraints)
    text = f"<p>Over {len(trace)} iterations: {'; '.join(flat)}.</p>" if flat else ""
    return (_figure("ADMM trace", fig) if fig is not None else "<h2>ADMM trace</h2>") + text


def trace_figure(trace: pd.DataFrame, constraints: Any = ()) -> tuple[Any, list[str]]:
    """The trace's panels that moved (integer residual; constraint violation and ρ; one multiplier line per
    constraint), and a sentence for each flat one (``the integer residual stayed 0``); the figure is None when
    every panel is flat."""
    it = trace["iteration"].to_numpy()
    mus = np.array([json.loads(m) for m in trace["mu"]], dtype=float).reshape(len(trace), -1)
    violation = trace["violation"].replace([np.inf], np.nan).to_numpy(dtype=float)
    candidates = [
        ("integer residual ‖θ̃ᵈ − δ‖", [("the integer residual", trace["primal_residual"].to_numpy(dtype=float))]),
        ("constraint violation and ρ" if mus.shape[1] else "ρ (no constraints)",
         ([("violation", violation)] if mus.shape[1] else []) + [("ρ", trace["rho"].to_numpy(dtype=float))]),
        ("multiplier μ of each constraint",
         [(str(c), mus[:, j]) for j, c in enumerate(list(constraints)[:mus.shape[1]])])]
    panels, flat = [], []
    for title, series in candidates:
        series = [(label, v) for label, v in series if np.isfinite(v).any()]
        still = [(label, v) for label, v in series if np.isfinite(v).all() and np.ptp(v) == 0]
        moved = [(label, v) for label, v in series if not any(label == s for s, _ in still)]
        if title.startswith("multiplier") and len(still) > 1 and len({float(v[0]) for _, v in still}) == 1:
            flat.append(f"{'every' if not moved else 'every other'} μ stayed {still[0][1][0]:g}")
        else:
            flat += [f"{'μ of ' if title.startswith('multiplier') else ''}{label} stayed {v[0]:g}"
                     for label, v in still]
        if moved and title.startswith("constraint violation") and len(moved) == 1:  # its flat half is said
            title = "constraint violation" if moved[0][0] == "violation" else "ρ"
        if moved:
            panels.append((title, moved))
    if not panels:
        return None, flat
    fig = _new_figure(4 * len(panels) + 1, 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, series) in zip(axes, panels):
        for label, values in series:
            ax.plot(it, values, marker="o", ms=3, label=label)
        ax.set(title=title, xlabel="iteration")
        if len(series) > 1 or title.startswith("multiplier"):
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        _integer_ticks(ax)
    return fig, flat


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


def _front(trials: pd.DataFrame, problem: Any, chosen: int | None = None) -> Any:
    cost = cost_column(trials)
    done = trials[(trials["state"] == "complete") & trials[cost].notna()]
    feasible = done["feasible"].fillna(False).astype(bool)
    score = "metric:cv_score" if "metric:cv_score" in done else "loss"
    fig = _new_figure(7, 4)
    ax = fig.subplots()
    if (~feasible).any():
        ax.scatter(done[cost][~feasible], done[score][~feasible], s=14, color="#d9534f", alpha=0.7,
                   label="infeasible")
    ax.scatter(done[cost][feasible], done[score][feasible], s=14, color="#1f5fa8", alpha=0.8, label="feasible")
    front = pareto(trials)
    if len(front):  # its points ringed, so that a front of one point or of close ones shows too
        ax.plot(front[cost], front[score], drawstyle="steps-post", color="#333", lw=1, marker="o", ms=8,
                mfc="none", label="Pareto front (all trials)")
    picked = done[done["number"] == chosen]
    if len(picked):
        ax.scatter(picked[cost], picked[score], marker="*", s=160, color="#e08a00", zorder=3,
                   label=f"chosen (trial {chosen}, search figures)")
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


def _per_precision(trials: pd.DataFrame, chosen: int | None = None) -> Any:
    """Held-out accuracy against p95 latency of each deploy candidate: a marker per backend, a colour per precision,
    hollow when infeasible, the chosen one starred."""
    latency = LATENCY
    done = trials[(trials["state"] == "complete") & trials[latency].notna()]
    fig = _new_figure(7, 4)
    ax = fig.subplots()
    markers = dict(zip(sorted(done["backend"].dropna().unique()), "os^Dvx"))
    colours = dict(zip(sorted(done["precision"].dropna().unique()), [f"C{i}" for i in range(10)]))
    for (backend, precision), group in done.groupby(["backend", "precision"]):
        ok = group["feasible"].fillna(False).astype(bool)
        ax.scatter(group[latency][ok], group["metric:accuracy"][ok], s=18, alpha=0.75, marker=markers[backend],
                   color=colours[precision], label=f"{backend} {precision}")
        ax.scatter(group[latency][~ok], group["metric:accuracy"][~ok], s=18, alpha=0.75, marker=markers[backend],
                   facecolors="none", edgecolors=colours[precision],
                   label=f"{backend} {precision}, infeasible" if (~ok).any() else None)
    picked = done[done["number"] == chosen]
    if len(picked):
        ax.scatter(picked[latency], picked["metric:accuracy"], marker="*", s=160, color="#e08a00", zorder=3,
                   label=f"chosen (trial {chosen})")
    ax.set(xlabel="latency p95 (ms)", ylabel="accuracy on the held-out rows")
    _log_if_spread(ax, done[latency])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig
