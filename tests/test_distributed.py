"""A real Dask cluster (scheduler and worker processes on loopback) and a journal in a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pool_checks import sleepy

import admm_tune
from admm_tune import Problem, SearchSpace
from admm_tune.evaluate.function import FunctionEvaluator
from admm_tune.parallel import DaskPool, Limits
from admm_tune.testing import pools
from admm_tune.problem import Budget

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                           host="127.0.0.1")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_a_small_fit_runs_end_to_end_on_a_local_cluster(client, tmp_path):
    problem = {"name": "on_dask", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
               "restrict": {"estimator": ["logistic_regression", "knn", "gaussian_nb"]}, "budget": {"evaluations": 8},
               "seed": 0}
    result = admm_tune.fit(problem, n_jobs=2, backend="dask", scheduler=client, run_dir=tmp_path, progress=False)
    assert len(result.trials) == 8 and (result.trials["state"] == "complete").all()
    assert result.best.metrics["cv_score"] > 0.9
    assert len(client.scheduler_info()["workers"]) == 2


def test_the_dask_pool_takes_every_worker_thread(client):
    assert DaskPool(FunctionEvaluator(sleepy), client, n_workers=-1).capacity == 2


@pytest.mark.parametrize("check", pools.CHECKS, ids=lambda c: c.__name__)
def test_the_dask_pool_keeps_the_pool_contract(client, check):
    """admm_tune/testing/pools.py, as every pool (its time-out and crash checks included; memory is the Dask
    workers' own limit, which the pool does not declare)."""
    check(lambda evaluator, limits: DaskPool(evaluator, client, n_workers=2, limits=limits))


def test_pools_of_the_same_evaluator_do_not_share_its_data(client):
    """A pool's copy of the evaluator is its own: releasing another pool's copy cannot take it away.

    Scattered by content hash, two pools of the same evaluator shared one key; when the first was dropped just as
    the second scattered, the scheduler forgot the data and the second pool's tasks failed with "lost data" (seen
    in CI, about once in 400 pools on a loaded 2-core machine).
    """
    first, second = (DaskPool(FunctionEvaluator(sleepy), client, n_workers=2) for _ in range(2))
    assert first.payload.key != second.payload.key
    del first
    assert all(o.ok for o in second.evaluate([{"s": 0.0}, {"s": 0.0}]))


def test_a_worker_keeps_only_the_evaluators_of_its_latest_runs(client):
    from admm_tune.parallel import DASK_KEPT

    for _ in range(DASK_KEPT + 2):  # run after run on one cluster: evaluators with their caches must not pile up
        assert DaskPool(FunctionEvaluator(sleepy), client, n_workers=2).evaluate([{"s": 0.0}] * 2)[0].ok
    kept = client.run(lambda dask_worker: len(getattr(dask_worker, "_admm_tune_evaluators", {})))
    assert max(kept.values()) == DASK_KEPT


HANG_S = 300.0


def crashing(config):
    if config["m"] == "exits":
        os._exit(3)
    if config["m"] == "hangs":
        time.sleep(HANG_S)
    return 1.0


def test_dask_workers_that_die_or_hang_fail_their_candidate_only(client):
    pool = DaskPool(FunctionEvaluator(crashing), client, limits=Limits(seconds=0.5))
    import admm_tune.parallel as parallel

    grace, parallel.GRACE_S = parallel.GRACE_S, 1.0
    try:
        (dead,) = pool.evaluate([{"m": "exits"}])  # the nanny restarts the worker
        ok, hung = pool.evaluate([{"m": "fine"}, {"m": "hangs"}])
    finally:
        parallel.GRACE_S = grace
    assert ok.ok and ok.loss == 1.0
    assert hung.reason.startswith("timeout: over the 0.5 s limit")
    assert dead.reason.startswith("crash: the Dask worker died")
    start = time.monotonic()
    assert all(o.ok for o in pool.evaluate([{"m": "fine"}, {"m": "fine"}]))
    # Nothing queued behind the hung thread (its worker was restarted): seconds, where waiting for it takes minutes.
    assert time.monotonic() - start < HANG_S / 5


def test_unknown_backend_is_a_problem_error(tmp_path):
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [{"name": "a"}]}]})
    with pytest.raises(admm_tune.ProblemError, match="backend"):
        admm_tune.fit(Problem(space, lambda c: 1.0, budget=Budget(evaluations=1)), backend="ray", run_dir=tmp_path,
                      progress=False)


# -- PostgreSQL ---------------------------------------------------------------------------------------------------
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin")) if Path("/usr/lib/postgresql").is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


IN_CI = os.environ.get("CI") == "true"
"""CI starts the services (.ci/services.sh): there, a missing one fails its tests instead of skipping them."""


