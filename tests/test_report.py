"""The HTML run report, the Pareto front, result.json and `admm-tune report`, with a real browser where present."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from reference import reference_p95_ms

import admm_tune
from admm_tune import Result
from admm_tune.evaluate.timing import TimingSettings

SECTIONS = ["Problem", "Chosen candidate", "Convergence", "ADMM trace", "Score against cost, with the Pareto front",
            "Latency per backend", "Trials"]


@pytest.fixture(scope="module")
def deployed_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    timing = {"warmup": 2, "min_runs": 10, "max_runs": 50, "seconds": 0.02}
    # A bound this machine's speed sets now (tests/reference.py): ~0.1 ms on an idle 2-core machine, between
    # logistic regression and OpenVINO's fixed cost below it and k-NN (~70x logistic regression) above it.
    bound = float(f"{10 * reference_p95_ms('fast', 32, TimingSettings(**timing)):.2g}")
    problem = {"name": "reported", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
               "restrict": {"estimator": ["logistic_regression", "knn", "gaussian_nb"], "transformer": ["none", "pca"]},
               "deployment": {"space": "cpu", "batch_size": 32, "timing": timing},
               "constraints": [{"metric": "latency_p95_ms", "max": bound}], "budget": {"evaluations": 14}, "seed": 0}
    file = run_dir.parent / "reported.yaml"
    file.write_text(yaml.safe_dump(problem))
    return admm_tune.fit(file, run_dir=run_dir, progress=False)


def images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([^']+)'", text)]


def test_report_has_every_section_and_embedded_images(deployed_run, tmp_path):
    path = deployed_run.report(tmp_path / "report.html")
    text = path.read_text()
    for section in SECTIONS:
        assert f"<h2>{section}" in text, section
    pngs = images(text)  # convergence, front, per backend, and the trace unless every panel of it stayed flat
    assert len(pngs) == text.count("<img") in (3, 4) and all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    bound = deployed_run.problem.constraints[0].bound
    assert f"latency_p95_ms &lt;= {bound:g} ms" in text and "refit graph" in text
    yours = text.split("constraints (yours)</th><td>")[1].split("</td>")[0]
    assert yours == f"latency_p95_ms &lt;= {bound:g} ms"  # what the user wrote, apart from what admm_tune adds:
    assert "<th>constraint added</th><td>output_mismatch &lt;= 1: the deployed graph must compute" in text
    assert "<details><summary>every figure measured for the chosen candidate" in text  # raw figures folded


def test_pareto_front_is_not_dominated(deployed_run):
    front = deployed_run.pareto()
    trials = deployed_run.trials[deployed_run.trials["state"] == "complete"]
    cost = "metric:latency_p95_ms"
    assert len(front) >= 1 and front[cost].is_monotonic_increasing and front["loss"].is_monotonic_decreasing
    for _, row in front.iterrows():
        better = trials[(trials[cost] <= row[cost]) & (trials["loss"] <= row["loss"])
                        & ((trials[cost] < row[cost]) | (trials["loss"] < row["loss"]))]
        assert better.empty


def test_a_run_directory_reads_back(deployed_run):
    again = Result.load(deployed_run.run_dir)
    assert again.best == deployed_run.best and len(again.trials) == 14
    for key in ("verification", "measured"):  # what deployment.json keeps of the final graph
        assert again.deployment["final"][key] == deployed_run.final[key]
    assert again.onnx_path.is_file()
    assert json.loads(json.dumps(again.to_dict(), default=str))["evaluations"] == 14


def test_cli_run_writes_result_json_and_report_and_report_rebuilds_it(tmp_path):
    problem = tmp_path / "p.yaml"
    problem.write_text(yaml.safe_dump({"name": "cli", "data": "sklearn:iris", "objective": {"cv": 3},
                                       "restrict": {"estimator": ["logistic_regression", "knn"]},
                                       "budget": {"evaluations": 6}, "seed": 0}))
    run = subprocess.run([sys.executable, "-m", "admm_tune.cli", "run", str(problem), "--out", str(tmp_path / "r"),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["evaluations"] == 6 and result["best"]["feasible"]
    (tmp_path / "r" / "report.html").unlink()
    report = subprocess.run([sys.executable, "-m", "admm_tune.cli", "report", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and (tmp_path / "r" / "report.html").is_file()
    missing = subprocess.run([sys.executable, "-m", "admm_tune.cli", "report", str(tmp_path)], capture_output=True,
                             text=True, timeout=300)
    assert missing.returncode == 2 and "not a run directory" in missing.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_report_renders_in_chromium_with_every_image_loaded(deployed_run, tmp_path):
    text = deployed_run.report(tmp_path / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             "const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;"
             "document.body.setAttribute('data-images', ok + '/' + imgs.length); });</script>")
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe + "</body>"))
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-images="(\d+)/(\d+)"', out.stdout)
    assert match, out.stderr[-2000:]
    assert match.group(1) == match.group(2) == str(text.count("<img"))


def test_a_callable_objective_reports_against_evaluation_time(quadratic_problem, tmp_path):
    """No fit time and no latency: the report and the front fall back to each evaluation's duration."""
    import matplotlib

    backend = matplotlib.get_backend()
    result = admm_tune.fit(quadratic_problem, budget=12, seed=0, n_jobs=2, run_dir=tmp_path, progress=False)
    assert "metric:fit_time_s" not in result.trials
    front = result.pareto()
    assert len(front) >= 1 and front["duration_s"].is_monotonic_increasing
    assert len(images(result.report(tmp_path / "report.html").read_text())) == 3  # no latency: no backend plot
    assert matplotlib.get_backend() == backend  # the user's pyplot backend is left alone


