"""Issue 10, the Python layer: each test is named for the defect of fastxent 0.1 it
guards (the item number of the issue in brackets in its docstring).

- [3] ``out`` may overlap no argument, whatever object the argument came in as;
- [5] a byte-swapped uint64 target is range-checked like a native one;
- [6] ``python -m fastxent bench --threads`` beyond the library's cap;
- [7] ``out`` of an ndarray subclass, and ``out`` untouched by a failed call;
- [9] a zero "mean" denominator gives NaN with label smoothing too;
- [10] no underflow error on the way back to float16;
- [11] ``set_num_threads`` is process-wide and touches no other library;
- [Also] bools are not numbers, numbers are not bools; tensors with the neg or
  conj bit; [issue 12, item 4] a floating target of the indices' shape.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastxent as fx
from fastxent import _kernels, _kernels_baseline
from fastxent.__main__ import main as cli_main
from helpers import assert_close

F16 = np.float16

# np.matrix is the ndarray subclass of the reproduction
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


class DLPackOnly:
    """An array that offers DLPack and nothing else (no __array__, no buffer)."""

    def __init__(self, data):
        self._data = data

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()


@pytest.fixture
def openmp_default():
    """OpenMP's count of this thread at its default for the test (an earlier test
    may have lowered it through torch.set_num_threads), restored afterwards."""
    before = _kernels_baseline.omp_max_threads()
    default = getattr(_kernels, "_omp_default", before)
    _kernels_baseline.omp_set_num_threads(default)
    yield default
    _kernels_baseline.omp_set_num_threads(before)


# ----------------------------------------------------------------------------
# [3] out overlapping an argument, whatever object it came in as
# ----------------------------------------------------------------------------

def _probabilities(rng, shape, dtype):
    t = rng.random(shape) + 0.1
    return (t / t.sum(axis=-1, keepdims=True)).astype(dtype)


def _overlap_numpy_cases(rng):
    """(name, call, arrays the call must leave as they are) with NumPy, memoryview
    and DLPack arguments."""
    cases = []
    a = rng.standard_normal((4, 3)).astype(F16)
    cases.append(("memoryview float16 input to softmax", lambda a=a: fx.softmax(memoryview(a), out=a), [a]))
    a = rng.standard_normal((4, 3)).astype(F16)
    cases.append(("memoryview float16 input to log_softmax",
                  lambda a=a: fx.log_softmax(memoryview(a), out=a), [a]))
    a = rng.standard_normal((4, 3)).astype(F16)
    cases.append(("memoryview float16 input to cross_entropy",
                  lambda a=a: fx.cross_entropy(memoryview(a), [0, 1, 2, 0], return_grad=True, out=a), [a]))
    a = rng.standard_normal((4, 3))
    cases.append(("memoryview float64 input to softmax", lambda a=a: fx.softmax(memoryview(a), out=a), [a]))
    a = rng.standard_normal((4, 3)).astype(F16)
    cases.append(("DLPack-only float16 input to softmax", lambda a=a: fx.softmax(DLPackOnly(a), out=a), [a]))
    x = rng.standard_normal((4, 3)).astype(F16)
    t = _probabilities(rng, (4, 3), F16)
    cases.append(("memoryview float16 probability target",
                  lambda x=x, t=t: fx.cross_entropy(x, memoryview(t), return_grad=True, out=t), [x, t]))
    for fn in ("cross_entropy", "nll_loss"):
        x = rng.standard_normal((4, 3)).astype(F16)
        buf = np.ones((4, 3), F16)
        cases.append((f"memoryview float16 weight of {fn}",
                      lambda x=x, buf=buf, fn=fn: getattr(fx, fn)(x, [0, 1, 2, 0], memoryview(buf[1]),
                                                                  return_grad=True, out=buf),
                      [x, buf]))
    x = rng.uniform(0.1, 0.9, 4).astype(np.float32)
    t = rng.uniform(0.1, 0.9, 8)
    cases.append(("float64 BCE target under a float32 out",
                  lambda x=x, t=t: fx.binary_cross_entropy(x, t[:4], return_grad=True,
                                                           out=t.view(np.float32)[:4]), [x, t]))
    x = rng.standard_normal((4, 3)).astype(F16)
    buf = np.ones((4, 3), F16)
    cases.append(("memoryview float16 pos_weight",
                  lambda x=x, buf=buf: fx.binary_cross_entropy_with_logits(
                      x, np.ones((4, 3)), pos_weight=memoryview(buf[2]), return_grad=True, out=buf),
                  [x, buf]))
    x = rng.standard_normal((4, 3)).astype(F16)
    buf = np.ones((4, 3), F16)
    cases.append(("DLPack-only float16 weight of BCE with logits",
                  lambda x=x, buf=buf: fx.binary_cross_entropy_with_logits(
                      x, np.ones((4, 3)), DLPackOnly(buf[0]), return_grad=True, out=buf),
                  [x, buf]))
    x = rng.standard_normal((4, 3))
    buf = np.zeros((4, 3))
    buf.reshape(-1)[:4].view(np.int64)[:] = [0, 1, 2, 0]       # class indices in out's memory
    cases.append(("int64 target in out's memory",
                  lambda x=x, buf=buf: fx.cross_entropy(x, memoryview(buf.reshape(-1)[:4].view(np.int64)),
                                                        return_grad=True, out=buf), [x, buf]))
    return cases


@pytest.mark.parametrize("which", range(12))
def test_out_overlapping_an_argument_of_any_kind_is_refused(rng, which):
    """[3] The overlap check sees each argument as the user passed it (the view
    np.asarray/np.from_dlpack gives) as well as converted: a float16 argument is
    read from a float32 copy, yet out may not overwrite the caller's array."""
    cases = _overlap_numpy_cases(rng)
    assert len(cases) == 12
    name, call, arrays = cases[which]
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match="out"):
        call()
    for a, b in zip(arrays, before):
        assert a.tobytes() == b.tobytes(), f"{name}: an argument was modified"


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_out_overlapping_a_tensor_argument_is_refused(torch, rng, dtype):
    """[3] The issue's reproduction: a float16 tensor input and out=x.numpy(); and
    tensor targets, weights and grad_output under out."""
    tdt = getattr(torch, dtype)
    x = torch.randn(4, 3, dtype=tdt)
    before = x.clone()
    with pytest.raises(ValueError, match="out"):
        fx.cross_entropy(x, [0, 1, 2, 0], return_grad=True, out=x.numpy())
    assert torch.equal(x, before)

    x = rng.standard_normal((4, 3)).astype(dtype)
    out = np.ones((4, 3), dtype)
    t = torch.from_numpy(out)                                  # probabilities in out's memory
    with pytest.raises(ValueError, match="out"):
        fx.cross_entropy(x, t, return_grad=True, out=out)
    w = torch.from_numpy(out[1])
    with pytest.raises(ValueError, match="out"):
        fx.cross_entropy(x, [0, 1, 2, 0], w, return_grad=True, out=out)
    with pytest.raises(ValueError, match="out"):
        fx.binary_cross_entropy_with_logits(x, np.ones((4, 3)), pos_weight=w, return_grad=True, out=out)
    go = torch.from_numpy(out.reshape(-1)[:4])
    with pytest.raises(ValueError, match="out"):
        fx.cross_entropy(x, [0, 1, 2, 0], reduction="none", return_grad=True, grad_output=go, out=out)
    assert (out == 1).all()


