#!/usr/bin/env bash
# The documentation site, checked as a reader would meet it.  Run by .ci/run in
# its venv, after `pip install ".[test]"` (fastxent must be installed, or built
# in place with PYTHONPATH=src for a local run):
#  1. installs the docs requirements (docs/requirements.txt) and the libraries
#     of the pipeline pages (docs/requirements-pipelines.txt), and headless
#     Chromium from Debian's packages where it is missing and we are root;
#  2. builds the site from scratch with warnings as errors; every script of
#     examples/ runs as part of the build (sphinx-gallery), a failing one fails it;
#  3. runs the docstring examples of the installed package and the user guide's
#     examples as doctests (a wrong example fails);
#  4. opens the built site in headless Chromium (tests/test_docs_render.py):
#     headings, images that load, no reST shown as text, screenshots.
# Set DOCS_SKIP_INSTALL=1 to use what is installed already.  About 3 minutes on
# 2 cores once the packages are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
step() { echo "== docs: $1 ($((SECONDS - start)) s)"; }

python - <<'PY' || { echo "docs.sh: fastxent must be importable (pip install . first)" >&2; exit 1; }
import fastxent, os
print(f"documenting fastxent {fastxent.__version__} from {os.path.dirname(fastxent.__file__)}")
PY

if [ "${DOCS_SKIP_INSTALL:-0}" != 1 ]; then
    python -m pip install -q -r docs/requirements.txt -r docs/requirements-pipelines.txt
    if ! command -v chromium > /dev/null && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
            > /tmp/fastxent-docs-apt.log 2>&1 || { tail -20 /tmp/fastxent-docs-apt.log; exit 1; }
    fi
    step "requirements installed"
fi

# From scratch: generated API pages and gallery outputs would let examples skip running.
rm -rf docs/_build docs/reference/generated docs/auto_examples docs/sg_execution_times.rst
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
step "site built (examples run), no warnings"
python - <<'PY'
# The gallery's run times, as sphinx-gallery recorded them.
import re
text = open("docs/auto_examples/sg_execution_times.rst", encoding="utf-8").read()
for name, secs in re.findall(r":ref:`sphx_glr_auto_examples_(\w+)\.py`.*?\n\s+- (\d+:\d+\.\d+)", text):
    print(f"   example {name}.py ran in {secs}")
PY

# The docstrings' examples, run against the package Sphinx documented (--pyargs:
# the installed one, not src/), then the user guide's.
python -m pytest -q -p no:cacheprovider --doctest-modules --pyargs fastxent
python -m pytest -q -p no:cacheprovider --doctest-glob="*.rst" docs/index.rst docs/user_guide
step "doctests passed"

require_browser=0
[ "${CI:-}" = true ] && require_browser=1
FASTXENT_DOCS_HTML=docs/_build/html FASTXENT_DOCS_SHOTS=docs/_build/screenshots \
FASTXENT_DOCS_REQUIRE_BROWSER=$require_browser \
    python -m pytest -q -p no:cacheprovider tests/test_docs_render.py
step "rendered in headless Chromium; screenshots in docs/_build/screenshots"
