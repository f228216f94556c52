"""The bench's peers (PyTorch, JAX, scikit-learn), its floors, --peers, --workloads
and --plot: each peer computes what fastxent computes on every workload's small
data, JAX's child really runs on the CPUs it is given, and the command's options
do what they say.  A peer's tests skip where it is not installed (CI installs
torch, jax, optax, scikit-learn and matplotlib)."""
import io
import os
import sys

import numpy as np
import pytest

from fastxent import _baseline, _bench, _peers, _workloads
from fastxent.__main__ import main
from fastxent._workloads import OPS, WORKLOADS, differs, result_names, runner


def _need(peer):
    if not _peers.importable(peer):
        pytest.skip(f"{peer} is not installed")


def _to_numpy(value):
    return _bench._to_numpy(value)


def _x64(peer):
    """JAX computes float64 only with x64 on, as the bench's child sets it."""
    if peer != "jax":
        import contextlib
        return contextlib.nullcontext()
    import jax
    return jax.enable_x64(True)


@pytest.mark.parametrize("peer", _peers.PEERS)
@pytest.mark.parametrize("wl", WORKLOADS, ids=lambda w: w.name)
def test_peer_agrees_with_numpy_twin(peer, wl):
    """Every op a peer has, on every workload (tiny data): the same loss,
    gradient and Hessian as the NumPy twin (sklearn's unscaled by N)."""
    _need(peer)
    dtype = wl.dtypes[-1]
    x, t = wl.make(dtype, tiny=True)
    v = wl.vector(dtype, tiny=True)
    checked = 0
    with _x64(peer):
        checked = _check_ops(peer, wl, x, t, v)
    assert checked >= (1 if wl.binary else 2)


def _check_ops(peer, wl, x, t, v):
    checked = 0
    for op in wl.ops:
        if op in _workloads.ADAPTER_OPS:
            continue
        call = _peers.peer_call(peer, op, wl, x, t, n_threads=2, v=v)
        if call is None:
            continue
        function, grad, hess = OPS[op]
        want = runner("numpy", function or wl.loss_function, wl, x, t, return_grad=grad,
                      return_hessian=hess, v=v)()
        with _peers.peer_threads(peer, 2):
            got = _to_numpy(call())
        scale = _peers.sklearn_scale(wl, x) if peer == "sklearn" else None
        assert differs(got, want, x.dtype, names=result_names(grad, hess), scale=scale) is None, op
        checked += 1
    return checked


def test_sklearn_left_out_when_it_disagrees(monkeypatch):
    """A peer whose result differs from the twin is not timed, and a note says so."""
    _need("sklearn")
    real = _peers._sklearn_call

    def off_by_one(function, grad, hess, wl, x, target, n_threads):
        call = real(function, grad, hess, wl, x, target, n_threads)
        return None if call is None else (lambda: _shift(call()))
    monkeypatch.setattr(_peers, "_sklearn_call", off_by_one)
    out = io.StringIO()
    results = _bench.run(quick=True, tiny=True, repeat=1, threads=[1], peers=("sklearn",),
                         sections=("W2",), out=out, err=io.StringIO())
    assert results and all(r.seconds.get("sklearn") is None for r in results)
    assert "sklearn left out, its result disagrees" in out.getvalue()


def _shift(result):
    return tuple(None if r is None else r + 1 for r in result) if isinstance(result, tuple) \
        else result + 1


def test_sklearn_feeds_class_axis_1_without_copies():
    """W5's (N, C, H, W) logits go to sklearn as strided views, not copies."""
    wl = _workloads.get("W5")
    x, t = wl.make("float32", tiny=True)
    views = _peers._sklearn_split(wl, x)
    assert len(views) == x.shape[0]
    assert all(np.shares_memory(v, x) and v.shape == (x[0][0].size, x.shape[1]) for v in views)
    np.testing.assert_array_equal(views[1][5], x[1, :, 0, 5])