def test_out_overlapping_a_loss_class_weight_is_refused(rng):
    """[3] The weight a loss class holds is an argument too."""
    x = rng.standard_normal((4, 3)).astype(F16)
    buf = np.ones((4, 3), F16)
    loss_fn = fx.CrossEntropyLoss(memoryview(buf[3]))
    with pytest.raises(ValueError, match="out"):
        loss_fn(x, [0, 1, 2, 0], return_grad=True, out=buf)
    assert (buf == 1).all()


# ----------------------------------------------------------------------------
# [5] byte-swapped uint64 targets
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_byte_swapped_uint64_target_beyond_int64_is_out_of_range(fn, order, reduction):
    """[5] 2**64 - 100 wraps to -100 (ignore_index) when cast to int64: it must be
    refused in either byte order, not silently ignored."""
    y = np.array([0, 2**64 - 100], dtype=f"{order}u8")
    with pytest.raises(ValueError, match=str(2**64 - 100)):
        getattr(fx, fn)(np.zeros((2, 3)), y, reduction=reduction)
    # values that fit are read in either byte order
    ok = np.array([0, 2], dtype=f"{order}u8")
    assert_close(getattr(fx, fn)(np.eye(2, 3), ok, reduction=reduction),
                 getattr(fx, fn)(np.eye(2, 3), np.array([0, 2]), reduction=reduction), rtol=0)


