"""linear_cross_entropy: the cross-entropy of hidden @ weight.T + bias, in chunks.

Checked against two oracles in float64: the project's reference
(``reference.cross_entropy`` of the materialized logits, its gradient carried
through the matmul by the chain rule) and PyTorch autograd through ``F.linear``
and ``F.cross_entropy``.  Every option, chunk sizes that do and do not divide the
number of tokens, vocabulary and hidden-unit blocks that do and do not divide V
and H (the ``blocks`` fixture shrinks them), ignored tokens, an all-ignored
batch, float32 and float16, results independent of the thread count, memory
bounded by the chunk, and bad arguments.  z_loss and softcap (cross_entropy's
kernels) against PyTorch autograd too.
"""
from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import fastxent
from fastxent import _blas_blocks, _linear
import reference as ref
from helpers import RTOL, assert_close, assert_grad_close, index_target


@pytest.fixture(params=["default blocks", "small blocks"])
def blocks(request, monkeypatch):
    """Default block sizes (one block at these small shapes), or blocks of 7
    vocabulary rows and 3 hidden units, which divide neither V nor H, and the
    gradient staged one row at a time."""
    if request.param == "small blocks":
        monkeypatch.setattr(_linear, "VOCAB_BLOCK_MIN", 7)
        monkeypatch.setattr(_linear, "VOCAB_BLOCK_BYTES", 0)
        monkeypatch.setattr(_linear, "HIDDEN_BLOCK", 3)
        monkeypatch.setattr(_linear, "STAGE_BYTES", 0)
    return request.param


def make_problem(rng, N=29, H=11, V=37, dtype=np.float64, ignore_frac=0.25, ignore_index=-100):
    h = rng.standard_normal((N, H)).astype(dtype)
    W = (0.7 * rng.standard_normal((V, H))).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    y = index_target(rng, (N,), V, ignore_frac=ignore_frac, ignore_index=ignore_index)
    return h, W, b, y


def reference(h, W, y, b=None, **options):
    """The float64 oracle: reference.cross_entropy of the materialized logits, and
    its logits gradient G carried through the linear layer."""
    h64, W64 = np.asarray(h, np.float64), np.asarray(W, np.float64)
    logits = h64 @ W64.T + (0.0 if b is None else np.asarray(b, np.float64))
    loss, G = ref.cross_entropy(logits, y, return_grad=True, **options)
    return loss, (G @ W64, G.T @ h64, None if b is None else G.sum(axis=0))


def torch_reference(torch, h, W, y, b=None, *, ignore_index=-100, reduction="mean",
                    label_smoothing=0.0, z_loss=0.0, softcap=None):
    """PyTorch autograd in float64: F.linear, optional soft-capping, F.cross_entropy
    and the z-loss ``z_loss * lse**2`` of each non-ignored token."""
    F = torch.nn.functional
    leaf = lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True)  # noqa: E731
    ht, Wt = leaf(h), leaf(W)
    bt = None if b is None else leaf(b)
    yt = torch.tensor(np.asarray(y, np.int64))
    logits = F.linear(ht, Wt, bt)
    if softcap is None and z_loss == 0.0:
        loss = F.cross_entropy(logits, yt, ignore_index=ignore_index, reduction=reduction,
                               label_smoothing=label_smoothing)
    else:
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        keep = yt != ignore_index
        loss_n = F.cross_entropy(logits, yt, ignore_index=ignore_index, reduction="none",
                                 label_smoothing=label_smoothing)
        loss_n = loss_n + z_loss * torch.where(keep, torch.logsumexp(logits, dim=1) ** 2, 0.0)
        loss = {"none": loss_n, "sum": loss_n.sum(), "mean": loss_n.sum() / keep.sum()}[reduction]
    loss.sum().backward()
    grads = (ht.grad.numpy(), Wt.grad.numpy(), None if bt is None else bt.grad.numpy())
    return loss.detach().numpy(), grads


def assert_matches(got, want, dtype, rel=1.0):
    loss, grads = got
    want_loss, want_grads = want
    assert_close(loss, want_loss, rtol=rel * RTOL[np.dtype(dtype)],
                 atol=rel * RTOL[np.dtype(dtype)] * float(np.max(np.abs(want_loss), initial=0.0)))
    for name, g, w in zip(("grad_hidden", "grad_weight", "grad_bias"), grads, want_grads):
        if w is None:
            assert g is None, name
            continue
        assert g.dtype == np.dtype(dtype), name
        assert_grad_close(g, w, dtype, rel=rel, err_msg=name)


