"""Type checkers reject the misuses of issue 13 and accept the typed usage files.

mypy --strict and pyright (strict) run on tests/typing_usage*.py, which must
pass, and on tests/typing_misuse.py, which must fail on exactly the lines marked
``# error``: a misspelled ``reduction`` (no catch-all ``str`` overload), a
misspelled or mistyped option attribute of a loss class (real attributes, no
``__getattr__``), and ``loss_fn(x, y, weights)`` (``return_grad`` and the rest
are keyword-only).  Each checker is skipped where it is not installed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys

import pytest

import fastxent

HERE = os.path.dirname(os.path.abspath(__file__))
USAGE = [os.path.join(HERE, name) for name in ("typing_usage.py", "typing_usage_binary.py",
                                               "typing_usage_family.py",
                                               "typing_usage_objectives.py")]
MISUSE = os.path.join(HERE, "typing_misuse.py")


def _source_tree():
    """The directory to add to the checkers' search path, or None for an installed fastxent."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(fastxent.__file__)))
    installed = any(os.path.isdir(p) and os.path.samefile(parent, p) for p in site.getsitepackages())
    return None if installed else parent


def _marked_lines(path):
    with open(path) as f:
        return {i for i, line in enumerate(f, 1) if line.rstrip().endswith("# error")}


def _mypy(paths, tmp_path):
    pytest.importorskip("mypy")
    env = dict(os.environ)
    if _source_tree():
        env["MYPYPATH"] = _source_tree()
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
           "--cache-dir", str(tmp_path / "mypy-cache"), *paths]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out = res.stdout + res.stderr
    return res.returncode, out, {(os.path.basename(m[0]), int(m[1]))
                                 for m in re.findall(r"^(.+?):(\d+): error:", out, re.M)}


def _pyright(paths, tmp_path):
    exe = shutil.which("pyright")
    if exe is None:
        pytest.skip("pyright is not installed")
    config = {"typeCheckingMode": "strict", "pythonVersion": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    if _source_tree():
        config["extraPaths"] = [_source_tree()]
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    cmd = [exe, "--outputjson", "--pythonpath", sys.executable, "--project",
           str(tmp_path / "pyrightconfig.json"), *paths]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError:
        pytest.skip(f"pyright did not run: {(res.stdout + res.stderr)[-300:]}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    lines = {(os.path.basename(d["file"]), d["range"]["start"]["line"] + 1) for d in errors}
    text = "\n".join(f"{os.path.basename(d['file'])}:{d['range']['start']['line'] + 1}: {d['message']}"
                     for d in errors)
    return res.returncode, text, lines


@pytest.mark.parametrize("checker", [_mypy, _pyright], ids=["mypy", "pyright"])
def test_typed_usage_passes(checker, tmp_path):
    _, out, lines = checker(USAGE, tmp_path)
    assert not lines, out


@pytest.mark.parametrize("checker", [_mypy, _pyright], ids=["mypy", "pyright"])
def test_misuses_are_rejected(checker, tmp_path):
    _, out, lines = checker([MISUSE], tmp_path)
    want = {("typing_misuse.py", n) for n in _marked_lines(MISUSE)}
    assert len(want) >= 15
    assert lines == want, f"missed: {sorted(want - lines)}; unexpected: {sorted(lines - want)}\n{out}"


def test_misspelled_reduction_error_is_short(tmp_path):
    # mypy lists every overload of a call that matches none: the options that
    # leave the type alone are a TypedDict and ArrayInput is a short union, so
    # the listing stays a few KB (NumPy's ArrayLike alone made it 5.7 KB with
    # five overloads; cross_entropy has seven since return_hessian).  Each option
    # adds its name and type to each overload, about 45 bytes.  Since the merge
    # of weights (seven overloads, sample_weight) with z_loss and softcap the
    # listing measures 7.5 KB (mypy 2.4.1, NumPy 2.4); the limit, 4.5 KB on
    # main and 8 KB on weights before, is 8.5 KB for some margin.
    path = tmp_path / "one_misuse.py"
    path.write_text("import numpy as np\nimport fastxent\n"
                    "fastxent.cross_entropy(np.zeros((2, 3)), [0, 1], reduction='avg')\n")
    _, out, lines = _mypy([str(path)], tmp_path)
    assert lines == {("one_misuse.py", 3)}, out
    out = out.replace(str(path), path.name)       # as run from the file's directory
    assert len(out) < 8500, out