def _trace(mu: list, residual: list, violation: list, rho: list) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame({"iteration": range(len(mu)), "mu": [json.dumps(m) for m in mu], "primal_residual": residual,
                         "violation": violation, "rho": rho})


def test_the_trace_shows_the_panels_that_moved_named_and_says_which_stayed_flat(deployed_run):
    from matplotlib.ticker import MaxNLocator

    from admm_tune.report import trace_figure

    constraints = deployed_run.problem.constraints
    fig, flat = trace_figure(_trace([[0, 0], [0.5, 0], [0.7, 0]], [0, 0, 0], [0.3, 0.1, 0], [1, 1, 1]), constraints)
    assert [ax.get_title() for ax in fig.axes] == ["constraint violation", "multiplier μ of each constraint"]
    labels = fig.axes[1].get_legend_handles_labels()[1]
    assert labels == [str(constraints[0])]  # named by its constraint, not μ0; the flat μ of the other is said
    assert labels[0].startswith("latency_p95_ms <= ")
    assert [ax.get_legend_handles_labels()[1] for ax in fig.axes[:1]] == [["violation"]]  # ρ stayed: said
    assert flat == ["the integer residual stayed 0", "ρ stayed 1", "μ of output_mismatch <= 1 stayed 0"]
    for ax in fig.axes:
        locator = ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
    still, flat = trace_figure(_trace([[0, 0]] * 3, [0, 0, 0], [0, 0, 0], [1, 1, 1]), constraints)
    assert still is None and flat == ["the integer residual stayed 0", "violation stayed 0", "ρ stayed 1",
                                      "every μ stayed 0"]
    text = deployed_run.report(deployed_run.run_dir / "again.html").read_text()
    trace = text[text.index("<h2>ADMM trace"):text.index("<h2>Score against cost")]
    assert ("<img" in trace) or "stayed" in trace  # a figure of what moved, or only the sentence


def test_no_constraints_no_empty_multiplier_panel():
    from admm_tune.report import trace_figure

    fig, flat = trace_figure(_trace([[]] * 3, [0.2, 0.1, 0], [0, 0, 0], [1, 2, 4]), ())
    assert [ax.get_title() for ax in fig.axes] == ["integer residual ‖θ̃ᵈ − δ‖", "ρ (no constraints)"] and not flat


def test_latencies_spanning_orders_of_magnitude_get_a_log_axis():
    import pandas as pd

    from admm_tune.report import LATENCY, _per_backend

    trials = pd.DataFrame({"state": "complete", "backend": ["onnxruntime"] * 3 + ["openvino"] * 3,
                           LATENCY: [0.01, 0.02, 0.03, 1.0, 3.0, 9.0]})
    assert _per_backend(trials).axes[0].get_xscale() == "log"
    assert _per_backend(trials.assign(**{LATENCY: [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]})).axes[0].get_xscale() == "linear"


def test_failure_reasons_are_grouped_above_the_trials_table(tmp_path):
    slow = {"name": "failing", "data": "sklearn:iris", "objective": {"cv": 3}, "budget": {"evaluations": 4},
            "seed": 0, "isolation": {"seconds": 1.0},
            "search_space": {"modules": [{"name": "estimator", "algorithms": [
                {"name": "mlp", "class": "sklearn.neural_network.MLPClassifier",
                 "fixed": {"hidden_layer_sizes": [1000], "max_iter": 5000, "tol": 0.0, "n_iter_no_change": 10000}},
                {"name": "knn", "class": "sklearn.neighbors.KNeighborsClassifier"}]}]}}
    result = admm_tune.fit(slow, run_dir=tmp_path, progress=False)
    assert result.n_failed >= 1
    text = result.report(tmp_path / "report.html").read_text()
    assert "<h2>Failures (" in text and text.index("<h2>Failures") < text.index("<h2>Trials")
    assert "timeout: over the 1 s limit" in text[text.index("<h2>Failures"):text.index("<h2>Trials")]


def test_every_infeasible_candidate_says_which_constraint_it_broke_by_how_much():
    import pandas as pd

    from admm_tune.report import _infeasible_section, why_infeasible
    from admm_tune.settings import Constraint

    constraints = (Constraint("latency_p95_ms", 0.25), Constraint("model_size_kb", 100.0))
    trials = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["complete", "complete", "complete", "fail"],
                           "feasible": [True, False, False, False],
                           "metric:latency_p95_ms": [0.1, 0.31, 0.2, None], "metric:model_size_kb": [5, 50, 460, None]})
    assert list(why_infeasible(trials, constraints)) == [
        "", "latency_p95_ms 0.31 ms > 0.25 ms", "model_size_kb 460 kB > 100 kB", ""]  # a failure has its reason
    section = _infeasible_section(trials, constraints)
    assert "Infeasible candidates (2 of 4 evaluations)" in section
    assert "<td>1</td><td>1</td><td>latency_p95_ms &gt; 0.25 ms</td>" in section
