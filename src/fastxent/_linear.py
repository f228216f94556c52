"""linear_cross_entropy: the cross-entropy of ``hidden @ weight.T + bias`` without
ever holding the ``(N, V)`` logits.

Design
------
A language model's output layer multiplies hidden states ``(N, H)`` by an
embedding ``(V, H)``, V = 32k to 256k: the logits of 8192 tokens at V = 128256 are
4.2 GB in float32, and their gradient as much again.  The gradient with respect to
the weight, ``G.T @ hidden`` (G the gradient of the logits), needs every token's
final log-sum-exp before any column of G exists.  Two published organisations get
there in bounded memory:

- Apple's cut-cross-entropy sweeps the vocabulary in blocks with an online
  log-sum-exp to get each token's lse, then recomputes every block's logits in the
  backward pass to form G block by block: four matmuls instead of three (the
  logits twice); its speed comes from a GPU kernel that never writes a logit, and
  from skipping blocks whose softmax is below a threshold (an approximation).
- Liger-Kernel's fused linear cross-entropy cuts the tokens into chunks whose
  logits are full vocabulary rows: a cross-entropy kernel finishes each row (loss
  and gradient) at once, the chunk's two gradient matmuls follow, and the logits
  are dropped.  Three matmuls, as in the materialized computation.

On a CPU the matmuls are nearly all the time, so the second scheme is the one for
fastxent: the same three matmuls as materializing (through NumPy's BLAS, on
preallocated blocks), and each row's loss and gradient from fastxent's own fused
kernel, the public ``cross_entropy`` with ``out=``, so the formula (label smoothing,
ignored rows, z_loss and softcap) stays in one place.  Per chunk of ``chunk_size`` tokens::

    L = hidden[chunk] @ W.T + bias              # a (chunk, V) buffer, reused
    L = cross_entropy gradient of L             # a few rows at a time, through a staging block
    grad_hidden[chunk] = L @ W
    grad_weight += L.T @ hidden[chunk];  grad_bias += L.sum(0)

``cross_entropy``'s ``out`` may not overlap its input, so the gradient of a few
rows (a staging block of about 8 MB) is written there and copied back over their
logits, which are no longer needed: one (chunk, V) buffer instead of two, hence
twice the tokens per chunk in the same memory.  That matters: each chunk reads
the whole weight twice (its logits, then grad_hidden) and BLAS packs it each
time, so the matmuls lose efficiency as the chunk shrinks (at W6, N = H = 1024,
V = 128256, 130 tokens a chunk cost about 8% more CPU time than materializing;
260 about as much).  A loss-only call uses the same chunks without the staging.
Vocabulary blocks with an online log-sum-exp (the first scheme's forward) would
serve a loss-only call whose single rows do not fit in memory; one row is 0.5 MB
at V = 128256, so that is not built: it would put a second copy of the loss
formula in Python.

The global "mean": the denominator (the number of non-ignored targets) is counted
first, and every chunk calls ``cross_entropy(reduction="sum",
grad_output=1/denominator)``, so each chunk's gradient is exactly that of the
global mean.  Ignored tokens are dropped before the matmuls (as cut-cross-entropy
does): they cost nothing and their loss and gradient rows are exactly 0, which is
PyTorch's answer too, except where an ignored token's hidden state holds NaN or
inf (PyTorch spreads it into grad_weight through 0 * NaN).

grad_weight is accumulated over chunks in blocks of vocabulary rows through a
scratch of about 1 MB that stays in cache (NumPy's matmul has no ``C += A @ B``);
the first chunk writes it directly.  grad_bias accumulates in float64, as
fastxent's reductions do.

Threads and determinism
-----------------------
OpenBLAS's float32 GEMM gives different last bits at different thread counts
(measured with NumPy's OpenBLAS 0.3.31, Haswell kernels: 0.5 to 90% of the
entries of a product differ between 1 and 2 threads, depending on the shape;
float64 agreed bit for bit, as did repeats at one thread count).  So every matmul
of a chunk is cut into blocks that depend on the shapes only (vocabulary blocks
for the logits and grad_weight, blocks of hidden units for grad_hidden), each
block is one BLAS call on one thread, and ``n_threads`` Python threads run the
blocks (NumPy releases the GIL inside BLAS); BLAS is held to one thread for the
duration of the call through threadpoolctl (``_blas_blocks.py``).  The results
then depend on ``chunk_size`` (and the shapes) but not on ``n_threads``.  Without
threadpoolctl, or where it finds no BLAS it can limit, the blocks run one after
another in the calling thread with BLAS on its own threads: the results are then
repeatable for a given BLAS thread count only.
"""
from __future__ import annotations

