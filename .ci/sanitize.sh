#!/usr/bin/env bash
# CI: the test suite under AddressSanitizer + UBSan (tools/run_sanitized.sh).
# Run it from .ci/run with the CI venv active (it needs the test extras); it adds
# the build requirements, builds a sanitized copy of the tree (the venv's own
# fastxent is left alone) and runs every test not marked slow.  About 3 minutes
# on 2 cores; the default hypothesis and fuzz sizes keep it there.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
PYTHON=${PYTHON:-python}
"$PYTHON" -m pip install -q "Cython>=3.0" "setuptools>=77" "numpy>=2.0" pytest hypothesis
PYTHON=$PYTHON tools/run_sanitized.sh "$@"
echo "== sanitizers done ($((SECONDS - start)) s)"
