"""Every table under benchmarks/results/ is what its script generates from the committed CSV files.

A figure edited by hand in a results file, or a CSV rerun without regenerating its table, fails here; the docs
quote these tables (with the file named), so their figures trace to committed data.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))


def generated(name: str) -> str:
    """The markdown the benchmark ``name`` writes, from the committed CSV files."""
    if name == "deployment":
        import deployment

        return deployment.from_results()
    if name == "lowering":  # written by deployment_lowering.py
        import deployment_lowering

        return "\n".join(deployment_lowering.markdown(pd.read_csv(RESULTS / "lowering.csv"))) + "\n"
    module = __import__(name)
    frame = pd.read_csv(RESULTS / f"{name}.csv", dtype={"commit": str})  # "99015e0" is no float
    if name == "search_quality":
        return module.markdown(frame[frame["evaluations"] == frame["evaluations"].max()])
    return "\n".join(module.markdown(frame)) + "\n"


@pytest.mark.parametrize("name", ["search_quality", "scaling", "async_quality", "deployment", "budget", "lowering",
                                  "constrained_search", "dnn_deploy", "portfolio", "rescore", "wall_time", "serving",
                                  "tall_tables", "sla"])
def test_each_results_table_is_generated_from_its_csv(name):
    assert (RESULTS / f"{name}.md").read_text() == generated(name)


def test_every_results_file_the_docs_name_is_committed():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path in re.findall(r"benchmarks/results/[\w.]+\.(?:md|csv)", doc.read_text()):
            assert (ROOT / path).is_file(), f"{doc.name} cites {path}"
