"""cross_entropy_class_slice: cross-entropy over a slice of the classes (issue 15, item 3).

The contract (fastxent.dask.SLICE_KERNEL, the docstring's Notes): given each
row's max and log-sum-exp over all the classes, a slice's loss terms add up to
cross_entropy's loss and its gradient is the slice's columns of cross_entropy's
gradient.  Checked against the float64 reference of both (reference.py: the
slice formulas, and cross_entropy over whole rows), on every kernel layout:
transposed tiles (few classes), rows, long rows cut into chunks, and a
strided class axis.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import RTOL, assert_close, assert_grad_close, make_case, upstream

# (shape, axis, cuts): the class axis cut at ``cuts`` into slices
LAYOUTS = [pytest.param((9, 20), None, (7, 12), id="few-classes"),
           pytest.param((6, 150), -1, (40, 41, 100), id="rows"),
           pytest.param((3, 45, 70), 1, (10, 30), id="strided"),
           pytest.param((5, 7, 66), -1, (33,), id="rows-3d"),
           pytest.param((2, 40000), -1, (17000,), id="long-rows")]


def row_stats(x, axis):
    """Each row's max (0 where not finite) and log sum exp(x - max), float64, as
    a holder of all the slices would combine them."""
    ax = ref.class_axis(axis, x.ndim)
    with np.errstate(invalid="ignore"):
        m = np.max(x.astype(np.float64), axis=ax)
        m = np.where(np.isfinite(m), m, 0.0)
        log_norm = np.asarray(fx.logsumexp(x.astype(np.float64) - np.expand_dims(m, ax), axis=ax))
    return m, log_norm


def slices(a, ax, cuts):
    return np.split(a, cuts, axis=ax)


def target_mass(t, w, eps, ax):
    """Probabilities: sum_c w_c q_c over all the classes, per sample."""
    C = t.shape[ax]
    q = (1.0 - eps) * t.astype(np.float64) + eps / C
    shape = [1] * t.ndim
    shape[ax] = C
    return np.sum(q * (1.0 if w is None else np.reshape(w, shape)), axis=ax)


def run_slices(x, t, w, axis, cuts, **kw):
    """fastxent's slices: their losses (a list) and gradients (a list)."""
    ax = ref.class_axis(axis, x.ndim)
    R, L = row_stats(x, axis)
    index = t.dtype.kind in "iu"
    mass = None if index else target_mass(t, w, kw.get("label_smoothing", 0.0), ax)
    losses, grads, c0 = [], [], 0
    for xs, ts in zip(slices(x, ax, cuts), [t] * (len(cuts) + 1) if index else slices(t, ax, cuts)):
        res = fx.cross_entropy_class_slice(xs, ts, R, L, w, class_start=c0,
                                           num_classes=x.shape[ax], target_mass=mass, axis=axis,
                                           **kw)
        loss, grad = res if kw.get("return_grad") else (res, None)
        losses.append(loss)
        grads.append(grad)
        c0 += xs.shape[ax]
    return losses, grads, (R, L, mass)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted, eps", [(False, 0.0), (True, 0.0), (True, 0.15), (False, 0.3)])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape, axis, cuts", LAYOUTS)
def test_slices_make_cross_entropy(rng, shape, axis, cuts, target_kind, weighted, eps, reduction,
                                   dtype):
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    x = x.astype(dtype)
    t = t if target_kind == "index" else t.astype(dtype)
    ax = ref.class_axis(axis, x.ndim)
    go = upstream(rng, reduction, shape[:ax] + shape[ax + 1:])
    kw = dict(label_smoothing=eps, reduction=reduction, return_grad=True, grad_output=go)
    losses, grads, (R, L, mass) = run_slices(x, t, w, axis, cuts, **kw)
    tol = RTOL[np.dtype(dtype)]
    # each slice: the reference's formulas of a slice
    c0 = 0
    for xs, ts, loss, grad in zip(slices(x, ax, cuts),
                                  [t] * (len(cuts) + 1) if target_kind == "index"
                                  else slices(t, ax, cuts), losses, grads):
        want_loss, want_grad = ref.cross_entropy_class_slice(
            xs, ts, R, L, w, class_start=c0, num_classes=shape[ax], target_mass=mass,
            axis=axis, **kw)
        assert np.asarray(loss).dtype == dtype and grad.dtype == dtype and grad.shape == xs.shape
        assert_close(loss, want_loss, rtol=tol, atol=tol * (1.0 + np.abs(R).max()))
        assert_grad_close(grad, want_grad, dtype)
        c0 += xs.shape[ax]
    # together: cross_entropy over whole rows
    want_loss, want_grad = ref.cross_entropy(x, t, w, axis=axis, **kw)
    total = sum(np.asarray(v, np.float64) for v in losses)
    assert_close(total, want_loss, rtol=4 * tol, atol=4 * tol * (1.0 + np.abs(R).max()))
    assert_grad_close(np.concatenate(grads, axis=ax), want_grad, dtype)