# ----------------------------------------------------------------------------
# [6] bench --threads
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("threads", ["1000000", "20000", "12345678901234567890", "1,1000000"])
def test_bench_thread_count_beyond_the_cap_is_an_argparse_error(threads, capsys):
    """[6] A thread count beyond what the library runs (MAX_THREADS) is refused
    by argparse before anything runs, not passed to PyTorch or OpenMP."""
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "--threads", threads, "--quick"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err and str(_kernels.MAX_THREADS) in err and "Traceback" not in err


def test_bench_thread_count_at_the_cap_is_accepted():
    from fastxent._bench import parse_threads
    assert parse_threads(f"1,{_kernels.MAX_THREADS}") == [1, _kernels.MAX_THREADS]


def test_bench_absurd_thread_count_from_the_command_line():
    """[6] The issue's command line, run as written."""
    res = subprocess.run([sys.executable, "-m", "fastxent", "bench", "--threads", "1000000", "--quick"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "--threads" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


# ----------------------------------------------------------------------------
# [7] ndarray subclasses as out; out untouched when a call fails
# ----------------------------------------------------------------------------

def test_ndarray_subclass_as_out_is_written_and_returned(rng, tmp_path):
    """[7] np.matrix (and np.memmap) as out: written through a plain view,
    returned as given, with the same values as without out."""
    x = rng.standard_normal((3, 3))
    y = np.array([0, 1, 2])
    for fn in ("cross_entropy", "nll_loss"):
        want_loss, want_grad = getattr(fx, fn)(x, y, return_grad=True)
        out = np.matrix(np.full((3, 3), 7.0))
        loss, grad = getattr(fx, fn)(x, y, return_grad=True, out=out)
        assert grad is out
        assert loss == want_loss
        np.testing.assert_array_equal(np.asarray(out), want_grad)
    mm = np.memmap(tmp_path / "out.dat", dtype=np.float64, mode="w+", shape=(3, 3))
    assert fx.softmax(x, out=mm) is mm
    np.testing.assert_array_equal(np.asarray(mm), fx.softmax(x))
    mm16 = np.memmap(tmp_path / "out16.dat", dtype=F16, mode="w+", shape=(3, 3))
    assert fx.softmax(x.astype(F16), out=mm16) is mm16
    np.testing.assert_array_equal(np.asarray(mm16), fx.softmax(x.astype(F16)))
    # a matrix of the wrong shape is refused by name
    with pytest.raises(ValueError, match="out"):
        fx.softmax(np.zeros(3), out=np.matrix(np.zeros(3)))


def _failing_calls(x, out):
    """Calls that pass every check of ``out`` and fail on another argument."""
    y = np.array([0, 1, 2, 0])
    bad_y = np.array([0, 1, 5, 0])
    return [
        ("nll_loss, target out of range", lambda: fx.nll_loss(x, bad_y, return_grad=True, out=out)),
        ("nll_loss, weight of the wrong shape",
         lambda: fx.nll_loss(x, y, np.ones(4), return_grad=True, out=out)),
        ("nll_loss, grad_output of the wrong shape",
         lambda: fx.nll_loss(x, y, reduction="none", return_grad=True, grad_output=np.ones(3), out=out)),
        ("cross_entropy, target out of range",
         lambda: fx.cross_entropy(x, bad_y, return_grad=True, out=out)),
        ("cross_entropy, probabilities of the wrong shape",
         lambda: fx.cross_entropy(x, np.ones((4, 4)), return_grad=True, out=out)),
        ("cross_entropy, grad_output of the wrong dtype",
         lambda: fx.cross_entropy(x, y, return_grad=True, grad_output="1", out=out)),
        ("NLLLoss, target out of range",
         lambda: fx.NLLLoss(reduction="sum")(x, bad_y, return_grad=True, out=out)),
        ("softmax, axis out of range", lambda: fx.softmax(x, axis=2, out=out)),
        ("binary_cross_entropy_with_logits, pos_weight that does not broadcast",
         lambda: fx.binary_cross_entropy_with_logits(x, np.ones((4, 3)), pos_weight=np.ones(4),
                                                     return_grad=True, out=out)),
        ("binary_cross_entropy, target of the wrong shape",
         lambda: fx.binary_cross_entropy(np.full((4, 3), 0.5, x.dtype), np.ones(3), return_grad=True,
                                         out=out)),
    ]


@pytest.mark.parametrize("subclass", [False, True], ids=["ndarray", "matrix"])
@pytest.mark.parametrize("dtype", [np.float64, F16])
def test_out_is_untouched_when_a_call_fails(rng, dtype, subclass):
    """[7] Every check of a call runs before anything is written to out (in 0.1
    nll_loss zeroed out, then failed).  (binary_cross_entropy's check that its
    values lie in [0, 1] is made by the kernel during its one pass, and is not
    covered here.)"""
    x = rng.standard_normal((4, 3)).astype(dtype)
    # 0.1's reproduction: nll_loss zeroed a matrix out, then refused it
    out = np.full((4, 3), 7.0, dtype)
    out = np.matrix(out) if subclass else out
    try:
        fx.nll_loss(x, [0, 1, 2, 0], return_grad=True, out=out)
    except (TypeError, ValueError) as exc:
        assert "out" in str(exc)
        assert (np.asarray(out) == 7.0).all(), "nll_loss wrote to out before failing"
    else:
        np.testing.assert_array_equal(np.asarray(out), fx.nll_loss(x, [0, 1, 2, 0], return_grad=True)[1])
    for name, call in _failing_calls(x, None):
        out = np.full((4, 3), 7.0, dtype)
        if subclass:
            out = np.matrix(out)
        calls = dict(_failing_calls(x, out))
        with pytest.raises((TypeError, ValueError)):
            calls[name]()
        assert (np.asarray(out) == 7.0).all(), f"{name} wrote to out before failing"


# ----------------------------------------------------------------------------
# [9] a zero "mean" denominator with label smoothing
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_mean_denominator_with_label_smoothing_is_nan(dtype):
    """[9] Every target of weight 0: the mean's denominator is 0, and the loss and
    gradient are NaN with label smoothing as without (0.1 gave inf); an ignored
    row keeps a zero gradient."""
    x = np.array([[0.0, 1, 2], [1, 2, 3]], dtype)
    w = np.array([0.0, 1, 1], dtype)
    loss = fx.cross_entropy(x[:1], [0], weight=w, label_smoothing=0.2)
    assert np.isnan(loss) and loss.dtype == dtype
    loss, grad = fx.cross_entropy(x, [0, -100], weight=w, label_smoothing=0.2, return_grad=True)
    assert np.isnan(loss)
    assert np.isnan(grad[0]).all()
    np.testing.assert_array_equal(grad[1], 0.0)
    loss_fn = fx.CrossEntropyLoss(w, label_smoothing=0.2)
    assert np.isnan(loss_fn(x[:1], [0]))
    # "sum" is finite, and without smoothing "mean" was already NaN
    assert np.isfinite(fx.cross_entropy(x, [0, 0], weight=w, label_smoothing=0.2, reduction="sum"))
    assert np.isnan(fx.cross_entropy(x, [0, 0], weight=w))
    assert np.isnan(fx.nll_loss(x, [0, 0], weight=w))


def test_zero_mean_denominator_with_label_smoothing_matches_torch(torch):
    """[9] As PyTorch: NaN loss, NaN gradient at kept rows, 0 at ignored rows."""
    x = np.array([[0.0, 1, 2], [1, 2, 3]])
    w = np.array([0.0, 1, 1])
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor([0, -100]), weight=torch.tensor(w),
                                           label_smoothing=0.2)
    lt.backward()
    loss, grad = fx.cross_entropy(x, [0, -100], weight=w, label_smoothing=0.2, return_grad=True)
    assert np.isnan(lt.item()) and np.isnan(loss)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(xt.grad.numpy()))
    np.testing.assert_array_equal(grad[1], xt.grad.numpy()[1])


