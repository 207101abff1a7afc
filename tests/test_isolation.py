"""Isolation of candidates with real processes: exceptions, hard exits, segfaults, hangs, memory blow-ups."""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import partial

import pytest
from pool_checks import meanwhile, sleepy

import admm_tune
from admm_tune import Problem, ProblemError, RunError, SearchSpace, load_problem
from admm_tune.evaluate.function import FunctionEvaluator
from admm_tune.observation import Observation
from admm_tune.parallel import Limits, WorkerPool
from admm_tune.problem import Budget, OptimizerSettings
from admm_tune.testing.pools import candidate

SPACE = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [
    {"name": "ok", "params": {"x": {"type": "float", "low": 0, "high": 1}}},
    {"name": "raises"}, {"name": "exits"}, {"name": "segfault"}, {"name": "hangs"}, {"name": "hogs"}]}]})


EXPECTED = {"raises": "error: ValueError: bad candidate", "exits": "crash: exit code 3", "segfault": "crash: SIGSEGV",
            "hangs": "timeout: over the 1 s limit", "hogs": "memory: over the 2048 MiB limit"}


def test_each_failure_is_recorded_with_its_reason_and_the_run_goes_on(tmp_path):
    # Six initial draws (a quarter of 24 evaluations) try every structure once.
    problem = Problem(SPACE, candidate, budget=Budget(evaluations=24), optimizer=OptimizerSettings(initial_pulls=6),
                      isolation=Limits(seconds=1.0, memory_mb=2048))
    result = admm_tune.fit(problem, seed=0, run_dir=tmp_path, progress=False)
    trials = result.trials
    assert len(trials) == 24 and result.best.config["m"] == "ok"
    for kind, reason in EXPECTED.items():
        rows = trials[trials["structure"] == kind]
        assert len(rows), f"{kind} was never tried"
        assert (rows["state"] == "fail").all() and rows["reason"].str.startswith(reason).all(), rows["reason"]
    assert (trials[trials["structure"] == "ok"]["state"] == "complete").all()


DEAF_S = 120.0


def deaf(config):
    """Like native code that never hands control back: the timer's signal is blocked (``m == "ok"``: returns)."""
    if config["m"] == "ok":
        return Observation("complete", 1.0)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(DEAF_S)
    return 1.0


def test_a_worker_that_never_returns_to_python_is_killed(monkeypatch):
    monkeypatch.setattr("admm_tune.parallel.GRACE_S", 0.5)
    pool = WorkerPool(deaf, 1, Limits(seconds=0.5))
    with pool:
        assert pool.evaluate([{"m": "ok"}])[0].ok  # the worker has started
        start = time.monotonic()
        (obs,) = pool.evaluate([{"m": "x"}])
        # Killed after 0.5 + 0.5 s (a second or two with the replacement): a quarter of the deaf sleep leaves
        # room for a machine many times slower, and a pool that waited for the sleep fails.
        assert obs.reason == "timeout: over the 0.5 s limit (killed)" and time.monotonic() - start < DEAF_S / 4
        (again,) = pool.evaluate([{"m": "y"}])  # a fresh worker took its place
        assert again.reason.startswith("timeout")


def test_workers_keep_their_caches_and_configs_with_one_affinity_meet_the_same_worker():
    class Counting:
        def __init__(self):
            self.seen = []

        def affinity(self, config):
            return config["ml"]

        def __call__(self, config):
            self.seen.append(config["ml"])
            return Observation("complete", float(len(self.seen)), {"pid": float(os.getpid())})

    with WorkerPool(Counting(), 2) as pool:
        first = pool.evaluate([{"ml": "a", "k": 1}, {"ml": "b", "k": 1}])
        second = pool.evaluate([{"ml": "b", "k": 2}, {"ml": "a", "k": 2}])
    by_ml = {"a": (first[0], second[1]), "b": (first[1], second[0])}
    for ml, (one, two) in by_ml.items():
        assert one.metrics["pid"] == two.metrics["pid"], ml  # same worker
        assert two.loss == one.loss + 1  # its state carried over
    assert first[0].metrics["pid"] != first[1].metrics["pid"]  # two workers ran the batch


