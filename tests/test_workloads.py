"""The benchmark workloads and tools: the NumPy baseline agrees with the float64
reference and fastxent with the baseline on every workload (small versions of
the data), and the two commands run."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastxent
import reference as ref
from fastxent import _baseline, _workloads
from fastxent._workloads import WORKLOADS, disagreement
from helpers import REDUCTIONS, assert_close


def assert_baseline_matches_reference(function, wl, x, t=None, **kw):
    """The bench's baseline (``_baseline.py``) against the float64 reference, at
    the bench's own tolerance: the bench trusts it to judge fastxent."""
    got = _workloads.runner("numpy", function, wl, x, t, **kw)()
    if function in _workloads.NORMALIZERS:
        want = getattr(ref, function)(x, axis=wl.axis)
    else:
        want = getattr(ref, function)(x, t, **kw, **({} if wl.binary else {"axis": wl.axis}))
    rtol = _workloads.tolerance(x.dtype)
    for a, b in zip(*((got, want) if kw.get("return_grad") else ((got,), (want,)))):
        assert np.asarray(a).dtype == x.dtype
        assert_close(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b), initial=0.0)),
                     err_msg=f"{wl.name} {function} {kw}")


def _cases():
    for wl in WORKLOADS:
        for dtype in wl.dtypes:
            if wl.binary:
                yield wl, dtype, "binary_cross_entropy_with_logits", "indices", "logits"
                yield wl, dtype, "binary_cross_entropy", "indices", "probabilities"
            else:
                yield wl, dtype, "cross_entropy", "indices", "logits"
                yield wl, dtype, "cross_entropy", "probabilities", "logits"
                yield wl, dtype, "nll_loss", "indices", "log-probabilities"


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("wl, dtype, function, targets, inputs",
                         [pytest.param(*c, id=f"{c[0].name}-{c[1]}-{c[2]}-{c[3]}") for c in _cases()])
def test_loss_and_grad_agree_with_baseline(wl, dtype, function, targets, inputs, reduction):
    x, t = wl.make(dtype, targets=targets, inputs=inputs, tiny=True)
    for return_grad in (False, True):
        assert_baseline_matches_reference(function, wl, x, t, reduction=reduction,
                                          return_grad=return_grad)
        assert disagreement(function, wl, x, t, reduction=reduction,
                            return_grad=return_grad, n_threads=2) is None


@pytest.mark.parametrize("function", _workloads.NORMALIZERS)
@pytest.mark.parametrize("wl", [w for w in WORKLOADS if not w.binary], ids=lambda w: w.name)
def test_normalizers_agree_with_baseline(wl, function):
    for dtype in wl.dtypes:
        x, _ = wl.make(dtype, tiny=True)
        assert_baseline_matches_reference(function, wl, x)
        assert disagreement(function, wl, x) is None


def _break_baseline(monkeypatch):
    """Makes the NumPy cross_entropy score the wrong class."""
    original = _baseline.cross_entropy
    monkeypatch.setattr(_baseline, "cross_entropy",
                        lambda x, t, **kw: original(x, (t + 1) % x.shape[1], **kw))


def test_disagreement_is_reported(monkeypatch):
    wl = _workloads.get("W1")
    x, t = wl.make("float64", tiny=True)
    assert disagreement("cross_entropy", wl, x, t) is None
    _break_baseline(monkeypatch)
    assert "differ" in disagreement("cross_entropy", wl, x, t)


def test_bench_stops_when_fastxent_disagrees(monkeypatch, capsys):
    from fastxent.__main__ import main
    _break_baseline(monkeypatch)
    assert main(["bench", "--quick", "--tiny", "--repeat", "1"]) == 1
    out, err = capsys.readouterr()
    assert "disagrees with the NumPy baseline" in err and "W1" in err
    assert "| workload" not in out                     # nothing timed, no table


def test_workload_data_is_deterministic_and_in_dtype():
    for wl in WORKLOADS:
        for dtype in wl.dtypes:
            x1, t1 = wl.make(dtype, tiny=True)
            x2, t2 = wl.make(dtype, tiny=True)
            assert x1.dtype == dtype and x1.shape == wl.tiny_shape
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(t1, t2)
            if wl.binary:
                assert set(np.unique(t1)) <= {0.0, 1.0}
            else:
                assert t1.min() >= 0 and t1.max() < wl.tiny_shape[wl.axis]