# ----------------------------------------------------------------------------
# Values and gradients
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("chunk_size", [1, 4, 29, None, 1000])
def test_matches_reference(rng, blocks, reduction, with_bias, label_smoothing, chunk_size):
    """Every option; chunk sizes 4 (does not divide the kept tokens), 1, N, the
    default and more than N; about a quarter of the tokens ignored."""
    h, W, b, y = make_problem(rng)
    b = b if with_bias else None
    opts = dict(reduction=reduction, label_smoothing=label_smoothing)
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=chunk_size, return_grad=True, **opts)
    assert_matches(got, reference(h, W, y, b, **opts), np.float64, rel=10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk_size", [3, 8, None])
def test_matches_torch_autograd(torch, rng, blocks, reduction, with_bias, label_smoothing, chunk_size):
    h, W, b, y = make_problem(rng, N=24, H=9, V=41)
    b = b if with_bias else None
    opts = dict(reduction=reduction, label_smoothing=label_smoothing)
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=chunk_size, return_grad=True, **opts)
    assert_matches(got, torch_reference(torch, h, W, y, b, **opts), np.float64, rel=10)


@pytest.mark.parametrize("ignore_index", [-100, 0, 5, -1])
def test_ignore_index(torch, rng, blocks, ignore_index):
    """Any ignore_index, also one that is a valid class (tokens of class 0 ignored)."""
    h, W, b, y = make_problem(rng, ignore_index=ignore_index)
    got = fastxent.linear_cross_entropy(h, W, y, b, ignore_index=ignore_index, chunk_size=5,
                                        return_grad=True)
    assert_matches(got, torch_reference(torch, h, W, y, b, ignore_index=ignore_index),
                   np.float64, rel=10)


def test_loss_only_equals_loss_with_grad(rng, blocks):
    h, W, b, y = make_problem(rng)
    for reduction in ("mean", "sum", "none"):
        alone = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, chunk_size=6)
        with_grad, _ = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, chunk_size=6,
                                                     return_grad=True)
        assert_close(alone, with_grad, rtol=1e-14)
        assert_close(alone, ref.cross_entropy(h @ W.T + b, y, reduction=reduction), rtol=1e-12,
                     atol=1e-12)


def test_no_ignored_tokens(rng, blocks):
    """Every token kept: the chunks are views of hidden, no gathering."""
    h, W, b, y = make_problem(rng, ignore_frac=0.0)
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=7, return_grad=True)
    assert_matches(got, reference(h, W, y, b), np.float64, rel=10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored(torch, rng, reduction):
    """Every target ignored: a NaN mean (0 / 0, as PyTorch), 0 sum, zero losses and
    zero gradients."""
    h, W, b, _ = make_problem(rng)
    y = np.full(len(h), -100)
    loss, grads = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, return_grad=True)
    want_loss, want_grads = torch_reference(torch, h, W, y, b, reduction=reduction)
    assert_close(loss, want_loss, rtol=0)
    if reduction == "mean":
        assert np.isnan(loss)
    for g, w in zip(grads, want_grads):
        assert np.array_equal(g, w) and not g.any()


@pytest.mark.parametrize("shape", [(0, 5, 7), (4, 0, 7), (4, 5, 0)])
def test_empty_dimensions(torch, rng, shape):
    """No tokens, no hidden units (logits = bias), no classes (all targets ignored)."""
    N, H, V = shape
    h = rng.standard_normal((N, H))
    W = rng.standard_normal((V, H))
    b = rng.standard_normal(V)
    y = rng.integers(0, V, N) if V else np.full(N, -100)
    for reduction in ("mean", "sum", "none"):
        loss, grads = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction,
                                                    return_grad=True)
        want_loss, want_grads = torch_reference(torch, h, W, y, b, reduction=reduction)
        assert_close(loss, want_loss, rtol=1e-12, atol=1e-12)
        for g, w in zip(grads, want_grads):
            assert_close(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_float32(rng, blocks, reduction):
    """float32 inputs, float32 results, within float32 accuracy of the float64
    oracle computed from the same float32 values."""
    h, W, b, y = make_problem(rng, N=64, H=48, V=300, dtype=np.float32)
    loss, grads = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, chunk_size=10,
                                                return_grad=True)
    assert np.asarray(loss).dtype == np.float32
    assert_matches((loss, grads), reference(h, W, y, b, reduction=reduction), np.float32, rel=20)


