"""The second-order rows of the bench (issue 12 item 6): the NumPy twins of
``return_hessian=True`` and ``cross_entropy_hvp`` agree with the float64 oracle,
and the rows appear by themselves once fastxent has those functions (found from
its signatures) and not before."""
import inspect
import io

import numpy as np
import pytest

import fastxent
import reference as ref
from fastxent import _baseline, _bench, _workloads
from fastxent._workloads import WORKLOADS
from helpers import REDUCTIONS, assert_close


def _rtol(dtype):
    return _workloads.tolerance(dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
@pytest.mark.parametrize("wl", [w for w in WORKLOADS if not w.binary], ids=lambda w: w.name)
def test_cross_entropy_second_order_twins_match_reference(wl, targets, reduction):
    for dtype in wl.dtypes:
        x, t = wl.make(dtype, targets=targets, tiny=True)
        v = wl.vector(dtype, tiny=True)
        got = _baseline.cross_entropy(x, t, reduction=reduction, axis=wl.axis, return_grad=True,
                                      return_hessian=True)
        want = ref.cross_entropy(x, t, reduction=reduction, axis=wl.axis, return_grad=True,
                                 return_hessian=True)
        for name, a, b in zip(("loss", "grad", "hess"), got, want):
            assert np.asarray(a).dtype == x.dtype
            assert_close(a, b, rtol=_rtol(dtype), atol=_rtol(dtype) * float(np.max(np.abs(b))),
                         err_msg=f"{wl.name} {dtype} {name}")
        hv = _baseline.cross_entropy_hvp(x, t, v, reduction=reduction, axis=wl.axis)
        want_hv = ref.cross_entropy_hvp(x, t, v, reduction=reduction, axis=wl.axis)
        assert hv.dtype == x.dtype
        assert_close(hv, want_hv, rtol=_rtol(dtype),
                     atol=_rtol(dtype) * float(np.max(np.abs(want_hv))))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_hessian_twin_matches_reference(reduction):
    wl = _workloads.get("W4")
    for dtype in wl.dtypes:
        x, t = wl.make(dtype, tiny=True)
        got = _baseline.binary_cross_entropy_with_logits(x, t, reduction=reduction,
                                                         return_grad=True, return_hessian=True)
        want = ref.binary_cross_entropy_with_logits(x, t, reduction=reduction, return_grad=True,
                                                    return_hessian=True)
        for a, b in zip(got, want):
            assert_close(a, b, rtol=_rtol(dtype), atol=_rtol(dtype) * float(np.max(np.abs(b))))


def test_hvp_twin_is_the_hessian_times_v_by_finite_differences():
    """Independent of the oracle: (grad(x + h v) - grad(x - h v)) / 2h."""
    wl = _workloads.get("W2")
    x, t = wl.make("float64", tiny=True)
    v = wl.vector("float64", tiny=True)
    h = 1e-5
    g_plus = _baseline.cross_entropy(x + h * v, t, axis=1, return_grad=True)[1]
    g_minus = _baseline.cross_entropy(x - h * v, t, axis=1, return_grad=True)[1]
    fd = (g_plus - g_minus) / (2 * h)
    assert_close(_baseline.cross_entropy_hvp(x, t, v, axis=1), fd, rtol=1e-6,
                 atol=1e-8 * float(np.max(np.abs(fd))))


def test_hessian_needs_the_gradient():
    x, t = _workloads.get("W2").make("float64", tiny=True)
    with pytest.raises(ValueError, match="return_grad"):
        _baseline.cross_entropy(x, t, return_hessian=True)


def _fastxent_has_second_order():
    return ("return_hessian" in inspect.signature(fastxent.cross_entropy).parameters
            and hasattr(fastxent, "cross_entropy_hvp"))


def _second_order_fastxent(monkeypatch):
    """Gives fastxent the 0.2 signatures (the twins behind them), as the kernels will."""
    real_ce, real_bce = fastxent.cross_entropy, fastxent.binary_cross_entropy_with_logits

    def cross_entropy(input, target, weight=None, *, return_hessian=False, n_threads=None, **kw):
        if return_hessian:
            return _baseline.cross_entropy(input, target, reduction=kw.get("reduction", "mean"),
                                           axis=kw.get("axis"), return_grad=True,
                                           return_hessian=True)
        return real_ce(input, target, weight, n_threads=n_threads, **kw)

    def bce(input, target, weight=None, *, return_hessian=False, n_threads=None, **kw):
        if return_hessian:
            return _baseline.binary_cross_entropy_with_logits(
                input, target, reduction=kw.get("reduction", "mean"), return_grad=True,
                return_hessian=True)
        return real_bce(input, target, weight, n_threads=n_threads, **kw)

    def cross_entropy_hvp(input, target, v, weight=None, *, reduction="mean", axis=None,
                          n_threads=None):
        return _baseline.cross_entropy_hvp(input, target, v, reduction=reduction, axis=axis)

    monkeypatch.setattr(fastxent, "cross_entropy", cross_entropy)
    monkeypatch.setattr(fastxent, "binary_cross_entropy_with_logits", bce)
    monkeypatch.setattr(fastxent, "cross_entropy_hvp", cross_entropy_hvp, raising=False)


def _ops(results):
    return {(r.label.split()[0], r.op) for r in results}


def test_second_order_rows_appear_when_fastxent_has_them(monkeypatch):
    _second_order_fastxent(monkeypatch)
    for name in ("W1", "W2", "W4"):
        wl = _workloads.get(name)
        assert _workloads.op_available(wl, "loss+grad+hess")
        assert _workloads.op_available(wl, "hvp") == (not wl.binary)
    peers = ("sklearn",) if _bench._peers.importable("sklearn") else ()
    out = io.StringIO()
    results = _bench.run(quick=True, tiny=True, repeat=1, threads=[1, 2], peers=peers,
                         sections=("W2", "W4"), out=out, err=io.StringIO())
    assert {("W2", "loss+grad+hess"), ("W2", "hvp"), ("W4", "loss+grad+hess")} <= _ops(results)
    assert ("W4", "hvp") not in _ops(results)
    hess_rows = [r for r in results if r.op == "loss+grad+hess"]
    assert all(r.seconds["fastxent"] > 0 and r.seconds["numpy"] > 0 for r in hess_rows)
    if peers:                                          # sklearn's gradient_hessian, checked first
        assert all(r.seconds.get("sklearn") for r in hess_rows)
        assert "left out" not in out.getvalue()
    assert "| W2 512x10 float32 | hvp" in out.getvalue()


def test_second_order_rows_skip_silently_without_them():
    if _fastxent_has_second_order():
        pytest.skip("this fastxent has the second-order functions")
    out = io.StringIO()
    results = _bench.run(quick=True, tiny=True, repeat=1, threads=[1], peers=(),
                         sections=("W2", "W4"), out=out, err=io.StringIO())
    assert results and not {op for _, op in _ops(results)} & {"loss+grad+hess", "hvp"}
    lines = out.getvalue().splitlines()
    assert not [line for line in lines if "| hvp" in line or "| loss+grad+hess" in line]
    assert not [line for line in lines if line.startswith("note:") and "hvp" in line]
