"""SciPy's own tests of logsumexp, softmax and log_softmax, judging fastxent.

``scipy/special/tests/test_logsumexp.py`` is imported from the installed SciPy
(nothing is copied here).  Every test function and method in it becomes one case
per parametrization; while a case runs, the module's references to
``logsumexp``, ``softmax`` and ``log_softmax`` point at fastxent, so SciPy's own
assertions judge fastxent.  SciPy's ``xp`` fixture is NumPy (the only array
library fastxent takes) and ``devices`` NumPy's devices.

Calling conventions translated here, not differences: SciPy's default ``axis``
is None (all axes), fastxent's is -1 (SPEC.md), so the twins pass SciPy's
default explicitly.  A case that never calls the twins does not test fastxent
(it tests a SciPy helper): it counts as unsupported, with that reason.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from peer_tally import TALLY, Unsupported, parametrizations, run_case

peer = pytest.importorskip("scipy.special.tests.test_logsumexp")
scipy = pytest.importorskip("scipy")
import fastxent as fx  # noqa: E402

SOURCE = "scipy"
TALLY.versions[SOURCE] = scipy.__version__
REPLACED = ("logsumexp", "softmax", "log_softmax")


# ---- the twins ------------------------------------------------------------------

class Twins:
    """fastxent under SciPy's names and signatures, counting its calls."""

    def __init__(self):
        self.calls = 0

    def _refuse_complex(self, name, x, **kwargs):
        """Complex input is not supported: check that fastxent refuses it with a
        TypeError, then report the case as unsupported."""
        if any(a is not None and np.iscomplexobj(a) for a in (x, kwargs.get("b"))):
            with pytest.raises(TypeError, match="complex"):
                getattr(fx, name)(x, **kwargs)
            raise Unsupported("complex input (fastxent refuses it with a TypeError)")

    def logsumexp(self, a, axis=None, b=None, keepdims=False, return_sign=False):
        self.calls += 1
        self._refuse_complex("logsumexp", a, axis=axis, b=b)
        return fx.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)

    def softmax(self, x, axis=None):
        self.calls += 1
        self._refuse_complex("softmax", x, axis=axis)
        return fx.softmax(x, axis=axis)

    def log_softmax(self, x, axis=None):
        self.calls += 1
        self._refuse_complex("log_softmax", x, axis=axis)
        return fx.log_softmax(x, axis=axis)


# ---- collecting SciPy's cases -----------------------------------------------------

FIXTURES = {"xp": lambda: np,
            "devices": lambda: list(np.__array_namespace_info__().devices()) + [None]}


def collect():
    """Every test of SciPy's file as ``(case_id, callable_owner, name, kwargs)``."""
    cases = []
    owners = [(None, peer)] + [(cls, cls) for name, cls in vars(peer).items()
                               if name.startswith("Test") and inspect.isclass(cls)]
    for cls, owner in owners:
        for name, func in vars(owner).items():
            if not (name.startswith("test") and callable(func)):
                continue
            func = func.__func__ if isinstance(func, staticmethod) else func
            for label, params in parametrizations(func):
                prefix = f"{cls.__name__}::" if cls else ""
                cases.append((f"{prefix}{name}" + (f"[{label}]" if label else ""), cls, func, params))
    return cases


CASES = collect()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_scipy_case(case, monkeypatch):
    case_id, cls, func, params = case
    twins = Twins()
    for name in REPLACED:
        monkeypatch.setattr(peer, name, getattr(twins, name))

    def run():
        kwargs = dict(params)
        for arg in inspect.signature(func).parameters:
            if arg in FIXTURES and arg not in kwargs:
                kwargs[arg] = FIXTURES[arg]()
        if cls is not None:
            func(cls(), **kwargs)
        else:
            func(**kwargs)
        if twins.calls == 0:
            raise Unsupported("calls none of logsumexp/softmax/log_softmax "
                              f"(tests a SciPy helper: {func.__name__})")

    run_case(SOURCE, case_id, run)