def test_float16_is_computed_in_float32(rng):
    h, W, b, y = make_problem(rng, dtype=np.float16)
    loss, grads = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=5, return_grad=True)
    loss32, grads32 = fastxent.linear_cross_entropy(h.astype(np.float32), W.astype(np.float32), y,
                                                    b.astype(np.float32), chunk_size=5,
                                                    return_grad=True)
    assert loss.dtype == np.float16 and all(g.dtype == np.float16 for g in grads)
    assert loss == loss32.astype(np.float16)
    for g, g32 in zip(grads, grads32):
        assert np.array_equal(g, g32.astype(np.float16))


def test_equals_cross_entropy_of_the_logits(rng, blocks):
    """The same numbers as fastxent.cross_entropy on the materialized logits, to
    float32 accuracy (the same products and kernel, summed in other blocks)."""
    h, W, b, y = make_problem(rng, N=40, H=16, V=200, dtype=np.float32)
    logits = h @ W.T + b
    loss, G = fastxent.cross_entropy(logits, y, return_grad=True)
    got, (gh, gw, gb) = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=9, return_grad=True)
    assert_close(got, loss, rtol=1e-6)
    assert_grad_close(gh, G @ W, np.float32, rel=5)
    assert_grad_close(gw, G.T @ h, np.float32, rel=5)
    assert_grad_close(gb, G.sum(axis=0), np.float32, rel=5)


# ----------------------------------------------------------------------------
# z_loss and softcap (cross_entropy's kernels, issue 14 item 1)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [4, None])
def test_z_loss_matches_torch(torch, rng, reduction, chunk_size):
    h, W, b, y = make_problem(rng)
    got = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, z_loss=1e-2,
                                        chunk_size=chunk_size, return_grad=True)
    assert_matches(got, torch_reference(torch, h, W, y, b, reduction=reduction, z_loss=1e-2),
                   np.float64, rel=10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("chunk_size", [4, None])
def test_softcap_matches_torch(torch, rng, reduction, chunk_size):
    h, W, b, y = make_problem(rng)
    h *= 4                                           # logits large enough for the cap to bend
    got = fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, softcap=3.0,
                                        chunk_size=chunk_size, return_grad=True)
    assert_matches(got, torch_reference(torch, h, W, y, b, reduction=reduction, softcap=3.0),
                   np.float64, rel=10)


def test_z_loss_softcap_and_smoothing_together(torch, rng, blocks):
    h, W, b, y = make_problem(rng)
    opts = dict(label_smoothing=0.1, z_loss=1e-3, softcap=5.0)
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=6, return_grad=True, **opts)
    assert_matches(got, torch_reference(torch, h, W, y, b, **opts), np.float64, rel=10)


def test_z_loss_softcap_float32(torch, rng):
    h, W, b, y = make_problem(rng, N=64, H=48, V=300, dtype=np.float32)
    opts = dict(z_loss=1e-4, softcap=30.0)
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=10, return_grad=True, **opts)
    assert_matches(got, torch_reference(torch, h, W, y, b, **opts), np.float32, rel=20)


def test_z_loss_softcap_loss_only(torch, rng):
    h, W, b, y = make_problem(rng)
    opts = dict(z_loss=1e-2, softcap=3.0, reduction="none")
    got = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=4, **opts)
    assert_close(got, torch_reference(torch, h, W, y, b, **opts)[0], rtol=1e-11, atol=1e-12)


# ----------------------------------------------------------------------------
# Threads and determinism
# ----------------------------------------------------------------------------

def _bitwise_equal(a, b):
    la, ga = a
    lb, gb = b
    return np.array_equal(la, lb, equal_nan=True) and all(
        (x is None and y is None) or np.array_equal(x, y) for x, y in zip(ga, gb))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_same_bits_for_every_thread_count(rng, monkeypatch, dtype, reduction):
    """For a given chunk_size the answer does not depend on n_threads, although
    NumPy's BLAS alone (OpenBLAS float32 GEMM) changes its last bits with its
    thread count: each block of a matmul runs on one BLAS thread."""
    pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(_linear, "VOCAB_BLOCK_MIN", 64)
    monkeypatch.setattr(_linear, "VOCAB_BLOCK_BYTES", 0)
    monkeypatch.setattr(_linear, "HIDDEN_BLOCK", 32)
    monkeypatch.setattr(_linear, "STAGE_BYTES", 5 * 1000 * np.dtype(dtype).itemsize)
    h, W, b, y = make_problem(rng, N=150, H=100, V=1000, dtype=dtype)
    runs = [fastxent.linear_cross_entropy(h, W, y, b, reduction=reduction, chunk_size=64,
                                          return_grad=True, n_threads=n) for n in (1, 2, 3, 1)]
    for other in runs[1:]:
        assert _bitwise_equal(runs[0], other)


