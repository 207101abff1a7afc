"""The ``admm-tune`` command line.

Exit codes: 0 success, 1 the run failed, 2 bad usage or a malformed problem, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import Interrupted, ProblemError, RunError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``admm-tune``."""
    parser = argparse.ArgumentParser(prog="admm-tune", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"admm-tune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="search a problem file and print the chosen pipeline")
    run.add_argument("problem", help="problem YAML file")
    run.add_argument("--budget", help="evaluations (200) or a duration (60s, 5m); overrides the file")
    run.add_argument("--seed", type=int, help="seed (overrides the file)")
    run.add_argument("--out", help="run directory for the journal (default ./admm_runs/NAME-TIME)")
    run.add_argument("--n-jobs", type=int, default=1, help="candidates evaluated in parallel")
    run.add_argument("--storage", help="SQLAlchemy URL of the journal (e.g. postgresql://...), instead of the run dir")
    run.add_argument("--backend", choices=["processes", "dask"], default="processes",
                     help="where candidates run: isolated processes here, or a Dask cluster")
    run.add_argument("--scheduler", help="Dask scheduler address (default: a local cluster of --n-jobs workers)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress line")
    validate = sub.add_parser("validate", help="check a problem file; exit 2 with the field on error")
    validate.add_argument("problem", help="problem YAML file")
    sub.add_parser("backends", help="list the inference backends and whether they run on this machine")
    again = sub.add_parser("resume", help="continue an interrupted run from its journal")
    again.add_argument("run_dir", help="the run directory (holds journal.db)")
    again.add_argument("--budget", help="a new total budget (default: the run's)")
    again.add_argument("--n-jobs", type=int, default=1, help="candidates evaluated in parallel")
    again.add_argument("--no-progress", action="store_true", help="hide the progress line")
    again.add_argument("--fork", action="store_true",
                       help="start a new run of the problem as its file is now (the run's seed and budget), beside "
                            "RUN_DIR, reusing none of its trials: for a problem that changed since the run started")
    sweep_cmd = sub.add_parser("sweep", help="run problems x seeds x budgets into one results table (resumable)")
    sweep_cmd.add_argument("problems", nargs="+", help="problem YAML files")
    sweep_cmd.add_argument("--seeds", default="0", help="seeds: 0-4 or 1,3,7 (default 0)")
    sweep_cmd.add_argument("--budgets", default=None,
                           help="comma-separated budgets, e.g. 30s,120s or 50,200 (default: each file's)")
    sweep_cmd.add_argument("--n-jobs", type=int, default=1, help="combinations run in parallel")
    sweep_cmd.add_argument("--out", required=True, help="sweep directory (results.csv, results.parquet, runs)")
    sweep_cmd.add_argument("--storage", help="SQLAlchemy URL of one journal database for every run (e.g. "
                                             "postgresql://...), instead of a journal.db per run directory")
    report = sub.add_parser("report", help="write the HTML report of a run directory")
    report.add_argument("run_dir", help="the run directory (holds journal.db)")
    report.add_argument("--out", help="report file (default RUN_DIR/report.html)")
    args = parser.parse_args(argv)
    try:
        return _command(args)
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback
        if args.command == "sweep":
            said = "interrupted; run the same command again to finish the missing combinations"
        else:  # a run says how far it got and how to continue
            said = str(exc) if isinstance(exc, Interrupted) else "interrupted"
        print(f"\nadmm-tune: {said}", file=sys.stderr)
        return INTERRUPTED


OPTIONS = {"run_dir": "--out", "storage": "--storage", "--budgets": "--budgets", "--seeds": "--seeds",
           "n_jobs": "--n-jobs", "backend": "--backend", "resume": "RUN_DIR"}
"""A :class:`ProblemError`'s field that is a command-line option, and the option's name (exit 2 naming it)."""

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""


def _command(args: argparse.Namespace) -> int:
    """Run the parsed command; return the exit code (the libraries a command needs are imported here, so that
    ``--version`` and ``--help`` answer at once)."""
    if args.command == "backends":
        from .evaluate.backends import list_backends

        print(backends_text(list_backends()))
        return 0
    if args.command == "report":
        from .result import Result

        try:
            path = Result.load(args.run_dir).report(args.out or Path(args.run_dir) / "report.html")
        except RunError as exc:
            print(f"admm-tune: {exc}", file=sys.stderr)
            return 2
        print(path)
        return 0
    try:
        if args.command == "sweep":
            from .sweep import parse_seeds, sweep

            budgets = args.budgets.split(",") if args.budgets else [None]
            frame = sweep(args.problems, parse_seeds(args.seeds), budgets, args.out, n_jobs=args.n_jobs,
                          storage=args.storage)
            print(frame.drop(columns=["file", "run_dir", "reason"], errors="ignore").to_string(index=False))
            return 0
        if args.command == "validate":
            from .problem import load_problem

            problem = load_problem(args.problem)
            print(f"{args.problem}: ok ({problem.name}, {len(problem.space.modules)} modules, "
                  f"{len(problem.constraints)} constraints, budget {problem.budget})")
            for note in problem.notes:
                print(f"  note: {note}")
            return 0
        from .runner import fit, resume

        if args.command == "resume":
            result = resume(args.run_dir, budget=args.budget, n_jobs=args.n_jobs, progress=not args.no_progress,
                            report=True, fork=args.fork)
        else:
            result = fit(args.problem, budget=args.budget, seed=args.seed, run_dir=args.out, n_jobs=args.n_jobs,
                         progress=not args.no_progress, storage=args.storage, backend=args.backend,
                         scheduler=args.scheduler, report=True)
    except ProblemError as exc:
        option = OPTIONS.get(exc.field.split(".")[0])
        print(f"admm-tune: {option}: {exc.reason}" if option else f"admm-tune: invalid problem: {exc}",
              file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"admm-tune: run failed: {exc}", file=sys.stderr)
        return 1
    print(result.summary())  # fit wrote result.json and report.html into the run directory, inside the budget
    if result.run_dir is not None:
        print(f"report       {result.run_dir / 'report.html'}")
    if len(result.trace):
        cols = ["iteration", "structure", "new_evaluations", "rho", "primal_residual", "violation", "best_loss"]
        print("\nADMM trace (best_loss: the search's best so far, on its own folds; the choice is told above)")
        print(result.trace[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


def backends_text(table: Any, width: int = 100) -> str:
    """The backends table in ``width`` columns: one line per backend, its reason wrapped below it."""
    lines = [f"{'backend':<18}{'available':<11}{'devices':<10}{'precisions':<16}standard ops only"]
    for row in table.itertuples(index=False):
        standard = {True: "yes", False: "no"}.get(row.standard_ops_only, "-")
        lines.append(f"{row.backend:<18}{'yes' if row.available else 'no':<11}{row.devices or '-':<10}"
                     f"{row.precisions or '-':<16}{standard}")
        lines.append(textwrap.fill(str(row.reason), width, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
