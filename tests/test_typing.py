"""The public API's types: mypy --strict on the typed usage files.

Runs against whichever fastxent is imported (the installed wheel in CI, the
source tree in a checkout); skipped where mypy is not installed.
"""
import os
import site
import subprocess
import sys

import pytest

import fastxent

pytest.importorskip("mypy")

HERE = os.path.dirname(os.path.abspath(__file__))


def _mypy(path, tmp_path):
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastxent.__file__)))
    if not any(os.path.samefile(pkg_parent, p) for p in site.getsitepackages() if os.path.isdir(p)):
        env["MYPYPATH"] = pkg_parent          # a source checkout, not an installed package
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
           "--cache-dir", str(tmp_path / "mypy-cache"), path]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_py_typed_is_shipped():
    assert os.path.isfile(os.path.join(os.path.dirname(fastxent.__file__), "py.typed"))


def test_typing_usage(tmp_path):
    _mypy(os.path.join(HERE, "typing_usage.py"), tmp_path)


def test_typing_usage_binary(tmp_path):
    _mypy(os.path.join(HERE, "typing_usage_binary.py"), tmp_path)


def test_typing_usage_family(tmp_path):
    _mypy(os.path.join(HERE, "typing_usage_family.py"), tmp_path)


def test_typing_usage_objectives(tmp_path):
    _mypy(os.path.join(HERE, "typing_usage_objectives.py"), tmp_path)