# ----------------------------------------------------------------------------
# [10] float16 results under np.seterr(under="raise")
# ----------------------------------------------------------------------------

def test_float16_results_round_without_underflow_errors():
    """[10] Values below float16's range round to 0 (or a subnormal) silently,
    as values above it already rounded to inf: the rounding is the answer."""
    x = np.array([0.0, -20.0, -30.0], F16)
    with np.errstate(all="ignore"):
        want_softmax = fx.softmax(x.astype(np.float32)).astype(F16)
        want_grad = fx.cross_entropy(x, 0, return_grad=True)[1]
    with np.errstate(under="raise", over="raise"):
        np.testing.assert_array_equal(fx.softmax(x), want_softmax)
        assert want_softmax[2] == 0                       # it did underflow
        out = np.empty(3, F16)
        fx.softmax(x, out=out)
        np.testing.assert_array_equal(out, want_softmax)
        loss, grad = fx.cross_entropy(x, 0, return_grad=True)
        np.testing.assert_array_equal(grad, want_grad)
        out = np.empty(3, F16)
        fx.cross_entropy(x, 0, return_grad=True, out=out)
        np.testing.assert_array_equal(out, want_grad)
        # per-sample losses and a logsumexp below float16's smallest subnormal
        assert fx.cross_entropy(np.array([[30.0, 0, 0]], F16), [0], reduction="none")[0] == 0
        assert fx.logsumexp(np.array([0.0, -40.0], F16)) == 0
        lse = fx.logsumexp(np.array([[0.0, -40.0]], F16), axis=1, keepdims=True)
        assert lse.dtype == F16 and lse[0, 0] == 0
        assert fx.binary_cross_entropy_with_logits(np.array([30.0], F16), [1.0], reduction="none")[0] == 0
        # and a float32 loss beyond float32's range is inf, without an error
        big = fx.cross_entropy(np.array([[3e38, -3e38]], np.float32), [1], reduction="sum")
        assert big == np.inf and big.dtype == np.float32