@pytest.mark.parametrize("shape, axis, cuts", LAYOUTS[:3])
def test_one_slice_of_everything_is_cross_entropy(rng, shape, axis, cuts):
    x, t, w = make_case(rng, shape, axis, "index", True)
    R, L = row_stats(x, axis)
    got = fx.cross_entropy_class_slice(x, t, R, L, w, class_start=0, num_classes=x.shape[
        ref.class_axis(axis, x.ndim)], axis=axis, label_smoothing=0.1, reduction="mean",
        return_grad=True)
    want = fx.cross_entropy(x, t, w, axis=axis, label_smoothing=0.1, return_grad=True)
    assert_close(got[0], want[0], rtol=1e-14)
    assert_close(got[1], want[1], rtol=1e-13, atol=1e-16)


def test_targets_in_other_slices(rng):
    # no target in the slice: the loss is the smoothing terms only (0 without
    # smoothing), the gradient the softmax times the row's whole target mass
    x = rng.standard_normal((4, 10))
    y = np.array([0, 1, 8, 9])
    R, L = row_stats(x, -1)
    w = rng.uniform(0.5, 2.0, 10)
    part = x[:, 3:7]
    loss, grad = fx.cross_entropy_class_slice(part, y, R, L, w, class_start=3, num_classes=10,
                                              return_grad=True)
    p = np.exp((part - R[:, None]) - L[:, None])
    assert_close(loss, np.zeros(4), rtol=0)
    assert_close(grad, p * w[y][:, None], rtol=1e-14)
    for eps in (0.2, 1.0):
        loss, grad = fx.cross_entropy_class_slice(part, y, R, L, w, class_start=3, num_classes=10,
                                                  label_smoothing=eps, return_grad=True)
        lp = (part - R[:, None]) - L[:, None]
        assert_close(loss, -(eps / 10) * (w[3:7] * lp).sum(axis=1), rtol=1e-14)
        Q = (1 - eps) * w[y] + eps / 10 * w.sum()
        assert_close(grad, Q[:, None] * np.exp(lp) - eps / 10 * w[3:7], rtol=1e-13, atol=1e-16)


def test_ignored_targets_and_rows_that_are_not_finite(rng):
    x = rng.standard_normal((5, 8))
    y = np.array([2, -100, 5, 1, -100])
    x[3, 6] = np.nan          # in the other slice: the row's statistics carry it
    x[4, 7] = np.nan          # an ignored row whose softmax is NaN: NaN gradient, as in memory
    R, L = row_stats(x, -1)
    loss, grad = fx.cross_entropy_class_slice(x[:, :4], y, R, L, class_start=0, num_classes=8,
                                              return_grad=True)
    want_loss, want_grad = fx.cross_entropy(x, y, reduction="none", return_grad=True)
    assert loss[1] == 0.0 and np.all(grad[1] == 0.0)
    assert np.isnan(loss[3]) and np.all(np.isnan(grad[3])) and np.all(np.isnan(grad[4]))
    assert_close(grad, want_grad[:, :4], rtol=1e-13, atol=1e-16)
    assert_close(loss[[0, 2]], ref.cross_entropy_class_slice(
        x[:, :4], y, R, L, class_start=0, num_classes=8)[[0, 2]], rtol=1e-14)


