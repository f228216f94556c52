"""Regression tests for the kernel defects of issue 10 (items 1, 4, 8, 12 and the
constants that change results), each named for what it guards.

Values are checked against the float64 oracle (tests/reference.py), mpmath
where the oracle itself rounds, and PyTorch where it is installed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from fastxent._kernels import kernels
from helpers import assert_close, assert_grad_close, RTOL

# The kernel paths of the multi-class functions, by the shape that selects them
# (fx_xent.h): rows of more than FX_SMALL_C classes, tiles of few classes,
# a strided class axis, and long rows cut into chunks (more than FX_CHUNK_MIN).
PATHS = {
    "rows": ((6, 40), 1),
    "tiles": ((6, 3), 1),
    "strided": ((2, 3, 5), 1),
    "long_rows": ((2, 20000), 1),
}


def _case(rng, path, dtype):
    shape, axis = PATHS[path]
    x = rng.standard_normal(shape).astype(dtype)
    C = shape[axis]
    samples = shape[:axis] + shape[axis + 1:]
    y = rng.integers(1, C, size=samples)          # class 0 is never a target
    return x, y, axis, C


# ---- item 1: a class weight enters only through the terms that use it --------

def test_issue_reproduction_unused_infinite_weight():
    loss, grad = fx.cross_entropy([[.5, -1., 2.]], [1], weight=[np.inf, 1., 1.], return_grad=True)
    want_loss, want_grad = ref.cross_entropy(np.array([[.5, -1., 2.]]), np.array([1]),
                                             weight=[1., 1., 1.], return_grad=True)
    assert_close(loss, want_loss, RTOL[np.dtype(np.float64)])
    assert_grad_close(grad, want_grad, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("path", list(PATHS))
def test_unused_infinite_class_weight_changes_nothing(rng, path, reduction, dtype):
    """No target and no smoothing term uses class 0: an inf (or NaN) weight
    there gives exactly what any finite weight gives."""
    x, y, axis, C = _case(rng, path, dtype)
    w = (rng.random(C) + 0.5).astype(dtype)
    want = ref.cross_entropy(x, y, w, reduction=reduction, axis=axis, return_grad=True)
    for bad in (np.inf, np.nan):
        w_bad = w.copy()
        w_bad[0] = bad
        loss, grad = fx.cross_entropy(x, y, w_bad, reduction=reduction, axis=axis, return_grad=True)
        assert np.isfinite(grad).all(), f"{path}: weight {bad} of an unused class leaks into grad"
        assert_close(loss, want[0], RTOL[np.dtype(dtype)])
        assert_grad_close(grad, want[1], dtype)


@pytest.mark.parametrize("path", list(PATHS))
def test_ignored_rows_get_no_nan_from_an_infinite_weight(rng, path):
    x, y, axis, C = _case(rng, path, np.float64)
    y.reshape(-1)[::2] = -100
    w = np.ones(C)
    w[0] = np.inf
    loss, grad = fx.cross_entropy(x, y, w, reduction="sum", axis=axis, return_grad=True)
    ignored = np.expand_dims(y == -100, axis)
    assert (np.broadcast_to(ignored, grad.shape) <= (grad == 0)).all()
    want = ref.cross_entropy(x, y, np.where(np.isinf(w), 1.0, w), reduction="sum", axis=axis,
                             return_grad=True)
    assert_close(loss, want[0], RTOL[np.dtype(np.float64)])
    assert_grad_close(grad, want[1], np.float64)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("path", list(PATHS))
def test_infinite_weight_with_ignored_rows_matches_torch(rng, torch, path, eps):
    """PyTorch's rule, smoothing included: an ignored row's gradient is 0, but
    smoothing multiplies its zero upstream gradient by every class weight, and
    an infinite one makes the row NaN."""
    x, y, axis, C = _case(rng, path, np.float64)
    y.reshape(-1)[::2] = -100
    w = np.ones(C)
    w[0] = np.inf
    loss, grad = fx.cross_entropy(x, y, w, reduction="sum", axis=axis, label_smoothing=eps,
                                  return_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(y), torch.tensor(w), reduction="sum",
                                           label_smoothing=eps)
    lt.backward()
    want = xt.grad.numpy()
    if eps == 0.0:
        assert_close(loss, lt.item(), 1e-12)
        assert_grad_close(grad, want, np.float64)
    else:
        # every weight is used: the loss is not finite (inf in PyTorch, which forms
        # w_c * log_softmax_c; NaN here where the class of weight inf is the max,
        # Q log S - D being inf - inf), nor is the gradient of any row
        assert not np.isfinite(loss) and not np.isfinite(lt.item())
        assert np.array_equal(np.isnan(grad), np.isnan(want))
        assert np.array_equal(np.isfinite(grad), np.isfinite(want))


# ---- item 4: class indices are re-checked by the kernel ------------------------

def _guarded(n, dtype, pad=64):
    """An array of n elements inside a larger one filled with a sentinel: a
    write out of bounds shows in the pads."""
    big = np.full(n + 2 * pad, 7.0, dtype=dtype)
    return big, big[pad:pad + n]


@pytest.mark.parametrize("kind", ["xent", "nll"])
@pytest.mark.parametrize("bad", [10**12, -5, 40000])
@pytest.mark.parametrize("path", list(PATHS))
def test_kernel_rejects_class_index_out_of_range(rng, path, bad, kind):
    """Called past the Python-side check (as when another thread changes the
    target after it), the kernels neither read nor write out of bounds and the
    driver raises a ValueError naming the position."""
    x, y, axis, C = _case(rng, path, np.float64)
    shape = x.shape
    n_outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    y = y.reshape(-1).astype(np.int64)
    y[-1] = bad
    big_g, g = _guarded(x.size, np.float64)
    big_l, loss = _guarded(y.size, np.float64)
    kw = dict(x=x.reshape(-1), n_outer=n_outer, C=C, inner=inner, y=y, ignore_index=-100,
              w=None, loss_out=loss, grad=g, gout=None, gscale=1.0, n_threads=2)
    with pytest.raises(ValueError, match=f"flat position {y.size - 1}"):
        if kind == "xent":
            kernels.xent(t=None, w_sum=float(C), eps=0.0, z_loss=0.0, softcap=0.0, **kw)
        else:
            kernels.nll(**kw)
    pads = np.concatenate([big_g[:64], big_g[-64:], big_l[:64], big_l[-64:]])
    assert (pads == 7.0).all()


MUTATOR = textwrap.dedent("""
    import sys, threading, time
    import numpy as np
    import fastxent as fx
    shape, axis, fn = eval(sys.argv[1])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    C = shape[axis]
    y = np.zeros(shape[:axis] + shape[axis + 1:], np.int64).reshape(-1)
    stop = False
    def mutate():
        while not stop:
            y[-1] = 1 << 40
            y[-1] = 0
            y[y.size // 2] = -(1 << 40)
            y[y.size // 2] = 1
    t = threading.Thread(target=mutate)
    t.start()
    outcomes = {"ok": 0, "ValueError": 0}
    f = getattr(fx, fn)
    end = time.time() + 1.5
    try:
        while time.time() < end:
            try:
                f(x, y.reshape(shape[:axis] + shape[axis + 1:]), axis=axis, return_grad=True,
                  n_threads=2)
                outcomes["ok"] += 1
            except ValueError:
                outcomes["ValueError"] += 1
    finally:
        stop = True
        t.join()
    print(outcomes)
""")


@pytest.mark.parametrize("shape,axis,fn", [((400000, 5), 1, "cross_entropy"),
                                           ((400000, 40), 1, "cross_entropy"),
                                           ((4, 3, 100000), 1, "cross_entropy"),
                                           ((400000, 5), 1, "nll_loss")])
def test_target_changed_by_another_thread_never_crashes(shape, axis, fn):
    """Issue 10 item 4: a thread writing out-of-range values into the target while
    another computes the loss on it (SIGBUS in 0.1): each call returns or raises
    ValueError, and the process survives."""
    pkg_parent = os.path.dirname(os.path.dirname(fx.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-c", MUTATOR, repr((shape, axis, fn))], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr[-2000:]}"
    outcomes = eval(res.stdout.strip().splitlines()[-1])
    assert sum(outcomes.values()) > 0


# ---- item 8: binary_cross_entropy's gradient floor ---------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_gradient_floor_is_float32_1e12_in_every_dtype(dtype):
    floor = float(np.float32(1e-12))                  # PyTorch's EPSILON, as float32
    x = np.array([0., 1., 0.5], dtype)
    t = np.array([1., 0., 0.5], dtype)
    _, grad = fx.binary_cross_entropy(x, t, reduction="sum", return_grad=True)
    want = np.array([-1.0 / floor, 1.0 / floor, 0.0])
    assert_close(grad, want, 1e-15 if dtype == np.float64 else 1e-6)


def test_bce_gradient_floor_matches_torch(torch):
    x = np.array([0., 1., 1e-13, 1 - 1e-16, 0.3])
    t = np.array([1., 0., 1., 0.5, 0.2])
    _, grad = fx.binary_cross_entropy(x, t, reduction="sum", return_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(xt, torch.tensor(t), reduction="sum").backward()
    assert_close(grad, xt.grad.numpy(), 1e-14)


# ---- item 12: log-sum-exp keeps relative precision near 0 ----------------------

def _mp_logsumexp(v, minus_max=False):
    """log(sum(exp(v))) in 60 digits (less max(v) with minus_max), as a float."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        lse = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(a))) for a in v))
        return float(lse - mpmath.mpf(float(max(v)))) if minus_max else float(lse)


@pytest.mark.parametrize("row", [[0., -40.], [1e-10, -30.], [-1e-12, -35., -36.],
                                 [0.] + [-40.] * 39, [2e-9] + [-45.] * 19999])
def test_logsumexp_keeps_relative_precision_near_zero(row):
    """scipy.special's test_gh18295: log1p of the sum of the terms other than
    the max's, on every path (tiles, rows, a strided axis, chunked rows)."""
    row = np.array(row)
    want = _mp_logsumexp(row)
    assert_close(fx.logsumexp(row), want, 8e-16)
    assert_close(fx.logsumexp(np.stack([row, row]), axis=1), [want, want], 8e-16)
    assert_close(fx.logsumexp(np.stack([row, row, row], axis=1), axis=0), [want] * 3, 8e-16)
    # log_softmax at the max is -log1p(sum_c exp(x_c - max)): its terms carry
    # the rounding of x_c - max (up to |x_c - max| ulp of 1), the only bound
    lsm = fx.log_softmax(row)
    cond = 1.0 + float(np.max(row) - np.min(row))
    assert_close(lsm[np.argmax(row)], -_mp_logsumexp(row, minus_max=True), 4e-16 * cond)


def test_logsumexp_near_zero_float32():
    row = np.array([0., -40.], np.float32)           # 4.25e-18: 1 + that is 1 even in double
    want = _mp_logsumexp(row)
    assert_close(fx.logsumexp(row), want, 3 * np.finfo(np.float32).eps)
    assert_close(fx.log_softmax(row)[0], -_mp_logsumexp(row, minus_max=True),
                 3 * np.finfo(np.float32).eps)


def test_logsumexp_precise_sums_keep_special_values():
    x = np.array([[0., -np.inf], [-np.inf, -np.inf], [np.inf, 0.], [np.nan, 0.], [3., 3.]])
    for a, axis in ((x, 1), (np.tile(x, (1, 20)), 1), (x.T.copy(), 0)):
        assert_close(fx.logsumexp(a, axis=axis), ref.logsumexp(a, axis=axis), 1e-15)
        assert_close(fx.log_softmax(a, axis=axis), ref.log_softmax(a, axis=axis), 1e-15)


# ---- the constants that change results live in one header -----------------------

RESULT_CONSTANTS = ("FX_LANES", "FX_TILE", "FX_CBLOCK", "FX_SMALL_C", "FX_CHUNK_MIN",
                    "FX_MAX_CHUNKS", "FX_ROW_BLOCK", "FX_SAMPLE_BLOCK", "FX_BCE_BLOCK",
                    "FX_BCE_EPS", "FX_BCE_LOG_MIN")


def test_result_constants_are_defined_once_in_fx_config():
    """FX_LANES was 8 in fx_xent.h and 16 behind an #ifndef in fx_bce.h (a
    module including only fx_bce.h summed differently): each constant that
    changes results is defined once, in fx_config.h, which every kernel header
    includes."""
    inc = fx.get_include()
    defines = {}
    for name in sorted(os.listdir(inc)):
        if name.endswith(".h"):
            with open(os.path.join(inc, name)) as f:
                for m in re.finditer(r"^\s*#\s*define\s+(FX_[A-Z0-9_]+)\b", f.read(), re.M):
                    defines.setdefault(m.group(1), []).append(name)
    for const in RESULT_CONSTANTS:
        assert defines.get(const) == ["fx_config.h"], (const, defines.get(const))
    for header in ("fx_xent.h", "fx_bce.h"):
        with open(os.path.join(inc, header)) as f:
            assert '#include "fx_config.h"' in f.read(), header
    src = os.path.dirname(fx.__file__)
    for name in ("_common.pxi", "_xent.pxi", "_bce.pxi", "_small.pxi"):
        path = os.path.join(src, name)
        if os.path.isfile(path):                      # a source tree: no block sizes here
            with open(path) as f:
                assert not re.search(r"^\s*\w*BLOCK\w*\s*=\s*\d", f.read(), re.M), name


# ---- issue 10 item 9's kernel side: a NaN scale gives NaN, not inf -------------

@pytest.mark.parametrize("path", list(PATHS))
def test_nan_gradient_scale_gives_nan_not_inf(rng, path):
    x, y, axis, C = _case(rng, path, np.float64)
    for fn, tgt in ((fx.cross_entropy, y), (fx.nll_loss, y)):
        _, grad = fn(x, tgt, axis=axis, reduction="sum", return_grad=True, grad_output=np.nan)
        if fn is fx.nll_loss:
            grad = np.take_along_axis(grad, np.expand_dims(y, axis), axis)
        assert np.isnan(grad).all()
    _, grad = fx.cross_entropy(x, y, axis=axis, label_smoothing=0.1, reduction="sum",
                               return_grad=True, grad_output=np.nan)
    assert np.isnan(grad).all()
    for fn in (fx.binary_cross_entropy, fx.binary_cross_entropy_with_logits):
        xb = 1 / (1 + np.exp(-x))
        _, grad = fn(xb, np.full_like(x, 0.3), reduction="sum", return_grad=True,
                     grad_output=np.nan)
        assert np.isnan(grad).all()


# -- the drivers' own length checks cannot overflow --------------------------------------

def test_xent_layout_check_does_not_overflow():
    """A shape whose element count overflows Py_ssize_t is refused, not wrapped
    (a plain n_outer * C * inner would overflow: undefined behaviour)."""
    with pytest.raises(ValueError, match=r"is not \(4611686018427387904, 1, 65\)"):
        kernels.xent(x=np.zeros(10), n_outer=2**62, C=1, inner=65, y=np.zeros(1, np.int64),
                     ignore_index=-100, t=None, w=None, w_sum=1.0, eps=0.0, loss_out=None,
                     grad=None, gout=None, gscale=1.0, n_threads=1, z_loss=0.0, softcap=0.0)


def test_bce_broadcast_layout_check_does_not_overflow():
    x = np.zeros(4)
    dims = np.array([2**62, 4], np.intp)
    strides = np.array([2**62, 1], np.intp)
    with pytest.raises(ValueError, match="reaches past its 4 elements"):
        kernels.bce(logits=True, x=x, t=x, w=np.ones(4), w_dims=dims, w_strides=strides,
                    pw=None, pw_dims=None, pw_strides=None, loss_out=None, grad=None,
                    gout=None, gscale=1.0, n_threads=1)


def test_sanitizer_faults_exist_only_in_the_sanitized_build():
    from fastxent import _build_info
    if _build_info.BUILD_INFO["sanitize"]:
        pytest.skip("the sanitized build: tools/run_sanitized.sh runs the faults")
    with pytest.raises(RuntimeError, match="FASTXENT_SANITIZE=1"):
        kernels._sanitizer_selftest("read")