# ----------------------------------------------------------------------------
# [11] the thread count: process-wide, and OpenMP's (and PyTorch's) left alone
# ----------------------------------------------------------------------------

def _in_a_thread(fn):
    result = []
    th = threading.Thread(target=lambda: result.append(fn()))
    th.start()
    th.join()
    return result[0]


def test_set_num_threads_is_seen_by_every_python_thread(keep_num_threads, openmp_default):
    """[11] set_num_threads(6) in the main thread: a worker thread sees 6 (it saw
    OpenMP's default of its own thread)."""
    fx.set_num_threads(6)
    assert fx.get_num_threads() == 6
    assert _in_a_thread(fx.get_num_threads) == 6
    fx.set_num_threads(1)
    assert _in_a_thread(fx.get_num_threads) == 1


def test_set_num_threads_leaves_openmps_count_alone(keep_num_threads, openmp_default):
    """[11] fastxent never calls omp_set_num_threads: OpenMP's count (the one
    every library sharing the runtime uses) is what it was."""
    for n in (1, 3, openmp_default + 5):
        fx.set_num_threads(n)
        assert _kernels_baseline.omp_max_threads() == openmp_default
        assert _in_a_thread(_kernels_baseline.omp_max_threads) == openmp_default


def test_set_num_threads_leaves_torchs_count_alone(torch, keep_num_threads, openmp_default):
    """[11] PyTorch shares libgomp on Linux: its thread count must not follow ours."""
    before = torch.get_num_threads()
    for n in (1, before + 3):
        fx.set_num_threads(n)
        assert torch.get_num_threads() == before


