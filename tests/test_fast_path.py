"""The fast path of small calls (issue 19, ``_small.pxi``).

The common call (exact C-contiguous float32/float64 ndarrays, int64 class
indices, plain options) is checked once in Cython and runs the general path's
kernels serially.  Checked here: which calls take it (the kernel module's
``fast_calls()`` counter) and which do not; that it gives the general path's
results bit for bit (the general path is forced by replacing the hooks with
``lambda *a: None``); and that every error is the general path's, word for
word.  The fuzz (test_fuzz.py: its summary counts the fast calls) and the
property tests reach it through the public functions.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent
from fastxent import _binary, _modules, _multiclass
from fastxent._kernels import kernels

import reference as ref
from helpers import assert_close


def _general(monkeypatch):
    """Turn the fast path off for the rest of the test."""
    none = lambda *a: None  # noqa: E731
    for mod, name in ((_multiclass, "_fast_xent"), (_multiclass, "_fast_lse"),
                      (_binary, "_fast_bce_logits"), (_modules, "_fast_xent"),
                      (_modules, "_fast_bce_logits")):
        monkeypatch.setattr(mod, name, none)


def _run(fn, *args, **kw):
    """``(outcome, fast)``: what the call returned (or the exception's type and
    text) and whether it took the fast path."""
    before = kernels.fast_calls()
    try:
        out = fn(*args, **kw)
    except (TypeError, ValueError) as e:
        out = (type(e), str(e))
    return out, kernels.fast_calls() - before


def _bits(a):
    """An array or scalar as (dtype, shape, bytes): equality is bitwise."""
    if isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], type):
        return a                                  # an error: (type, message)
    if isinstance(a, tuple):
        return tuple(_bits(p) for p in a)
    assert isinstance(a, (np.ndarray, np.generic)), type(a)
    a = np.asarray(a) if isinstance(a, np.generic) else a
    return (type(a).__name__, a.dtype.str, a.shape, a.tobytes())


def _same_both_ways(monkeypatch, fn, *args, **kw):
    """Call fn fast and general; the results are bitwise equal (or the same
    error).  Returns (result, whether the fast path was taken)."""
    got, fast = _run(fn, *args, **kw)
    with monkeypatch.context() as m:
        _general(m)
        want, none = _run(fn, *args, **kw)
    assert none == 0
    assert _bits(got) == _bits(want), (args, kw)
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], type):
        return got, fast
    assert type(got) is type(want)
    return got, fast


def _logits(rng, shape, dtype, specials=False):
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    if specials and x.size:
        flat = x.reshape(-1)
        for v in (np.nan, np.inf, -np.inf, 1e30, -1e30):
            if rng.random() < 0.3:
                flat[rng.integers(0, flat.size)] = v
    return x


# ----------------------------------------------------------------------------
# Taken for the common case, bitwise the general path's
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_fast_equals_general(monkeypatch, dtype):
    rng = np.random.default_rng(1901)
    shapes = [(4, 3), (64, 10), (1, 1), (7,), (0, 3), (5, 0), (3, 4, 2), (2, 3, 0), (0,),
              (300, 7), (2, 1000)]
    n_fast = n_errors = 0
    for case in range(240):
        shape = shapes[case % len(shapes)]
        x = _logits(rng, shape, dtype, specials=case % 3 == 0)
        C = shape[0] if len(shape) == 1 else shape[1]
        sample = () if len(shape) == 1 else shape[:1] + shape[2:]
        y = rng.integers(0, max(C, 1), sample).astype(np.int64)
        if case % 4 == 1 and y.size:          # ignored rows
            y.reshape(-1)[rng.random(y.size) < 0.4] = -100
        kw = dict(reduction=("mean", "sum", "none")[case % 3],
                  label_smoothing=float(rng.choice([0.0, 0.0, 0.1, 1.0])),
                  return_grad=bool(case % 2))
        if case % 5 == 2:
            kw["ignore_index"] = int(rng.integers(-1, max(C, 1)))
        weight = None
        if case % 3 == 1:
            weight = rng.uniform(0, 2, C).astype(dtype)
            if case % 6 == 1 and C:
                weight[0] = 0.0
        res, fast = _same_both_ways(monkeypatch, fastxent.cross_entropy, x, y, weight, **kw)
        n_fast += fast
        if y.size == 0 or np.all((0 <= y) & (y < C) | (y == kw.get("ignore_index", -100))):
            assert fast == 1, (shape, kw)
        else:                       # a target out of range: the general path's error
            assert fast == 0 and res[0] is ValueError, (shape, kw)
            n_errors += 1
    assert n_fast > 150 and n_errors > 5


def test_cross_entropy_matches_reference():
    rng = np.random.default_rng(1902)
    x = rng.standard_normal((6, 5))
    y = np.array([0, 4, 2, -100, 1, 3])
    w = rng.uniform(0.5, 2, 5)
    got, fast = _run(fastxent.cross_entropy, x, y, w, label_smoothing=0.2, return_grad=True)
    want = ref.cross_entropy(x, y, w, label_smoothing=0.2, return_grad=True)
    assert fast == 1
    assert_close(got[0], want[0], 1e-12)
    assert_close(got[1], want[1], 1e-12, 1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_fast_equals_general(monkeypatch, dtype):
    rng = np.random.default_rng(1903)
    shapes = [(4, 3), (64, 10), (), (5,), (0, 3), (2, 3, 4), (3000, 3)]
    for case in range(70):
        shape = shapes[case % len(shapes)]
        x = np.asarray(_logits(rng, shape, dtype, specials=case % 3 == 0))
        t = np.asarray(rng.uniform(-0.2, 1.2, shape), dtype=dtype)  # not checked with logits
        res, fast = _same_both_ways(monkeypatch, fastxent.binary_cross_entropy_with_logits, x, t,
                                    reduction=("mean", "sum", "none")[case % 3],
                                    return_grad=bool(case % 2))
        assert fast == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", [fastxent.logsumexp, fastxent.softmax, fastxent.log_softmax])
def test_lse_family_fast_equals_general(monkeypatch, dtype, fn):
    rng = np.random.default_rng(1904)
    shapes = [(4, 3), (64, 10), (5,), (0, 3), (3, 0), (0,), (2, 3, 4), (1, 1)]
    for case in range(48):
        shape = shapes[case % len(shapes)]
        x = _logits(rng, shape, dtype, specials=case % 2 == 0)
        axis = [-1, None, 0, len(shape) - 1][case % 4]
        res, fast = _same_both_ways(monkeypatch, fn, x, axis=axis)
        assert fast == 1, (shape, axis)
    # the default axis
    _, fast = _same_both_ways(monkeypatch, fn, _logits(rng, (4, 3), dtype))
    assert fast == 1


def test_loss_classes_take_the_fast_path(monkeypatch):
    rng = np.random.default_rng(1905)
    x, y = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    t = rng.uniform(0, 1, (4, 3))
    ce = fastxent.CrossEntropyLoss(weight=np.array([1.0, 2.0, 0.5]), label_smoothing=0.1)
    bce = fastxent.BCEWithLogitsLoss(reduction="sum")
    for call in (lambda: ce(x, y), lambda: ce(x, y, return_grad=True),
                 lambda: bce(x, t), lambda: bce(x, t, return_grad=True)):
        _, fast = _same_both_ways(monkeypatch, call)
        assert fast == 1
    # an option the fast path does not take, assigned: the general path
    ce.axis = -1
    bce.pos_weight = np.ones(3)
    for call in (lambda: ce(x, y), lambda: bce(x, t)):
        _, fast = _same_both_ways(monkeypatch, call)
        assert fast == 0
    for option, value in (("z_loss", 1e-4), ("softcap", 30.0)):
        lm = fastxent.CrossEntropyLoss(**{option: value})
        got, fast = _same_both_ways(monkeypatch, lambda: lm(x, y, return_grad=True))
        assert fast == 0
        plain = fastxent.cross_entropy(x, y, return_grad=True)
        assert not np.array_equal(got[1], plain[1])     # the option was applied


# ----------------------------------------------------------------------------
# Not taken for anything unusual; errors word for word the general path's
# ----------------------------------------------------------------------------

class _Sub(np.ndarray):
    pass


def _unusual_xent(x, y, w):
    """(args, kwargs) of cross_entropy calls that must take the general path."""
    C = x.shape[1]
    yield (x.tolist(), y), {}
    yield (x.astype(np.float16), y), {}
    yield (x.astype(">f8"), y), {}
    yield (np.asfortranarray(np.ones((4, 3))), y), {}
    yield (np.repeat(x, 2, axis=1)[:, ::2], y), {}
    yield (x.view(_Sub), y), {}
    yield (x, y.astype(np.int32)), {}
    yield (x, y.astype(np.uint64)), {}
    yield (x, y.tolist()), {}
    yield (x, np.repeat(y, 2)[::2]), {}
    yield (x, y.view(_Sub)), {}
    yield (x, y.astype(np.float64)), {}                 # not class indices
    yield (x, np.full((4, 3), 1 / 3)), {}               # probabilities
    yield (x, y, w.tolist()), {}
    yield (x, y, w.astype(np.float32)), {}
    yield (x, y, np.ones(C + 1)), {}
    yield (x, y, np.ones((1, C))), {}
    yield (x, y), {"axis": 1}
    yield (x, y), {"n_threads": 1}
    yield (x, y), {"grad_output": 2.0, "return_grad": True}
    yield (x, y), {"out": np.empty_like(x), "return_grad": True}
    yield (x, y), {"sample_weight": np.ones(4)}
    yield (x, y), {"return_hessian": True, "return_grad": True}
    yield (x, y), {"z_loss": 1e-4}
    yield (x, y), {"z_loss": 0}
    yield (x, y), {"z_loss": False}
    yield (x, y), {"softcap": 30.0}
    yield (x, y), {"return_grad": np.bool_(True)}
    yield (x, y), {"return_grad": 1}
    yield (x, y), {"label_smoothing": 0}
    yield (x, y), {"label_smoothing": np.float64(0.1)}
    yield (x, y), {"label_smoothing": 1.5}
    yield (x, y), {"label_smoothing": float("nan")}
    yield (x, y), {"label_smoothing": True}
    yield (x, y), {"ignore_index": np.int64(-100)}
    yield (x, y), {"ignore_index": True}
    yield (x, y), {"ignore_index": 2 ** 63}
    yield (x, y), {"reduction": "avg"}
    yield (x, y), {"reduction": b"mean"}
    yield (x, np.array([0, 3, 1, 2])), {}               # out of range
    yield (x, np.array([0, -1, 1, 2])), {}
    yield (x, np.array([0, 1, 1])), {}                  # target's shape
    yield (x, np.array(1)), {}
    yield (x[0], np.array([1])), {}
    yield (np.zeros((40000, 1)), np.zeros(40000, dtype=np.int64)), {}   # not small


def test_cross_entropy_unusual_inputs_take_the_general_path(monkeypatch):
    rng = np.random.default_rng(1906)
    x, y, w = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2]), np.array([1.0, 2.0, 0.5])
    errors = 0
    for args, kw in _unusual_xent(x, y, w):
        got, fast = _same_both_ways(monkeypatch, fastxent.cross_entropy, *args, **kw)
        assert fast == 0, (args, kw)
        errors += isinstance(got, tuple) and isinstance(got[0], type)
    assert errors >= 10                 # the errors were compared word for word


def test_bce_with_logits_unusual_inputs_take_the_general_path(monkeypatch):
    rng = np.random.default_rng(1907)
    x, t = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    cases = [((x.tolist(), t), {}), ((x, t.tolist()), {}), ((x, t.astype(np.float32)), {}),
             ((x.astype(np.float16), t), {}), ((x, t[:, :2]), {}), ((x, t.T.copy().T), {}),
             ((x, t[None]), {}), ((x, t), {"weight": np.ones(3)}),
             ((x, t), {"pos_weight": np.ones(3)}), ((x, t), {"n_threads": 2}),
             ((x, t), {"sample_weight": np.ones(3)}), ((x, t), {"reduction": "Mean"}),
             ((x, t), {"return_grad": "yes"}), ((x, t), {"grad_output": 1.0}),
             ((x, t), {"return_hessian": True, "return_grad": True}),
             ((np.zeros(40000), np.zeros(40000)), {})]
    for args, kw in cases:
        _, fast = _same_both_ways(monkeypatch, fastxent.binary_cross_entropy_with_logits,
                                  *args, **kw)
        assert fast == 0, (args, kw)


@pytest.mark.parametrize("fn", [fastxent.logsumexp, fastxent.softmax, fastxent.log_softmax])
def test_lse_family_unusual_inputs_take_the_general_path(monkeypatch, fn):
    x = np.random.default_rng(1908).standard_normal((4, 3))
    cases = [((x.tolist(),), {}), ((x.astype(np.float16),), {}), ((x.T,), {}),
             ((np.arange(6).reshape(2, 3),), {}), ((np.float64(1.0),), {}), ((np.array(2.0),), {}),
             ((x,), {"axis": (0, 1)}), ((x,), {"axis": 2}), ((x,), {"axis": np.int64(1)}),
             ((x,), {"axis": True}), ((x,), {"n_threads": 1}), ((np.zeros((200, 200)),), {})]
    if fn is fastxent.logsumexp:
        cases += [((x,), {"keepdims": True}), ((x,), {"b": np.ones(3)}),
                  ((x,), {"return_sign": True})]
    else:
        cases.append(((x,), {"out": np.empty_like(x)}))
    for args, kw in cases:
        _, fast = _same_both_ways(monkeypatch, fn, *args, **kw)
        assert fast == 0, (args, kw)


def test_fast_path_modifies_no_input_and_returns_fresh_arrays():
    rng = np.random.default_rng(1909)
    x, y, w = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2]), np.array([1.0, 2.0, 0.5])
    for a in (x, y, w):
        a.flags.writeable = False           # read-only inputs are fine
    loss, grad = fastxent.cross_entropy(x, y, w, reduction="none", return_grad=True)
    assert loss.flags.writeable and grad.flags.writeable and grad.base is None
    assert not np.may_share_memory(grad, x)
    p = fastxent.softmax(x)
    assert not np.may_share_memory(p, x)
