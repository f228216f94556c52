#!/usr/bin/env bash
# Keeps the asv suite (asv_bench/) from rotting: every benchmark must import and pass
# `asv check`, and one small workload of each family must run, against the fastxent
# installed in the current Python (.ci/run's venv, after `pip install .`).
# Takes well under 2 minutes; results are not saved.
set -euo pipefail
cd "$(dirname "$0")/../asv_bench"
start=$SECONDS

python -c "import fastxent._workloads" || {
    echo "asv.sh: install fastxent into this Python first (python -m pip install .)" >&2
    exit 1
}
python -c "import asv" 2>/dev/null || python -m pip install -q "asv>=0.6"

python -m asv machine --yes > /dev/null
python -m asv check --python=same
# W2 (multi-class) and W4 (binary) in float32: every benchmark class but the W3 one
# (SecondOrder included: skipped until fastxent has return_hessian / cross_entropy_hvp);
# W6 (linear_cross_entropy) at its --quick size; the small calls (microseconds each).
python -m asv run --python=same --quick --show-stderr \
    -b "'W2', 'float32'" -b "'W4', 'float32'" -b "FusedGradMemory.*'W[24]'" \
    -b "Linear.*'quick'" -b "SmallCall"
echo "== asv check and quick run done ($((SECONDS - start)) s)"
