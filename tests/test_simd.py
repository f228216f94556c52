"""Every SIMD build of the kernels: baseline, avx2 (AVX2+FMA) and avx512 (AVX-512
F/DQ/VL/BW with FMA).

The test process uses the module fastxent chose for this CPU (the fastest it
runs).  Each module is also run in a subprocess started with FASTXENT_SIMD=<path>,
on a cheap subset of the cases: against the float64 reference, bitwise the same
for every thread count, and the avx512 module within a few ulp of the avx2 one
(both contract a * b + c into FMA).  A path this build has no module for, or
whose instruction sets this CPU lacks, is skipped, saying which.  How
FASTXENT_SIMD picks a module is checked here too, with the CPU's features faked.
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
from fastxent import _kernels, _kernels_baseline
from helpers import assert_close, assert_grad_close

# The cpu_features() key each SIMD module needs, and what it stands for.
NEEDS = {path: (feature, sets) for path, feature, sets in _kernels._SIMD_PATHS}
PATHS = ["baseline"] + [path for path, _, _ in reversed(_kernels._SIMD_PATHS)]

# Runs in the subprocess: loads the inputs, computes, saves the results.  It
# also computes the parallel cases on 1 and 3 threads and exits with an error
# unless they are bitwise the same.
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
        res["bce_" + dt], res["bce_grad_" + dt] = fx.binary_cross_entropy_with_logits(
            x, a["t"].astype(dt), reduction="none", return_grad=True)
        # inputs that go parallel (more than 32768 elements, many blocks)
        xp, xpt, tp = a["xp"].astype(dt), a["xpt"].astype(dt), a["tp"].astype(dt)
        by_threads = []
        for nt in (1, 3):
            r = list(fx.cross_entropy(xp, a["yp"], reduction="sum", label_smoothing=0.1,
                                      return_grad=True, n_threads=nt))
            r += fx.cross_entropy(xpt, a["ypt"], reduction="mean", return_grad=True,
                                  n_threads=nt)
            r += fx.binary_cross_entropy_with_logits(xp, tp, reduction="sum", return_grad=True,
                                                     n_threads=nt)
            r.append(fx.logsumexp(xpt, axis=1, n_threads=nt))
            by_threads.append([np.asarray(v).tobytes() for v in r])
        for i, (one, three) in enumerate(zip(*by_threads)):
            if one != three:
                sys.exit(f"{dt}: parallel result {i} differs between 1 and 3 threads")
    np.savez(sys.argv[2], **res)
""")


def run_with_simd(simd, inputs_path, results_path, expect):
    pkg_parent = os.path.dirname(os.path.dirname(fx.__file__))
    env = dict(os.environ, FASTXENT_SIMD=simd)
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", SCRIPT, str(inputs_path), str(results_path),
                           expect], env=env, capture_output=True, text=True, timeout=120)


def skip_unless_runnable(simd):
    """Skips unless this build has the module of path ``simd`` and this CPU runs it."""
    if simd not in fx.get_simd_paths():
        pytest.skip(f"this build has no fastxent._kernels_{simd} module (it is built on "
                    f"x86-64 only)")
    if simd in NEEDS:
        feature, sets = NEEDS[simd]
        if not _kernels_baseline.cpu_features()[feature]:
            pytest.skip(f"this CPU cannot run the {simd} kernels: it lacks at least one of "
                        f"{sets} (cpu_features()[{feature!r}] is False)")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    rng = np.random.default_rng(5)
    a = {
        "x": 3.0 * rng.standard_normal((70, 33)), "y": rng.integers(0, 33, 70),
        "t": rng.random((70, 33)), "w": rng.uniform(0.5, 1.5, 33),
        "xt": 3.0 * rng.standard_normal((3, 9, 70)), "yt": rng.integers(0, 9, (3, 70)),
        "wt": rng.uniform(0.5, 1.5, 9),
        "xl": 3.0 * rng.standard_normal((2, 40000)), "yl": np.array([5, 39999]),
        "xp": 3.0 * rng.standard_normal((3000, 40)), "yp": rng.integers(0, 40, 3000),
        "tp": rng.random((3000, 40)),
        "xpt": 3.0 * rng.standard_normal((30, 20, 200)), "ypt": rng.integers(0, 20, (30, 200)),
    }
    a["y"][::9] = -100
    a["yp"][::7] = -100
    a["xl"][1, :20000] -= 30.0
    d = tmp_path_factory.mktemp("simd")
    np.savez(d / "in.npz", **a)
    return a, d


