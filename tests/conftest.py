"""Shared fixtures of fastxent's tests.

The tests import the ``fastxent`` that Python finds: the installed package under
CI (``pip install .`` then ``python -m pytest tests`` from the repository root;
the src layout keeps the uninstalled sources off ``sys.path``), or an in-place
build with ``PYTHONPATH=src``.  The header of a run says which one it got.

Tests marked ``slow`` run only with ``--run-slow``.
"""
from __future__ import annotations

import os
import zlib

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def pytest_report_header(config):
    try:
        import fastxent
        from fastxent import _kernels
    except ImportError as exc:  # the tests will say so loudly; keep the header short
        return f"fastxent: not importable ({exc})"
    return (f"fastxent {fastxent.__version__} from {os.path.dirname(fastxent.__file__)}; "
            f"SIMD path {_kernels.simd_path}; {fastxent.get_num_threads()} thread(s)")


@pytest.fixture
def rng(request):
    """A NumPy Generator seeded from the test's name: reproducible, and different
    from test to test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the oracle of the semantics; the test is skipped without it."""
    # Not torch.set_num_threads: CPU torch shares libgomp with fastxent, and
    # changing OpenMP's thread count there would change fastxent's default too.
    return pytest.importorskip("torch")


@pytest.fixture
def keep_num_threads():
    """Restores fastxent's default thread count after a test that sets it."""
    import fastxent
    before = fastxent.get_num_threads()
    yield
    fastxent.set_num_threads(before)
