"""A real Dask cluster (scheduler and worker processes on loopback) and a journal in a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pool_checks import results_come_as_they_finish, sleepy

import admm_tune
from admm_tune import Problem, SearchSpace
from admm_tune.evaluate.function import FunctionEvaluator
from admm_tune.parallel import DaskPool, Limits
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


def test_the_dask_pool_returns_results_as_they_finish(client, tmp_path):
    assert DaskPool(FunctionEvaluator(sleepy), client, n_workers=-1).capacity == 2  # every worker thread
    results_come_as_they_finish(DaskPool(FunctionEvaluator(sleepy), client, n_workers=2), tmp_path / "release")


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


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throw-away PostgreSQL server on loopback (Debian's package: apt-get install postgresql)."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install psycopg2-binary)")
    if not PG_BIN or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql), or not running as root")
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