@pytest.fixture(scope="module")
def results(inputs):
    """results(simd): the subprocess's results for path ``simd``, computed once."""
    a, d = inputs
    done = {}

    def get(simd):
        if simd not in done:
            skip_unless_runnable(simd)
            proc = run_with_simd(simd, d / "in.npz", d / f"{simd}.npz", simd)
            assert proc.returncode == 0, proc.stderr
            done[simd] = dict(np.load(d / f"{simd}.npz"))
        return done[simd]
    return get


@pytest.mark.parametrize("simd", PATHS)
def test_kernels_match_reference(simd, inputs, results):
    a, _ = inputs
    r = results(simd)
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


def test_avx512_agrees_with_avx2(results):
    """Both modules contract into FMA and reduce in the same order: at most a few
    ulp apart (in practice the same bits), relative to each result's largest entry."""
    r512 = results("avx512")
    r2 = results("avx2")
    assert r512.keys() == r2.keys()
    for key, want in r2.items():
        got = r512[key]
        assert got.dtype == want.dtype, key
        ulps = 8 * np.finfo(want.dtype).eps
        scale = float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0))
        assert_close(got, want, rtol=ulps, atol=ulps * scale, err_msg=key)


def test_unknown_simd_choice_fails_at_import(tmp_path):
    proc = run_with_simd("sse9", tmp_path / "none.npz", tmp_path / "none.npz", "x")
    assert proc.returncode != 0
    assert "FASTXENT_SIMD" in proc.stderr
    assert "avx512" in proc.stderr                # the message lists the choices


# -- the choice itself, with the CPU's features faked ----------------------------------

@pytest.fixture
def fake_cpu(monkeypatch):
    """fake_cpu(simd_env, **features): _kernels._select() under FASTXENT_SIMD=simd_env
    on a CPU with the given cpu_features()."""
    def select(simd_env, **features):
        monkeypatch.setenv("FASTXENT_SIMD", simd_env)
        monkeypatch.setattr(_kernels_baseline, "cpu_features", lambda: dict(features))
        return _kernels._select()
    return select


def _skip_unless_built(*paths):
    for p in paths:
        if p not in fx.get_simd_paths():
            pytest.skip(f"this build has no fastxent._kernels_{p} module (built on x86-64 only)")


def test_auto_takes_the_fastest_path_the_cpu_runs(fake_cpu):
    _skip_unless_built("avx2", "avx512")
    assert fake_cpu("auto", avx2_fma=True, avx512=True)[1] == "avx512"
    assert fake_cpu("auto", avx2_fma=True, avx512=False)[1] == "avx2"
    assert fake_cpu("auto", avx2_fma=False, avx512=False)[1] == "baseline"
    module, path = fake_cpu("", avx2_fma=True, avx512=True)
    assert path == "avx512" and module.__name__ == "fastxent._kernels_avx512"


@pytest.mark.parametrize("simd", ["avx2", "avx512"])
def test_forced_path_the_cpu_lacks_is_an_import_error(fake_cpu, simd):
    feature, _ = NEEDS[simd]
    features = {"avx2_fma": True, "avx512": True, feature: False}
    with pytest.raises(ImportError, match=f"FASTXENT_SIMD={simd}, but this CPU lacks"):
        fake_cpu(simd, **features)


def test_forced_paths(fake_cpu):
    _skip_unless_built("avx2", "avx512")
    for simd in PATHS:
        assert fake_cpu(simd, avx2_fma=True, avx512=True)[1] == simd
    assert fake_cpu(" AVX512 ", avx2_fma=True, avx512=True)[1] == "avx512"


def test_a_module_that_cannot_be_imported(fake_cpu, monkeypatch):
    """auto falls back to the next path; a forced path says what failed."""
    _skip_unless_built("avx2")
    monkeypatch.setitem(sys.modules, "fastxent._kernels_avx512", None)   # import fails
    assert fake_cpu("auto", avx2_fma=True, avx512=True)[1] == "avx2"
    with pytest.raises(ImportError, match="fastxent._kernels_avx512 cannot be imported"):
        fake_cpu("avx512", avx2_fma=True, avx512=True)
