"""Where benchmarks write their figures: ``benchmarks/results/NAME.csv`` and ``NAME.md``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, frame: pd.DataFrame, lines: list[str]) -> None:
    """Write the raw rows as CSV and the markdown summary ``lines``, and print the summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def finished(name: str, key: list[str]) -> tuple[Path, set[tuple]]:
    """``results/NAME.csv`` of a benchmark that appends a row per job as it ends, and the jobs (their ``key``
    values) already in it, so that a stopped run resumes."""
    out = RESULTS / f"{name}.csv"
    done = pd.read_csv(out, dtype={"commit": str}) if out.exists() else pd.DataFrame(columns=key)
    return out, set(map(tuple, done[key].to_numpy().tolist()))


def append(out: Path, row: dict) -> None:
    """Add ``row`` to the CSV ``out``, whose rows may hold different columns: the file is rewritten with the union
    of the columns (appending a row whose keys differ from the header's would shift its values)."""
    old = pd.read_csv(out, dtype={"commit": str}) if out.exists() else pd.DataFrame()
    pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(out, index=False)


def commit() -> str:
    """The short hash of the checkout's HEAD."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