def test_chunk_size_changes_last_bits_only(rng):
    h, W, b, y = make_problem(rng, N=100, H=32, V=500, dtype=np.float32)
    a = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=7, return_grad=True)
    c = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=64, return_grad=True)
    assert_matches(a, c, np.float32, rel=20)


def test_blas_thread_limit_is_restored(rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    h, W, b, y = make_problem(rng)
    fastxent.linear_cross_entropy(h, W, y, b, return_grad=True, n_threads=2)
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before


def test_calls_from_many_python_threads(rng):
    """Concurrent calls give the single-threaded answers and leave no BLAS limit behind."""
    h, W, b, y = make_problem(rng, N=80, H=30, V=400, dtype=np.float32)
    want = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=16, return_grad=True, n_threads=1)
    results, errors = [None] * 6, []

    def work(i):
        try:
            results[i] = fastxent.linear_cross_entropy(h, W, y, b, chunk_size=16, return_grad=True,
                                                       n_threads=1 + i % 2)
        except Exception as e:       # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        assert _bitwise_equal(r, want)
    assert _blas_blocks._blas_state["users"] == 0 and _blas_blocks._blas_state["limiter"] is None


# ----------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------

def _peak_bytes(*args, **kwargs):
    """The most memory NumPy held during one call (tracemalloc traces NumPy's
    allocations), and the call's result."""
    fastxent.linear_cross_entropy(*args, **kwargs)        # warm-up: caches, imports
    tracemalloc.start()
    try:
        result = fastxent.linear_cross_entropy(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, result


def test_memory_is_bounded_by_the_chunk(rng, monkeypatch):
    """Extra memory beyond the outputs: one (chunk, V) buffer, a staging block
    and a few small blocks, whatever N; far below the materialized logits and
    their gradient."""
    monkeypatch.setattr(_linear, "STAGE_BYTES", 1 << 20)
    N, H, V = 1536, 16, 20000
    h, W, b, y = make_problem(rng, N=N, H=H, V=V, dtype=np.float32, ignore_frac=0.1)
    stage = (_linear.STAGE_BYTES // (V * 4)) * V * 4
    small = stage + 2 * _linear.VOCAB_BLOCK_BYTES + 2 * V * 8 + N * 8 + (1 << 20)
    for chunk in (48, 96):
        peak, (loss, grads) = _peak_bytes(h, W, y, b, chunk_size=chunk, return_grad=True,
                                          n_threads=2)
        extra = peak - sum(g.nbytes for g in grads)
        buffer = chunk * V * 4
        assert buffer + stage <= extra <= buffer + small, (chunk, extra)
        assert extra * 16 <= 2 * N * V * 4, (chunk, extra)      # logits and their gradient


def test_memory_loss_only_holds_one_buffer(rng):
    N, H, V = 1024, 16, 20000
    h, W, b, y = make_problem(rng, N=N, H=H, V=V, dtype=np.float32)
    peak, _ = _peak_bytes(h, W, y, b, chunk_size=32)
    assert 32 * V * 4 <= peak <= 32 * V * 4 + (1 << 20)


# ----------------------------------------------------------------------------
# Layouts and inputs
# ----------------------------------------------------------------------------

def test_layouts_and_inputs_unchanged(rng, blocks):
    """Fortran-ordered and strided inputs, byte-swapped ones, lists; nothing modified."""
    h, W, b, y = make_problem(rng)
    want = reference(h, W, y, b)
    copies = [a.copy() for a in (h, W, b, y)]
    cases = [
        (np.asfortranarray(h), np.asfortranarray(W), y, b),
        (np.repeat(h, 2, axis=0)[::2], np.repeat(W, 3, axis=1)[:, ::3], y.astype(np.int16), b),
        (h.astype(">f8"), W.astype(">f8"), y.astype(">i4"), b.astype(">f8")),
        (h.tolist(), W.tolist(), y.tolist(), b.tolist()),
    ]
    for args in cases:
        got = fastxent.linear_cross_entropy(*args, chunk_size=5, return_grad=True)
        assert_matches(got, want, np.float64, rel=10)
    for a, c in zip((h, W, b, y), copies):
        assert np.array_equal(a, c)


def test_torch_tensors(torch, rng):
    h, W, b, y = make_problem(rng)
    got = fastxent.linear_cross_entropy(torch.from_numpy(h), torch.from_numpy(W),
                                        torch.from_numpy(y), torch.from_numpy(b), return_grad=True)
    assert_matches(got, reference(h, W, y, b), np.float64, rel=10)
    with pytest.raises(TypeError, match="requires grad"):
        fastxent.linear_cross_entropy(torch.from_numpy(h).requires_grad_(), W, y)


# ----------------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("change, error, match", [
    (dict(hidden=np.zeros(4)), ValueError, r"hidden must be a 2-D array \(N, H\), got shape \(4,\)"),
    (dict(hidden=np.zeros((6, 4, 1))), ValueError, "hidden must be a 2-D"),
    (dict(hidden=np.zeros((6, 4), np.int64)), TypeError, "hidden must be a float16, float32 or float64"),
    (dict(weight=np.zeros((10, 5))), ValueError, r"weight must have shape \(V, 4\).*got \(10, 5\)"),
    (dict(weight=np.zeros(10)), ValueError, "weight must be a 2-D array"),
    (dict(weight=np.zeros((10, 4), np.float32)), TypeError, "weight must have hidden's dtype float64"),
    (dict(target=np.zeros(5, np.int64)), ValueError, r"target must have shape \(6,\).*got \(5,\)"),
    (dict(target=np.zeros((6, 1), np.int64)), ValueError, "target must have shape"),
    (dict(target=np.zeros(6)), TypeError, "target must be integer class indices"),
    (dict(target=np.array([0, 1, 2, 10, 4, 5])), ValueError, r"target value 10 at index 3 .*\[0, 10\)"),
    (dict(target=np.array([0, 1, -3, 1, 4, 5])), ValueError, "target value -3 at index 2"),
    (dict(target=np.array([0, 1, 2, 3, 4, 2**64 - 1], np.uint64)), ValueError, "target value"),
    (dict(bias=np.zeros(9)), ValueError, r"bias must have shape \(10,\)"),
    (dict(bias=np.array(["a"] * 10)), TypeError, "bias must be a real numeric array"),
    (dict(reduction="avg"), ValueError, "reduction must be one of"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing must be in"),
    (dict(label_smoothing="x"), TypeError, "label_smoothing"),
    (dict(ignore_index=1.5), TypeError, "ignore_index must be an integer"),
    (dict(chunk_size=0), ValueError, "chunk_size must be an integer >= 1"),
    (dict(chunk_size=2.0), TypeError, "chunk_size must be an integer"),
    (dict(chunk_size=True), TypeError, "chunk_size must be an integer"),
    (dict(return_grad="no"), TypeError, "return_grad must be True or False"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=1.5), TypeError, "n_threads"),
    (dict(z_loss=-1e-4), ValueError, "z_loss must be a finite number >= 0"),
    (dict(z_loss=float("nan")), ValueError, "z_loss"),
    (dict(z_loss=True), TypeError, "z_loss must be a number"),
    (dict(z_loss="big"), TypeError, "z_loss must be a number"),
    (dict(softcap=0.0), ValueError, "softcap must be a finite number > 0"),
    (dict(softcap=-30.0), ValueError, "softcap"),
    (dict(softcap=float("inf")), ValueError, "softcap"),
    (dict(softcap="x"), TypeError, "softcap must be a number"),
])
def test_bad_arguments(rng, change, error, match):
    h, W, b, y = make_problem(rng, N=6, H=4, V=10, ignore_frac=0.0)
    arrays = dict(hidden=h, weight=W, target=y, bias=b)
    options = dict(return_grad=True)
    for k, v in change.items():
        (arrays if k in arrays else options)[k] = v
    with pytest.raises(error, match=match):
        fastxent.linear_cross_entropy(arrays["hidden"], arrays["weight"], arrays["target"],
                                      arrays["bias"], **options)


# ----------------------------------------------------------------------------
# The W6 workload of the bench and asv
# ----------------------------------------------------------------------------

def test_w6_workload_three_ways_agree():
    from fastxent import _workloads
    wl = _workloads.get_linear("W6")
    hidden, weight, target = wl.make(tiny=True)
    assert (hidden.shape, weight.shape, target.shape) == ((16, 32), (300, 32), (16,))
    again = wl.make(tiny=True)
    assert all(np.array_equal(a, b) for a, b in zip((hidden, weight, target), again))
    assert _workloads.linear_disagreement(hidden, weight, target, n_threads=2) is None
    impls = [i for i in _workloads.LINEAR_IMPLS if i != "torch" or _torch_available()]
    results = [_workloads.linear_runner(i, hidden, weight, target, n_threads=1)() for i in impls]
    for loss, (gh, gw) in results[1:]:
        assert_close(loss, results[0][0], rtol=1e-5)
        assert_grad_close(gh, results[0][1][0], np.float32, rel=5)
        assert_grad_close(gw, results[0][1][1], np.float32, rel=5)


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
