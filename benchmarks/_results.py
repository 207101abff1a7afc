"""Where benchmarks write their figures: ``benchmarks/results/NAME.csv`` and ``NAME.md``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, frame: pd.DataFrame, lines: list[str]) -> None:
    """Write the raw rows as CSV and the markdown summary ``lines``, and print the summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{name}.csv", index=False)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