def test_threadpoolctl_limit_still_caps_set_num_threads(keep_num_threads, openmp_default):
    """[11] threadpool_limits lowers OpenMP's count of the calling thread below
    its default: fastxent's count follows, in that thread, and only while it lasts."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _kernels_baseline.openmp_enabled():
        pytest.skip("built without OpenMP")
    fx.set_num_threads(openmp_default + 3)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fx.get_num_threads() == 1
    assert fx.get_num_threads() == openmp_default + 3

    def limited_in_worker():
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            return fx.get_num_threads()
    assert _in_a_thread(limited_in_worker) == 1


def test_set_num_threads_overrides_an_openmp_count_lowered_before(keep_num_threads, openmp_default):
    """[11] OpenMP's count lowered before set_num_threads (torch.set_num_threads(1)
    at start-up, say) does not cap the count asked for afterwards; without
    set_num_threads, fastxent follows OpenMP's count."""
    if not _kernels_baseline.openmp_enabled() or openmp_default < 2:
        pytest.skip("needs OpenMP with a default of 2 threads or more")
    _kernels_baseline.omp_set_num_threads(1)
    fx.set_num_threads(openmp_default + 1)
    assert fx.get_num_threads() == openmp_default + 1


def test_set_num_threads_above_openmps_default_runs_that_many_threads():
    """[11] The count reaches the parallel region without omp_set_num_threads: with
    OMP_NUM_THREADS=1, set_num_threads(3) then a large call starts OpenMP's team
    of 3 (libgomp keeps its threads, so the process has at least 3 afterwards)."""
    if not _kernels_baseline.openmp_enabled() or not os.path.isdir("/proc/self/task"):
        pytest.skip("needs OpenMP and Linux's /proc")
    code = ("import os, numpy as np, fastxent as fx\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "fx.set_num_threads(3)\n"
            "fx.cross_entropy(np.zeros((20000, 64), np.float32), np.zeros(20000, np.int64), return_grad=True)\n"
            "from fastxent import _kernels_baseline as k\n"
            "print(before, len(os.listdir('/proc/self/task')), k.omp_max_threads())\n")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(fx.__file__)),
                                           os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    before, after, omp = map(int, res.stdout.split())
    assert after >= before + 2 and omp == 1


# ----------------------------------------------------------------------------
# [Also] bools are not numbers and numbers are not bools; neg and conj tensors
# ----------------------------------------------------------------------------

def _calls_with(x, y, **kw):
    """Each public entry point that takes all of ``kw``."""
    p = np.full(x.shape, 0.5)
    calls = {
        "cross_entropy": lambda: fx.cross_entropy(x, y, **kw),
        "nll_loss": lambda: fx.nll_loss(x, y, **{k: v for k, v in kw.items() if k != "label_smoothing"}),
        "binary_cross_entropy": lambda: fx.binary_cross_entropy(p, p, **kw),
        "binary_cross_entropy_with_logits": lambda: fx.binary_cross_entropy_with_logits(x, p, **kw),
        "CrossEntropyLoss()": lambda: fx.CrossEntropyLoss()(x, y, **kw),
        "BCEWithLogitsLoss()": lambda: fx.BCEWithLogitsLoss()(x, p, **kw),
        "softmax": lambda: fx.softmax(x, **kw),
        "logsumexp": lambda: fx.logsumexp(x, **kw),
    }
    takes = {"return_grad": ["cross_entropy", "nll_loss", "binary_cross_entropy",
                             "binary_cross_entropy_with_logits", "CrossEntropyLoss()", "BCEWithLogitsLoss()"],
             "n_threads": ["cross_entropy", "nll_loss", "binary_cross_entropy",
                           "binary_cross_entropy_with_logits", "softmax", "logsumexp"],
             "label_smoothing": ["cross_entropy"],
             "keepdims": ["logsumexp"]}
    names = set(calls)
    for k in kw:
        names &= set(takes[k])
    return {n: calls[n] for n in sorted(names)}


