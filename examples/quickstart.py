"""Fit a problem file and look at the result.

    python examples/quickstart.py [EVALUATIONS] [PROBLEM.yaml]
"""

import sys
from pathlib import Path

import admm_tune

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    evaluations = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    problem = sys.argv[2] if len(sys.argv) > 2 else ROOT / "problems" / "breast_cancer.yaml"
    result = admm_tune.fit(problem, budget=evaluations, seed=0)
    print(result.summary())
    print(result.trials[["number", "structure", "loss", "feasible"]].tail(10).to_string(index=False))
    print("report:", result.report(result.run_dir / "report.html"))
