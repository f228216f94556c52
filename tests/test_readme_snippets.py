"""The README's "Use it with" section runs (issue 13 item 6).

Every ```python block of that section is a complete program: each runs in a
fresh interpreter, from a temporary directory, against this fastxent.  A block
is skipped only where a library it imports is not installed.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")

pytestmark = pytest.mark.skipif(not os.path.isfile(README), reason="README.md not present")

# The uses the section must cover (its ### headings, in this order).
USES = ["A NumPy training loop", "A SciPy optimizer", "A scikit-learn-style estimator",
        "XGBoost and LightGBM", "PyTorch", "JAX", "Cython"]


def _section():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## Use it with\n(.*?)(?=^## )", text, re.M | re.S)
    assert m, "README.md has no '## Use it with' section"
    return m.group(1)


def _snippets():
    """(heading, index within the heading, code) of every python block."""
    found = []
    for part in re.split(r"^### ", _section(), flags=re.M)[1:]:
        heading = part.splitlines()[0].strip()
        for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", part, re.M | re.S)):
            found.append((heading, i, code))
    return found


def _top_level_imports(code):
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# The libraries a snippet may need beyond fastxent and NumPy (the Cython one
# also imports the module it builds).
OPTIONAL = {"scipy", "sklearn", "xgboost", "lightgbm", "torch", "jax", "Cython", "setuptools"}

SNIPPETS = _snippets() if os.path.isfile(README) else []


def test_the_section_covers_every_use():
    headings = list(dict.fromkeys(heading for heading, _, _ in SNIPPETS))
    assert headings == USES


@pytest.mark.parametrize("heading,index,code", SNIPPETS,
                         ids=[f"{h}-{i}" for h, i, _ in SNIPPETS])
def test_snippet_runs(heading, index, code, tmp_path):
    imports = _top_level_imports(code)                 # a syntax error fails here
    assert "fastxent" in imports, "a snippet shows fastxent in use"
    for name in sorted(imports & OPTIONAL):
        pytest.importorskip(name)                      # absent (or hidden, as under ASan)
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))  # this fastxent
    assert res.returncode == 0, f"{heading} (block {index}):\n{res.stdout[-2000:]}{res.stderr[-4000:]}"