@pytest.mark.parametrize("value", ["no", "False", 1, 0, 1.0, None, np.array(True), [True]])
@pytest.mark.parametrize("flag", ["return_grad", "keepdims"])
def test_a_bool_flag_refuses_anything_but_a_bool(flag, value):
    """[Also] return_grad="no" computed a gradient: every bool flag takes True or
    False (NumPy's bool too) and nothing else."""
    x = np.zeros((4, 3))
    y = np.array([0, 1, 2, 0])
    calls = _calls_with(x, y, **{flag: value})
    assert calls
    for name, call in calls.items():
        with pytest.raises(TypeError, match=flag):
            call()
    for name, call in _calls_with(x, y, **{flag: np.True_}).items():
        call()


@pytest.mark.parametrize("option, value", [("label_smoothing", True), ("label_smoothing", np.True_),
                                           ("label_smoothing", False), ("label_smoothing", "0.5"),
                                           ("label_smoothing", b"0.5"), ("n_threads", True),
                                           ("n_threads", np.True_), ("n_threads", "2")])
def test_a_number_option_refuses_bools_and_strings(option, value):
    """[Also] label_smoothing=True meant 1.0, '0.5' meant 0.5 and n_threads=True
    one thread: a bool or a string where a number is expected is a TypeError,
    from the functions, the loss classes and set_num_threads alike."""
    x = np.zeros((4, 3))
    y = np.array([0, 1, 2, 0])
    calls = _calls_with(x, y, **{option: value})
    assert calls
    for name, call in calls.items():
        with pytest.raises(TypeError, match=option):
            call()
    with pytest.raises(TypeError, match=option):
        fx.CrossEntropyLoss(**{option: value})
    if option == "n_threads":
        with pytest.raises(TypeError, match=option):
            fx.set_num_threads(value)
    # real numbers of NumPy's types are numbers
    for name, call in _calls_with(x, y, **{option: np.float32(0.5) if option == "label_smoothing"
                                          else np.int8(1)}).items():
        call()


def test_tensor_with_the_neg_bit_says_resolve_neg(torch):
    """[Also] torch's RuntimeError from np.asarray becomes a TypeError naming the
    argument and the fix."""
    z = torch.randn(4, 3, dtype=torch.complex128)
    x = z.conj().imag                                   # a real view with the neg bit set
    assert x.is_neg()
    with pytest.raises(TypeError, match=r"input\.resolve_neg\(\)"):
        fx.cross_entropy(x, [0, 1, 2, 0])
    with pytest.raises(TypeError, match=r"target\.resolve_neg\(\)"):
        fx.binary_cross_entropy_with_logits(np.zeros((4, 3)), x)
    with pytest.raises(TypeError, match=r"weight\.resolve_neg\(\)"):
        fx.CrossEntropyLoss(x[0])
    # resolved as told, it works
    fx.cross_entropy(x.resolve_neg(), [0, 1, 2, 0])


def test_tensor_with_the_conj_bit_says_resolve_conj(torch):
    z = torch.randn(4, 3, dtype=torch.complex128).conj()
    assert z.is_conj()
    with pytest.raises(TypeError, match=r"x\.resolve_conj\(\)"):
        fx.softmax(z)


# ----------------------------------------------------------------------------
# [issue 12, item 4] a floating target with the shape of class indices
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((4, 3), None), ((2, 5, 7), -1), ((3,), None)])
def test_floating_target_of_the_index_shape_says_cast_to_integers(shape, axis):
    x = np.zeros(shape)
    ax = (0 if len(shape) == 1 else 1) if axis is None else axis % len(shape)
    t = np.zeros(shape[:ax] + shape[ax + 1:])
    with pytest.raises(ValueError, match=r"target\.astype\(np\.int64\)") as err:
        fx.cross_entropy(x, t, axis=axis)
    assert str(shape) in str(err.value) and str(t.shape) in str(err.value)
    # a floating target of any other wrong shape gets no such advice
    with pytest.raises(ValueError) as err:
        fx.cross_entropy(x, np.zeros(shape + (2,)), axis=axis)
    assert "astype" not in str(err.value)
