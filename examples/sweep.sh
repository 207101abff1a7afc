#!/usr/bin/env bash
# A scripted sweep: two problems x three seeds x two budgets into one results table.
# Run it again after an interruption (Ctrl-C, a killed job): it finishes only what is missing.
#   bash examples/sweep.sh [OUT_DIR] [BUDGETS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-admm_runs/sweep-example}  # admm_runs/ is ignored by git
BUDGETS=${2:-20,40}
ADMM_TUNE=${ADMM_TUNE:-admm-tune}
$ADMM_TUNE sweep problems/wine.yaml problems/breast_cancer.yaml --seeds 0-2 --budgets "$BUDGETS" --out "$OUT"
echo "table: $OUT/results.csv ($(($(wc -l < "$OUT/results.csv") - 1)) rows); a report per run: $OUT/*/report.html"