import contextlib
import queue
from typing import TYPE_CHECKING, Literal, Optional, Tuple, overload

import numpy as np

from . import _args, _blas_blocks
from ._kernels import resolve_threads
from ._multiclass import cross_entropy

if TYPE_CHECKING:
    from ._typing import Array, ArrayInput, Loss

    LinearGrads = Tuple[Array, Array, Optional[Array]]

# Bytes of the (chunk, V) buffer when chunk_size is None.
CHUNK_BUDGET_BYTES = 128 << 20
# Bytes of the staging block for the gradient of a few rows (at least one row).
STAGE_BYTES = 8 << 20
# A vocabulary block is about this many bytes of weight rows, and at least
# VOCAB_BLOCK_MIN rows.  Its grad_weight scratch is as large: small enough to stay
# in a core's L2 cache between the matmul that writes it and the addition that
# reads it (an 8 MB scratch made grad_weight's accumulation 12% slower at W6).
VOCAB_BLOCK_BYTES = 1 << 20
VOCAB_BLOCK_MIN = 64
# grad_hidden = G @ W is computed in blocks of this many hidden units.
HIDDEN_BLOCK = 512


# ----------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------

def _matrix(x, name: str, what: str) -> np.ndarray:
    a = _args.asarray(x, name)
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array {what}, got shape {a.shape}")
    return a


def _for_blas(a: np.ndarray, dtype) -> np.ndarray:
    """``a`` in native ``dtype``, copied only where BLAS could not read it in place."""
    a = np.asarray(a, dtype=dtype)
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        a = np.ascontiguousarray(a)
    return a


def _check_chunk_size(chunk_size):
    if chunk_size is None:
        return None
    c = _args.check_int(chunk_size, "chunk_size")
    if c < 1:
        raise ValueError(f"chunk_size must be an integer >= 1 or None, got {c}")
    return c


def _targets(target, N: int, V: int, hidden_shape: tuple, ignore_index: int) -> np.ndarray:
    t = _args.asarray(target, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"target must be integer class indices, got dtype {t.dtype}")
    if t.shape != (N,):
        raise ValueError(f"target must have shape ({N},), one class index per row of hidden "
                         f"{hidden_shape}, got {t.shape}")
    y = _args.as_index_target(t, (N,), hidden_shape)
    bad = (y != ignore_index) & ((y < 0) | (y >= V))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"target value {int(y[i])} at index {i} is not a class index in "
                         f"[0, {V}) (the rows of weight) nor ignore_index ({ignore_index})")
    return y


# ----------------------------------------------------------------------------
# The computation
# ----------------------------------------------------------------------------