def test_with_two_workers_the_search_goes_on_while_a_slow_candidate_runs(tmp_path):
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [
        {"name": "slow", "params": {"s": {"type": "float", "low": 3.0, "high": 3.5}}},
        {"name": "fast", "params": {"x": {"type": "float", "low": 0, "high": 1}}}]}]})
    # The slow candidate ends once five fast ones ended after it started (or after 10 s): no sleep to outrun.
    problem = Problem(space, partial(meanwhile, str(tmp_path / "ended.log")), budget=Budget(evaluations=12),
                      optimizer=OptimizerSettings(initial_pulls=2))
    trials = admm_tune.fit(problem, seed=0, n_jobs=2, run_dir=tmp_path, progress=False).trials
    assert len(trials) == 12 and (trials["state"] == "complete").all()
    slow = trials[trials["structure"] == "slow"].iloc[0]
    during = trials[(trials["datetime_start"] > slow["datetime_start"])
                    & (trials["datetime_complete"] < slow["datetime_complete"])]
    assert len(during) >= 3, during  # a synchronous batch would have waited for the slow one


class SigintWhenFinalised:
    """Ctrl-C pressed while Python runs this object's finaliser (as it may while the journal's SQLAlchemy objects
    are collected): Python's own handler raises KeyboardInterrupt inside ``__del__``, which prints "Exception
    ignored" and loses it, so the run went on."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(3):  # the handler runs here, inside the finaliser
            pass


def test_ctrl_c_while_a_pool_is_open_is_raised_by_the_pool_wherever_it_was_pressed(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with WorkerPool(FunctionEvaluator(sleepy), 1) as pool:
            assert pool.evaluate([{"s": 0.01}])[0].ok
            SigintWhenFinalised()  # dropped at once: the press lands in its finaliser
            pool.evaluate([{"s": 0.01}])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back when the pool closed
    release = tmp_path / "release"
    with WorkerPool(FunctionEvaluator(sleepy), 1) as pool:  # a press during the pool's wait wakes it
        pool.submit({"until": str(release)})  # runs until released (60 s at most)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            pool.next()
        assert time.monotonic() - start < 30  # not after the candidate's 60 s
        release.touch()


def test_a_run_whose_every_candidate_crashes_ends_with_the_reasons(tmp_path):
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [{"name": "exits"}, {"name": "segfault"}]}]})
    problem = Problem(space, candidate, budget=Budget(evaluations=4))
    with pytest.raises(RunError, match=r"every one of the 2 candidates failed: .*crash: (exit code 3|SIGSEGV)"):
        admm_tune.fit(problem, run_dir=tmp_path, progress=False)


def test_isolation_settings_are_validated():
    base = {"data": "sklearn:iris", "budget": {"evaluations": 2}}
    assert load_problem({**base, "isolation": {"seconds": 30, "memory_mb": 4096}}).isolation == Limits(30.0, 4096)
    assert load_problem({**base, "isolation": {"seconds": None}}).isolation.seconds is None
    with pytest.raises(ProblemError, match=r"isolation\.seconds: must be > 0"):
        load_problem({**base, "isolation": {"seconds": 0}})
    with pytest.raises(ProblemError, match=r"isolation\.memory_mb: must be >= 256"):
        load_problem({**base, "isolation": {"memory_mb": 10}})


POOL_SCRIPT = """
import json, multiprocessing, sys
sys.path.insert(0, {tests!r})
from pool_checks import fit_in_a_pool_worker
if __name__ == "__main__":
    with multiprocessing.get_context({method!r}).Pool(2) as pool:
        print(json.dumps(pool.map(fit_in_a_pool_worker, [0, 1])))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_fit_inside_a_multiprocessing_pool_worker_runs_its_candidates_in_process(method, tmp_path):
    """A Pool worker may not start processes: the fit evaluates in-process, says so in one line, and works.

    The Pool is made by a fresh script, as a user's is: forking this test process, whose earlier tests left
    library threads running, could deadlock a child on a lock one of them held (a hazard of fork itself)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "pool_user.py"
    script.write_text(POOL_SCRIPT.format(tests=str(Path(__file__).parent), method=method))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for score, said in json.loads(out.stdout.strip().splitlines()[-1]):
        assert score > 0.9
        assert len(said) == 1 and "multiprocessing.Pool worker" in said[0] and "joblib" in said[0]