def test_float16_out_and_thread_counts(rng):
    x, t, w = make_case(rng, (300, 256), None, "index", True)
    R, L = row_stats(x, None)
    kw = dict(class_start=100, num_classes=256, label_smoothing=0.1, return_grad=True,
              reduction="sum")
    part = np.ascontiguousarray(x[:, 100:200])
    one = fx.cross_entropy_class_slice(part, t, R, L, w, n_threads=1, **kw)
    for nt in (2, 3):
        other = fx.cross_entropy_class_slice(part, t, R, L, w, n_threads=nt, **kw)
        assert one[0] == other[0]
        np.testing.assert_array_equal(one[1], other[1])
    out = np.empty_like(part)
    res = fx.cross_entropy_class_slice(part, t, R, L, w, out=out, **kw)
    assert res[1] is out and np.array_equal(out, one[1])
    half = fx.cross_entropy_class_slice(part.astype(np.float16), t, R, L, w, **kw)
    assert half[0].dtype == np.float16 and half[1].dtype == np.float16
    assert_close(half[1], one[1], rtol=0, atol=1e-3 * np.abs(one[1]).max())


def test_inputs_are_not_modified(rng):
    x, t, w = make_case(rng, (6, 12), None, "prob", True)
    R, L = row_stats(x, None)
    mass = target_mass(t, w, 0.0, 1)
    args = [x[:, 4:], t[:, 4:], R, L, w, mass]
    before = [a.copy() for a in args]
    fx.cross_entropy_class_slice(*args[:5], class_start=4, num_classes=12, target_mass=mass,
                                 return_grad=True)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)


def test_bad_arguments_are_refused(rng):
    x = rng.standard_normal((3, 4))
    y = np.array([0, 9, 2])
    R, L = row_stats(np.hstack([x, x, x]), None)
    call = lambda *a, **k: fx.cross_entropy_class_slice(  # noqa: E731
        *a, **{"class_start": 4, "num_classes": 12, **k})
    with pytest.raises(ValueError, match="num_classes"):
        call(x, y, R, L, class_start=10)
    with pytest.raises(ValueError, match="class_start"):
        call(x, y, R, L, class_start=-1)
    with pytest.raises(TypeError, match="class_start"):
        call(x, y, R, L, class_start=1.5)
    with pytest.raises(ValueError, match="12"):
        call(x, np.array([0, 12, 2]), R, L)                 # indices run over all the classes
    with pytest.raises(ValueError, match="row_max"):
        call(x, y, R[:2], L)
    with pytest.raises(ValueError, match="log_norm"):
        call(x, y, R, L[:, None])
    with pytest.raises(ValueError, match="weight"):
        call(x, y, R, L, np.ones(4))                        # the weights of all the classes
    with pytest.raises(ValueError, match="target_mass"):
        call(x, rng.random((3, 4)), R, L)                   # probabilities need it
    with pytest.raises(ValueError, match="target_mass"):
        call(x, y, R, L, target_mass=np.ones(3))            # class indices do not take it
    with pytest.raises(TypeError, match="row_max"):
        call(x, y, R.astype(str), L)
    out = np.empty_like(x)
    with pytest.raises(ValueError, match="overlap"):
        call(x, y, out[:, 0], L, return_grad=True, out=out)


def test_driver_refuses_a_slice_outside_the_classes():
    """Past the Python checks, the driver itself refuses a slice that does not
    fit (with no overflow of class_offset + C) and a weight of the wrong length."""
    from fastxent._kernels import kernels
    x, y = np.zeros(6), np.zeros(2, np.int64)
    kw = dict(x=x, n_outer=2, C=3, inner=1, y=y, ignore_index=-100, t=None, w=None, w_sum=3.0,
              eps=0.0, loss_out=None, grad=None, gout=None, gscale=1.0, row_max=np.zeros(2),
              log_norm=np.zeros(2), mass=None, w_sum_all=3.0, n_threads=1)
    for offset, n_classes in [(2**63 - 2, 2**63 - 1), (-1, 10), (8, 10), (0, 2)]:
        with pytest.raises(ValueError, match="slice"):
            kernels.xent_slice(class_offset=offset, n_classes=n_classes, **kw)
    with pytest.raises(ValueError, match="w has"):
        kernels.xent_slice(class_offset=0, n_classes=10, **dict(kw, w=np.ones(3)))
    with pytest.raises(ValueError, match="mass"):
        kernels.xent_slice(class_offset=0, n_classes=10, **dict(kw, mass=np.ones(2)))
    assert kernels.xent_slice(class_offset=7, n_classes=10, **kw) == pytest.approx(0.0)