def unavailable(why: str) -> None:
    """Skip a test whose service cannot run here, except in CI, where that is a failure."""
    if IN_CI:
        pytest.fail(f"{why}; .ci/run starts it (.ci/services.sh)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """PostgreSQL on loopback: the server .ci/services.sh started (ADMM_TUNE_TEST_POSTGRES), else a throw-away one
    (Debian's package: apt-get install postgresql)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install psycopg2-binary)")
    if os.environ.get("ADMM_TUNE_TEST_POSTGRES"):
        yield os.environ["ADMM_TUNE_TEST_POSTGRES"]
        return
    if not PG_BIN or shutil.which("runuser") is None or os.geteuid() != 0:
        unavailable("PostgreSQL is not installed here (apt-get install postgresql), or not running as root")
    bin_dir = PG_BIN[-1]
    data = tmp_path_factory.mktemp("pg")
    os.chmod(data, 0o777)
    for parent in data.parents:  # the postgres user must reach the directory
        if str(parent).startswith("/tmp"):
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
    port = free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True, timeout=120)


def test_two_processes_share_a_postgresql_journal(postgres, tmp_path):
    procs = []
    for name in ("first", "second"):
        file = tmp_path / f"{name}.yaml"
        file.write_text(yaml.safe_dump({"name": name, "data": "sklearn:iris", "objective": {"cv": 3},
                                        "restrict": {"estimator": ["logistic_regression", "knn"]},
                                        "budget": {"evaluations": 6}, "seed": 0}))
        procs.append(subprocess.Popen([sys.executable, "-m", "admm_tune.cli", "run", str(file), "--storage", postgres,
                                       "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    import optuna

    for name in ("first", "second"):
        assert len(optuna.load_study(study_name=name, storage=postgres).trials) == 6


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "admm_tune.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def small_problem(path: Path, name: str, evaluations: int = 3) -> Path:
    path.write_text(yaml.safe_dump({"name": name, "data": "sklearn:iris", "objective": {"cv": 3},
                                    "restrict": {"estimator": ["logistic_regression", "knn", "gaussian_nb"]},
                                    "budget": {"evaluations": evaluations}, "seed": 0}))
    return path


def test_two_processes_racing_for_one_study_leave_it_whole(postgres, tmp_path):
    """Two runs of one name write one PostgreSQL database at once: exactly one owns the study and completes, the
    other stops with the reason, and the study holds the winner's trials only."""
    import optuna

    file = small_problem(tmp_path / "shared.yaml", f"race_{os.getpid()}", evaluations=4)
    procs = [subprocess.Popen([sys.executable, "-m", "admm_tune.cli", "run", str(file), "--storage", postgres,
                               "--no-progress", "--out", str(tmp_path / f"run{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    assert any("already holds a run named" in err for _, err in outcomes)
    trials = optuna.load_study(study_name=f"race_{os.getpid()}", storage=postgres).trials
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)


def test_resume_report_and_sweep_on_postgresql(postgres, tmp_path):
    import optuna

    name = f"resumed_{os.getpid()}"
    file = small_problem(tmp_path / "p.yaml", name)
    run_dir = tmp_path / "run"
    assert cli("run", str(file), "--storage", postgres, "--out", str(run_dir), "--no-progress").returncode == 0
    assert not (run_dir / "journal.db").exists() and (run_dir / "journal.json").is_file()
    again = cli("resume", str(run_dir), "--budget", "5", "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name=name, storage=postgres).trials  # the first 3 kept, 2 more added
    assert len(trials) == 5 and all(t.state.name == "COMPLETE" for t in trials)
    report = cli("report", str(run_dir))
    assert report.returncode == 0 and (run_dir / "report.html").is_file(), report.stderr[-2000:]
    out = tmp_path / "sweep"
    swept = cli("sweep", str(file), "--seeds", "0-1", "--out", str(out), "--storage", postgres)
    assert swept.returncode == 0, swept.stderr[-2000:]
    names = set(optuna.get_all_study_names(postgres))
    assert {f"{name}-seed0-file", f"{name}-seed1-file"} <= names
    assert len(pd.read_csv(out / "results.csv")) == 2


@pytest.fixture(scope="module")
def external_scheduler(tmp_path_factory):
    """A Dask scheduler with two worker processes started by their own entry points: the one .ci/services.sh
    started (ADMM_TUNE_TEST_DASK), else one started here."""
    if os.environ.get("ADMM_TUNE_TEST_DASK"):
        yield os.environ["ADMM_TUNE_TEST_DASK"]
        return
    dask_cli = Path(sys.executable).with_name("dask")
    if not dask_cli.is_file():
        unavailable("the dask command is not installed next to this Python")
    address = f"tcp://127.0.0.1:{free_port()}"
    logs = tmp_path_factory.mktemp("dask")
    procs = [subprocess.Popen([str(dask_cli), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], stdout=open(logs / "scheduler.log", "w"), stderr=subprocess.STDOUT)]
    procs += [subprocess.Popen([str(dask_cli), "worker", address, "--nthreads", "1", "--nworkers", "1",
                                "--no-dashboard"], stdout=open(logs / f"worker{i}.log", "w"),
                               stderr=subprocess.STDOUT) for i in range(2)]
    try:
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def test_a_run_on_an_external_dask_cluster(external_scheduler, tmp_path):
    """The scheduler's address, as a user passes it: the candidates run in the cluster's worker processes."""
    result = admm_tune.fit({"name": "external", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
                            "restrict": {"estimator": ["logistic_regression", "gaussian_nb"]},
                            "budget": {"evaluations": 4}, "seed": 0},
                           n_jobs=2, backend="dask", scheduler=external_scheduler, run_dir=tmp_path, progress=False)
    assert len(result.trials) == 4 and (result.trials["state"] == "complete").all()
    with distributed.Client(external_scheduler, timeout=60) as client:
        workers = client.scheduler_info()["workers"]
        pids = client.run(os.getpid)
    assert len(workers) >= 2 and os.getpid() not in pids.values()