def test_torch_threads_are_restored():
    _need("torch")
    import torch
    before = torch.get_num_threads()
    with _peers.peer_threads("torch", 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_jax_child_runs_on_the_cpus_it_is_given():
    """At one thread the child is pinned to one CPU: its CPU time cannot exceed
    its wall time (XLA's pool would use every CPU otherwise).  The two clocks are
    read apart, so tiny calls on a loaded machine overshoot by some percent: the
    bound sits halfway between one CPU (1.0) and two (2.0)."""
    _need("jax")
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    from fastxent import _bench_jax
    err = io.StringIO()
    timed, notes = _bench_jax.times([("W1", "float32", ["loss+grad", "logsumexp"])], [1],
                                    repeat=3, tiny=True, err=err)
    assert not notes, notes
    label = _workloads.get("W1").label("float32", True)
    for op in ("loss+grad", "logsumexp"):
        seconds, cpu, problem = timed[(label, op, 1)]
        assert problem is None and seconds > 0
        assert cpu <= 1.5, (op, cpu)
    assert "[jax, 1 thread]" in err.getvalue()


def test_jax_child_says_when_it_lacks_cpus():
    _need("jax")
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    from fastxent import _bench_jax
    n = len(os.sched_getaffinity(0)) + 1
    timed, notes = _bench_jax.times([("W2", "float32", ["loss"])], [n], repeat=1, tiny=True,
                                    err=io.StringIO())
    assert not timed and notes and f"needs {n} CPUs" in notes[0]


def test_floors_are_the_reads_and_writes_of_the_op():
    """Every floor is measured and positive, for the multi-class and the binary
    workload (whose copy floor reads logits and targets).  Their order is not
    asserted: timings are for the bench, never for a test."""
    for name in ("W1", "W4"):
        wl = _workloads.get(name)
        x, t = wl.make("float32", tiny=False) if name == "W4" else wl.make("float32", tiny=True)
        floors = _bench.measure_floors(wl, x, t, 3)
        assert 0 < floors.read and 0 < floors.copy and 0 < floors.exp


def test_best_peer_is_the_fastest_that_ran():
    r = _bench.Result("W1", "loss", 1, _bench.Floors(1, 1, 1),
                      {"fastxent": 1.0, "numpy": 0.1, "torch": 3.0, "jax": 2.0, "sklearn": None})
    assert r.best_peer() == ("jax", 2.0)
    row = _bench._row(r)
    assert row[_bench.COLUMNS.index("best peer")] == "jax"
    assert row[_bench.COLUMNS.index("vs best")] == "2.00x"
    assert _bench.Result("W1", "loss", 1, _bench.Floors(1, 1, 1), {"fastxent": 1.0}).best_peer() \
        == (None, None)


def test_peers_option(capsys):
    assert _peers.parse_peers("jax,torch") == ("torch", "jax")
    assert _peers.parse_peers("none") == ()
    with pytest.raises(SystemExit) as e:
        main(["bench", "--peers", "tensorflow"])
    assert e.value.code == 2
    assert "--peers takes some of torch, jax, sklearn" in capsys.readouterr().err


def test_workloads_option(capsys):
    assert _bench.parse_sections("loop,W2") == ("W2", "loop")
    with pytest.raises(SystemExit):
        main(["bench", "--workloads", "W9"])
    assert "--workloads takes some of W1" in capsys.readouterr().err


def test_only_the_chosen_sections_run():
    out, err = io.StringIO(), io.StringIO()
    results = _bench.run(tiny=True, repeat=1, threads=[1], peers=(), sections=("W4",),
                         out=out, err=err)
    assert {r.label.split()[0] for r in results} == {"W4"}
    text = out.getvalue()
    assert "| W4 1000 float64" in text and "small: one call" not in text and "loop:" not in text
    assert "W6," not in text
    for peer in _peers.PEERS:                          # no peer ran: its column is empty
        column = _bench.COLUMNS.index(f"{peer} ms")
        assert all(_bench._row(r)[column] == "-" for r in results)


def test_plot_draws_the_table(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    res = _bench.run(tiny=True, repeat=1, threads=[1, 2], peers=(), sections=("W2", "W4"),
                     plot=str(path), out=io.StringIO(), err=io.StringIO())
    assert res
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as e:
        main(["bench", "--plot", "bench.png"])
    assert e.value.code == 2
    assert "matplotlib, which is not installed" in capsys.readouterr().err


def test_baseline_twins_keep_their_first_order_results():
    """Adding return_hessian to the twins changed nothing without it."""
    wl = _workloads.get("W2")
    x, t = wl.make("float64", tiny=True)
    loss, grad = _baseline.cross_entropy(x, t, return_grad=True, axis=1)
    loss3, grad3, _ = _baseline.cross_entropy(x, t, return_grad=True, return_hessian=True, axis=1)
    assert loss == loss3
    np.testing.assert_array_equal(grad, grad3)