class _Plan:
    """Buffers and blocks of one call; the steps of one chunk are its methods."""

    def __init__(self, h, W, b, y, kept, n_kept, chunk, return_grad, n_workers):
        N, H = h.shape
        V = W.shape[0]
        dt = h.dtype
        self.h, self.W, self.b, self.y, self.kept = h, W, b, y, kept
        self.n_kept, self.chunk, self.return_grad = n_kept, chunk, return_grad
        vb = max(VOCAB_BLOCK_MIN, VOCAB_BLOCK_BYTES // (max(H, 1) * dt.itemsize))
        self.vblocks = _blas_blocks.slices(V, vb)
        self.hblocks = _blas_blocks.slices(H, HIDDEN_BLOCK)
        c = min(chunk, n_kept)
        self.logits = np.empty((c, V), dtype=dt)
        self.first = True
        if kept is not None:                          # gathered rows of the kept tokens
            self.hbuf = np.empty((c, H), dtype=dt)
        if not return_grad:
            return
        self.stage = np.empty((max(1, min(c, STAGE_BYTES // max(V * dt.itemsize, 1))), V), dtype=dt)
        if kept is not None:
            self.ghbuf = np.empty((c, H), dtype=dt)
        self.grad_hidden = (np.empty if kept is None else np.zeros)((N, H), dtype=dt)
        self.grad_weight = np.zeros((V, H), dtype=dt)
        self.grad_bias64 = None if b is None else np.zeros(V, dtype=np.float64)
        # one grad_weight scratch (and grad_bias scratch) per worker
        self.scratch = queue.SimpleQueue()
        for _ in range(n_workers):
            self.scratch.put((np.empty((min(vb, V), H), dtype=dt),
                              None if b is None else np.empty(min(vb, V), dtype=np.float64)))

    def rows(self, start: int, stop: int):
        """The chunk's rows of hidden (a view, or gathered) and its targets and positions."""
        if self.kept is None:
            pos = slice(start, stop)
            return self.h[pos], self.y[pos], pos
        pos = self.kept[start:stop]
        h_c = np.take(self.h, pos, axis=0, out=self.hbuf[:stop - start])
        return h_c, self.y[pos], pos

    def logits_tasks(self, h_c, L):
        def block(vb):
            out = L[:, vb]
            np.matmul(h_c, self.W[vb].T, out=out)
            if self.b is not None:
                out += self.b[vb]
        return [(block, vb) for vb in self.vblocks]

    def grad_tasks(self, h_c, G, gh_c):
        first = self.first
        gw, gb = self.grad_weight, self.grad_bias64

        def weight_block(vb):
            g = G[:, vb]
            if first:
                np.matmul(g.T, h_c, out=gw[vb])
                if gb is not None:
                    np.sum(g, axis=0, dtype=np.float64, out=gb[vb])
                return
            tmp, tmp_b = self.scratch.get()
            try:
                t = tmp[:vb.stop - vb.start]
                np.matmul(g.T, h_c, out=t)
                np.add(gw[vb], t, out=gw[vb])
                if gb is not None:
                    tb = tmp_b[:vb.stop - vb.start]
                    np.sum(g, axis=0, dtype=np.float64, out=tb)
                    np.add(gb[vb], tb, out=gb[vb])
            finally:
                self.scratch.put((tmp, tmp_b))

        def hidden_block(hb):
            np.matmul(G, self.W[:, hb], out=gh_c[:, hb])

        return [(hidden_block, hb) for hb in self.hblocks] + [(weight_block, vb) for vb in self.vblocks]


def _logits_to_grad(plan: _Plan, ce, L, y_c, reduction: str):
    """Overwrites the logits L with their gradient, a staging block at a time;
    returns the float64 sum of the losses, or the per-token losses."""
    s = len(plan.stage)
    parts = []
    for r0 in range(0, len(L), s):
        r1 = min(r0 + s, len(L))
        g = plan.stage[:r1 - r0]
        loss, _ = ce(L[r0:r1], y_c[r0:r1], reduction=reduction, return_grad=True, out=g)
        np.copyto(L[r0:r1], g)
        parts.append(loss)
    return np.concatenate(parts) if reduction == "none" else sum(float(p) for p in parts)


def _run(plan: _Plan, blocks: _blas_blocks.Blocks, ce, reduction: str, N: int, dtype):
    """The chunk loop; returns the float64 total of the losses, or the per-token losses."""
    total = 0.0
    losses = np.zeros(N, dtype=dtype) if reduction == "none" else None
    ce_reduction = "none" if reduction == "none" else "sum"
    for start in range(0, plan.n_kept, plan.chunk):
        stop = min(start + plan.chunk, plan.n_kept)
        m = stop - start
        h_c, y_c, pos = plan.rows(start, stop)
        L = plan.logits[:m]
        blocks.run(plan.logits_tasks(h_c, L))
        if plan.return_grad:
            loss = _logits_to_grad(plan, ce, L, y_c, ce_reduction)     # L holds G from here
            gh_c = plan.grad_hidden[pos] if plan.kept is None else plan.ghbuf[:m]
            blocks.run(plan.grad_tasks(h_c, L, gh_c))
            if plan.kept is not None:
                plan.grad_hidden[pos] = gh_c
            plan.first = False
        else:
            loss = ce(L, y_c, reduction=ce_reduction)
        if losses is not None:
            losses[pos] = loss
        else:
            total += float(loss)
    return losses if losses is not None else total


@overload
def linear_cross_entropy(hidden: ArrayInput, weight: ArrayInput, target: ArrayInput,
                         bias: ArrayInput | None = ..., *, ignore_index: int = ...,
                         reduction: str = ..., label_smoothing: float = ...,
                         z_loss: float = ..., softcap: float | None = ...,
                         chunk_size: int | None = ..., return_grad: Literal[False] = ...,
                         n_threads: int | None = ...) -> Loss: ...
@overload
def linear_cross_entropy(hidden: ArrayInput, weight: ArrayInput, target: ArrayInput,
                         bias: ArrayInput | None = ..., *, ignore_index: int = ...,
                         reduction: str = ..., label_smoothing: float = ...,
                         z_loss: float = ..., softcap: float | None = ...,
                         chunk_size: int | None = ..., return_grad: Literal[True],
                         n_threads: int | None = ...) -> tuple[Loss, LinearGrads]: ...
@overload
def linear_cross_entropy(hidden: ArrayInput, weight: ArrayInput, target: ArrayInput,
                         bias: ArrayInput | None = ..., *, ignore_index: int = ...,
                         reduction: str = ..., label_smoothing: float = ...,
                         z_loss: float = ..., softcap: float | None = ...,
                         chunk_size: int | None = ..., return_grad: bool = ...,
                         n_threads: int | None = ...) -> Loss | tuple[Loss, LinearGrads]: ...
def linear_cross_entropy(hidden: ArrayInput, weight: ArrayInput, target: ArrayInput,
                         bias: ArrayInput | None = None, *, ignore_index: int = -100,
                         reduction: str = "mean", label_smoothing: float = 0.0,
                         z_loss: float = 0.0, softcap: float | None = None,
                         chunk_size: int | None = None, return_grad: bool = False,
                         n_threads: int | None = None) -> Loss | tuple[Loss, LinearGrads]:
    """Cross-entropy of the logits ``hidden @ weight.T + bias``, without ever holding them.

    The loss equals ``cross_entropy(hidden @ weight.T + bias, target, ...)``, and
    PyTorch's ``F.cross_entropy(F.linear(hidden, weight, bias), target, ...)``,
    but the ``(N, V)`` logits are computed ``chunk_size`` tokens at a time
    through NumPy's BLAS, turned into their losses (and gradient) by
    fastxent's fused kernel, and dropped.  Extra memory is one
    ``(chunk_size, V)`` buffer and blocks of a few MB, whatever N.

    Parameters
    ----------
    hidden : array_like, shape (N, H)
        Hidden states (float32 or float64; float16 is computed in float32 from
        float32 copies of ``hidden`` and ``weight``).
    weight : array_like, shape (V, H)
        The output embedding, one row per class, of ``hidden``'s dtype.
    target : array_like of int, shape (N,)
        Class indices in ``[0, V)`` or ``ignore_index``, any integer dtype.
    bias : array_like, shape (V,), optional
        Added to every token's logits (default: none).  Any real dtype,
        converted to ``hidden``'s.
    ignore_index : int, default -100
        Targets equal to it add nothing and cost nothing: their rows are
        dropped before the matmuls, and their loss and gradient rows are 0.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-token losses, shape ``(N,)``.  "sum": their sum.
        "mean": their sum divided by the number of targets that are not
        ``ignore_index`` (NaN when there are none, as PyTorch).
    label_smoothing : float, default 0.0
        ``eps`` in ``[0, 1]``: each target is mixed with the uniform
        distribution over the V classes, ``(1 - eps) * one_hot(target) + eps / V``,
        as in :func:`cross_entropy`.
    z_loss : float, default 0.0
        At least 0: adds ``z_loss * lse**2`` to each non-ignored token's loss
        (PaLM's z-loss; ``lse`` the log-sum-exp of its logits, soft-capped
        where ``softcap`` is given), as :func:`cross_entropy`'s ``z_loss``;
        "mean" divides the sum by the number of non-ignored tokens.
    softcap : float, optional
        Above 0: replaces each logit ``x`` by ``softcap * tanh(x / softcap)``
        before the softmax (Gemma 2), as :func:`cross_entropy`'s ``softcap``.
        Default: no capping.
    chunk_size : int, optional
        Tokens per chunk, at least 1.  Default: as many as fit in a 128 MiB
        buffer (261 at V = 128256 in float32).  Results depend on it in the
        last bits (the matmuls are cut differently), never on ``n_threads``.
    return_grad : bool, default False
        Also return ``(grad_hidden, grad_weight, grad_bias)``, the gradients of
        the returned loss (of ``sum(loss)`` for "none").
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`): for the
        cross-entropy kernel, and for the blocks of the matmuls, which run on one
        BLAS thread each: while the call runs, BLAS is held to one thread in the
        whole process (that needs threadpoolctl; without it BLAS uses its own
        thread count, and the blocks run one after another).

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``hidden``'s dtype: a NumPy scalar for "mean" and "sum"
        (accumulated in float64), an ``(N,)`` array for "none".
    grads : tuple of (ndarray, ndarray, ndarray or None)
        Only with ``return_grad=True``: ``(grad_hidden, grad_weight,
        grad_bias)``, the derivatives of ``loss`` (of ``sum(loss)`` for
        "none") with respect to ``hidden`` ``(N, H)``, ``weight`` ``(V, H)``
        and ``bias`` ``(V,)``, in ``hidden``'s dtype; ``grad_bias`` is None
        without ``bias``.

    Raises
    ------
    TypeError
        If ``hidden`` or ``weight`` is not a float16, float32 or float64 array,
        or their dtypes differ; if ``target`` is not integer; if an option has
        the wrong type (a bool or a string for a number, a number for a bool).
    ValueError
        If a shape does not fit (``hidden`` or ``weight`` not 2-D, ``weight``
        not ``(V, H)``, ``target`` not ``(N,)``, ``bias`` not ``(V,)``); if a
        target is outside ``[0, V)`` and is not ``ignore_index``; if
        ``reduction`` is unknown, ``label_smoothing`` outside ``[0, 1]``,
        ``z_loss`` negative or not finite, ``softcap`` not above 0 or not
        finite, ``chunk_size`` or ``n_threads`` below 1.

    See Also
    --------
    cross_entropy : The same loss from logits already in memory.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> rng = np.random.default_rng(0)
    >>> hidden = rng.standard_normal((6, 4))
    >>> weight = rng.standard_normal((10, 4))
    >>> target = np.array([1, 3, 5, 7, 9, -100])
    >>> loss, (gh, gw, gb) = fastxent.linear_cross_entropy(hidden, weight, target,
    ...                                                    chunk_size=4, return_grad=True)
    >>> bool(np.isclose(loss, fastxent.cross_entropy(hidden @ weight.T, target)))
    True
    >>> gh.shape, gw.shape, gb is None
    ((6, 4), (10, 4), True)

    With a bias and the per-token losses (the ignored token's is 0):

    >>> bias = np.zeros(10)
    >>> losses = fastxent.linear_cross_entropy(hidden, weight, target, bias, reduction="none")
    >>> losses.shape, float(losses[-1])
    ((6,), 0.0)

    A language model's recipe, soft-capped logits and a z-loss, is the same
    as :func:`cross_entropy` with those options on the logits:

    >>> opts = dict(z_loss=1e-4, softcap=30.0)
    >>> loss = fastxent.linear_cross_entropy(hidden, weight, target, **opts)
    >>> bool(np.isclose(loss, fastxent.cross_entropy(hidden @ weight.T, target, **opts)))
    True
    """
    h = _matrix(hidden, "hidden", "(N, H)")
    W = _matrix(weight, "weight", "(V, H)")
    if W.dtype.newbyteorder("=") != h.dtype.newbyteorder("="):
        raise TypeError(f"weight must have hidden's dtype {h.dtype}, got {W.dtype}")
    N, H = h.shape
    V = W.shape[0]
    if W.shape[1] != H:
        raise ValueError(f"weight must have shape (V, {H}), one row of H = {H} per class "
                         f"for hidden {h.shape}, got {W.shape}")
    reduction = _args.check_reduction(reduction)
    eps = _args.check_label_smoothing(label_smoothing)
    ignore_index = _args.check_int64(ignore_index, "ignore_index")
    z = _args.check_z_loss(z_loss)
    cap = _args.softcap_option(softcap)
    chunk_size = _check_chunk_size(chunk_size)
    return_grad = _args.check_bool(return_grad, "return_grad")
    nt = resolve_threads(_args.threads_option(n_threads))
    y = _targets(target, N, V, h.shape, ignore_index)

    result_dtype = h.dtype.newbyteorder("=")
    dt = np.dtype(np.float32) if result_dtype.itemsize == 2 else result_dtype
    h, W = _for_blas(h, dt), _for_blas(W, dt)
    b = None
    if bias is not None:
        b = _args.as_real_array(_args.real_array(bias, "bias"), dt)
        if b.shape != (V,):
            raise ValueError(f"bias must have shape ({V},), one per row of weight, got {b.shape}")

    keep = y != ignore_index
    n_kept = int(np.count_nonzero(keep))
    kept = None if n_kept == N else np.flatnonzero(keep)
    if chunk_size is None:
        chunk_size = max(1, CHUNK_BUDGET_BYTES // (max(V, 1) * dt.itemsize))
    chunk = max(1, min(chunk_size, n_kept))

    controller = _blas_blocks.controller()
    n_workers = nt if controller is not None else 1
    grad_output = (float(np.float64(1.0) / n_kept) if reduction == "mean" and n_kept else None)

    def ce(L, y_c, **kw):
        if kw.get("return_grad") and grad_output is not None:
            kw["grad_output"] = grad_output
        return cross_entropy(L, y_c, ignore_index=ignore_index, label_smoothing=eps, z_loss=z,
                             softcap=cap, n_threads=nt, **kw)

    plan = _Plan(h, W, b, y, kept, n_kept, chunk, return_grad, n_workers)
    blocks = _blas_blocks.Blocks(min(n_workers, max(len(plan.vblocks) + len(plan.hblocks), 1)))
    try:
        with (_blas_blocks.single_threaded_blas(controller) if controller is not None
              else contextlib.nullcontext()):
            res = _run(plan, blocks, ce, reduction, N, dt)
    finally:
        blocks.close()

    if reduction == "none":
        loss = _args.as_result(res, result_dtype)
    else:
        loss = _args.as_result(_args.reduce_loss(res, float(n_kept), reduction), result_dtype)
    if not return_grad:
        return loss
    grad_bias = None if plan.grad_bias64 is None else _args.as_result(plan.grad_bias64, result_dtype)
    return loss, (_args.as_result(plan.grad_hidden, result_dtype),
                  _args.as_result(plan.grad_weight, result_dtype), grad_bias)
