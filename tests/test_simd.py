"""Both SIMD builds of the kernels.

The test process uses the module fastxent chose for this CPU (AVX2+FMA where the
CPU has it).  The baseline module is checked in a subprocess started with
FASTXENT_SIMD=baseline, on a cheap subset of the cases, against the float64
reference.  On a CPU without AVX2 the two are the same module: skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from fastxent import _kernels
from helpers import assert_close, assert_grad_close

# Runs in the subprocess: loads the inputs, computes, saves the results.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import fastxent as fx
    from fastxent import _kernels
    assert _kernels.simd_path == sys.argv[3], _kernels.simd_path
    a = dict(np.load(sys.argv[1]))
    res = {}
    for dt in ("f8", "f4"):
        x, xt, xl = a["x"].astype(dt), a["xt"].astype(dt), a["xl"].astype(dt)
        w, wt = a["w"].astype(dt), a["wt"].astype(dt)
        res["ce_" + dt], res["ce_grad_" + dt] = fx.cross_entropy(
            x, a["y"], w, label_smoothing=0.1, reduction="none", return_grad=True)
        res["cep_" + dt], res["cep_grad_" + dt] = fx.cross_entropy(
            x, a["t"].astype(dt), w, reduction="sum", return_grad=True)
        res["tile_" + dt], res["tile_grad_" + dt] = fx.cross_entropy(
            xt, a["yt"], wt, label_smoothing=0.2, reduction="none", return_grad=True)
        res["long_" + dt], res["long_grad_" + dt] = fx.cross_entropy(
            xl, a["yl"], reduction="none", return_grad=True)
        res["nll_" + dt] = fx.nll_loss(x, a["y"], w, reduction="none")
        res["lse_" + dt] = fx.logsumexp(xt, axis=1)
        res["sm_" + dt] = fx.softmax(xl)
        res["lsm_" + dt] = fx.log_softmax(xt, axis=1)
    np.savez(sys.argv[2], **res)
""")


def run_with_simd(simd, inputs_path, results_path, expect):
    pkg_parent = os.path.dirname(os.path.dirname(fx.__file__))
    env = dict(os.environ, FASTXENT_SIMD=simd)
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", SCRIPT, str(inputs_path), str(results_path),
                           expect], env=env, capture_output=True, text=True, timeout=120)


def test_baseline_kernels_match_reference(tmp_path):
    if _kernels.simd_path == "baseline":
        pytest.skip("this process already runs the baseline kernels (no AVX2+FMA here)")
    rng = np.random.default_rng(5)
    a = {
        "x": 3.0 * rng.standard_normal((70, 33)), "y": rng.integers(0, 33, 70),
        "t": rng.random((70, 33)), "w": rng.uniform(0.5, 1.5, 33),
        "xt": 3.0 * rng.standard_normal((3, 9, 70)), "yt": rng.integers(0, 9, (3, 70)),
        "wt": rng.uniform(0.5, 1.5, 9),
        "xl": 3.0 * rng.standard_normal((2, 40000)), "yl": np.array([5, 39999]),
    }
    a["y"][::9] = -100
    a["xl"][1, :20000] -= 30.0
    np.savez(tmp_path / "in.npz", **a)
    proc = run_with_simd("baseline", tmp_path / "in.npz", tmp_path / "out.npz", "baseline")
    assert proc.returncode == 0, proc.stderr
    r = dict(np.load(tmp_path / "out.npz"))

    for dt in ("f8", "f4"):
        dtype = np.dtype(dt)
        rtol = 1e-12 if dt == "f8" else 2e-6
        x, xt, xl = a["x"].astype(dt), a["xt"].astype(dt), a["xl"].astype(dt)
        w, wt = a["w"].astype(dt), a["wt"].astype(dt)
        checks = [
            ("ce", ref.cross_entropy(x, a["y"], w, label_smoothing=0.1, reduction="none",
                                     return_grad=True)),
            ("cep", ref.cross_entropy(x, a["t"].astype(dt), w, reduction="sum",
                                      return_grad=True)),
            ("tile", ref.cross_entropy(xt, a["yt"], wt, label_smoothing=0.2, reduction="none",
                                       return_grad=True)),
            ("long", ref.cross_entropy(xl, a["yl"], reduction="none", return_grad=True)),
        ]
        for name, (loss, grad) in checks:
            got = r[f"{name}_{dt}"]
            assert got.dtype == dtype
            assert_close(got, loss, rtol=rtol, atol=rtol * np.max(np.abs(loss)), err_msg=name)
            assert_grad_close(r[f"{name}_grad_{dt}"], grad, dtype, err_msg=name)
        assert_close(r["nll_" + dt], ref.nll_loss(x, a["y"], w, reduction="none"), rtol=rtol)
        assert_close(r["lse_" + dt], ref.logsumexp(xt, axis=1), rtol=rtol)
        # float32 softmax far below the max: x - max is rounded in float32 first,
        # a relative error of |x - max| * 2**-24 (~3e-6 at 45) in the exponential
        assert_close(r["sm_" + dt], ref.softmax(xl), rtol=rtol if dt == "f8" else 1e-5,
                     atol=1e-300)
        assert_close(r["lsm_" + dt], ref.log_softmax(xt, axis=1), rtol=rtol, atol=10 * rtol)


def test_unknown_simd_choice_fails_at_import(tmp_path):
    proc = run_with_simd("sse9", tmp_path / "none.npz", tmp_path / "none.npz", "x")
    assert proc.returncode != 0
    assert "FASTXENT_SIMD" in proc.stderr