def test_baseline_does_not_modify_inputs():
    for wl, dtype, function, targets, inputs in _cases():
        x, t = wl.make(dtype, targets=targets, inputs=inputs, tiny=True)
        x0, t0 = x.copy(), t.copy()
        _workloads.runner("numpy", function, wl, x, t, return_grad=True)()
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(t, t0)


def _run_module(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastxent.__file__)), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "fastxent", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_info_command():
    res = _run_module("info")
    assert res.returncode == 0, res.stderr
    for field in ("fastxent:", "NumPy:", "OpenMP:", "SIMD compiled:", "SIMD chosen:",
                  "threads:", "OMP_NUM_THREADS:"):
        assert field in res.stdout
    assert fastxent.__version__ in res.stdout
    fields = dict(line.split(":", 1) for line in res.stdout.splitlines())
    compiled = [p.split(" (")[0].strip() for p in fields["SIMD compiled"].split(", ")]
    assert compiled == fastxent.get_simd_paths()       # avx512 among them on x86-64
    assert fields["SIMD chosen"].split()[0] == fastxent.get_simd_path()
    assert re.search(r"avx512 (yes|no)", fields["SIMD chosen"])     # the CPU's check


def test_bench_command_prints_a_table():
    """The whole command, every section, tiny arrays; the peers that import (CI
    installs torch, jax, optax and scikit-learn) run too."""
    from fastxent._bench import COLUMNS
    res = _run_module("bench", "--quick", "--repeat", "1", "--tiny", "--threads", "1,2")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("| workload") and "fastxent ms" in line and "best peer" in line
               for line in lines)
    rows = [line for line in lines if line.startswith("| W") and line.count("|") == len(COLUMNS) + 1]
    # the --quick workloads W1 (float32), W2, W4 and W5, each op on 1 and 2 threads
    assert {row.split("|")[1].split()[0] for row in rows} == {"W1", "W2", "W4", "W5"}
    assert {row.split("|")[3].strip() for row in rows} == {"1", "2"}
    assert "W3" not in res.stdout                      # not part of --quick
    for section in ("floors (NumPy, one thread):", "small: one call", "loop: matmul",
                    "W6, linear_cross_entropy"):
        assert section in res.stdout
    assert "[1/4]" in res.stderr and "done in" in res.stderr   # progress on stderr


def test_bench_rejects_bad_threads():
    res = _run_module("bench", "--threads", "0")
    assert res.returncode == 2
    assert "--threads" in res.stderr


def _family_cases():
    for wl in WORKLOADS:
        for op in wl.family:
            function, grad, _ = _workloads.OPS[op]
            for dtype in wl.dtypes:
                yield wl, dtype, function, grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("wl, dtype, function, grad",
                         [pytest.param(*c, id=f"{c[0].name}-{c[1]}-{c[2]}-{c[3]}")
                          for c in _family_cases()])
def test_family_twins_agree_with_reference_and_fastxent(wl, dtype, function, grad, reduction):
    """The bench's distillation (W1) and focal (W4) ops: the NumPy twin against
    the float64 reference at the bench's tolerance, fastxent against the twin."""
    x, t = wl.make(dtype, tiny=True)
    got = _workloads.runner("numpy", function, wl, x, t, reduction=reduction, return_grad=grad)()
    options = dict(_workloads.FAMILY_OPTIONS[function],
                   reduction=_workloads.family_reduction(function, reduction), return_grad=grad)
    if function == "distillation_loss":
        want = ref.distillation_loss(x, _workloads.teacher_logits(x), axis=wl.axis, **options)
    else:
        want = ref.sigmoid_focal_loss(x, t, **options)
    rtol = _workloads.tolerance(x.dtype)
    for a, b in zip(*((got, want) if grad else ((got,), (want,)))):
        assert np.asarray(a).dtype == x.dtype
        assert_close(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b), initial=0.0)))
    assert disagreement(function, wl, x, t, reduction=reduction, return_grad=grad,
                        n_threads=2) is None


def test_family_ops_are_on_w1_and_w4():
    assert _workloads.get("W1").family == ("distill", "distill+grad")
    assert _workloads.get("W4").family == ("focal", "focal+grad")
    for op in ("distill", "distill+grad"):
        assert op in _workloads.get("W1").ops and _workloads.op_available(_workloads.get("W1"), op)
    for op in ("focal", "focal+grad"):
        assert op in _workloads.get("W4").ops and _workloads.op_available(_workloads.get("W4"), op)
