#!/usr/bin/env bash
# Run every benchmark at full scale (or at the scale given as the first argument) and
# print the machine's load before and after. Results go to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SCALE=${1:-1}

echo "load before: $(uptime)"
for bench in ingest als ease topn foldin; do
    echo
    echo "=== bench_${bench}.py --scale ${SCALE}"
    "$PYTHON" "benchmarks/bench_${bench}.py" --scale "$SCALE"
done
echo
echo "load after: $(uptime)"
