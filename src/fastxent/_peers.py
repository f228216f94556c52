"""The peers of ``python -m fastxent bench``: PyTorch, JAX and scikit-learn.

For an op of a workload (``_workloads.OPS``), ``peer_call(peer, op, wl, x,
target, n_threads)`` gives a zero-argument callable that computes what fastxent
computes, written the way that library's users write it, or None where the
library has no such call:

- torch: ``torch.nn.functional.cross_entropy`` /
  ``binary_cross_entropy_with_logits`` (forward; with the gradient, forward and
  ``backward()``), ``torch.logsumexp``; for the family's ops, PyTorch's
  distillation recipe (``kl_div`` of two ``log_softmax``) and
  ``torchvision.ops.sigmoid_focal_loss`` (its formula in torch where
  torchvision is not installed).  No second order (autograd's Hessian is
  not what a user of this would call).
- jax: ``jax.jit`` of optax's ``softmax_cross_entropy_with_integer_labels`` /
  ``sigmoid_binary_cross_entropy`` (mean), of ``jax.value_and_grad`` of it, of
  ``jax.nn.logsumexp``, and the Hessian-vector product as ``jax.jvp`` of
  ``jax.grad``; each call waits for its result.  The family's ops: optax's
  ``kl_divergence`` of ``jax.nn.log_softmax`` against ``jax.nn.softmax``
  (distillation) and ``sigmoid_focal_loss``.
- sklearn: ``sklearn._loss``'s ``HalfMultinomialLoss`` / ``HalfBinomialLoss``:
  ``loss`` (then its mean), ``loss_gradient`` and ``gradient_hessian``, as they
  are: per-sample losses and an unscaled gradient (scikit-learn's estimators
  fold the 1/N into their own sums).  ``gradient_hessian`` returns no loss.
  No logsumexp and no Hessian-vector product.  Its multi-class loss takes
  ``(n_samples, n_classes)``: W5 (class axis 1 of 4) is fed image by image as
  strided ``(H*W, C)`` views, with no copy.

Threads (see ``peer_threads``): PyTorch runs at ``torch.set_num_threads(n)``,
set around its timing and restored after.  PyTorch's Linux wheel ships
``libgomp.so.1``; once torch is imported, fastxent's kernels resolve to that
same library, so this also sets OpenMP's default for the calling thread (the
bench passes fastxent an explicit ``n_threads``, which does not read it).
scikit-learn takes ``n_threads=`` on every call (its wheel vendors its own
libgomp).  JAX's CPU thread pool is sized once, when its backend starts, from
the CPUs the process may run on, and nothing changes it afterwards; so JAX runs
in a child process per thread count (``_bench_jax.py``) whose CPU affinity is
set to ``n`` CPUs before ``jax`` is imported.
"""
from __future__ import annotations

import contextlib
import functools
import importlib

import numpy as np

from ._workloads import ADAPTER_OPS, FAMILY_OPTIONS, OPS, teacher_logits, torch_runner

PEERS = ("torch", "jax", "sklearn")
# What must import for each peer's column.
MODULES = {"torch": ("torch",), "jax": ("jax", "optax"), "sklearn": ("sklearn._loss.loss",)}


@functools.lru_cache(maxsize=None)
def importable(peer: str) -> bool:
    """Whether the peer's libraries import (in this process)."""
    for name in MODULES[peer]:
        try:
            importlib.import_module(name)
        except ImportError:
            return False
    return True


def version(peer: str) -> str:
    module = {"torch": "torch", "jax": "jax", "sklearn": "sklearn"}[peer]
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def parse_peers(text: str) -> tuple:
    """``--peers``: a comma-separated subset of PEERS, or "none"."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in PEERS]
    if unknown or not names:
        raise ValueError(f"--peers takes some of {', '.join(PEERS)} separated by commas, "
                         f"or none; got {text!r}")
    return tuple(p for p in PEERS if p in names)


@contextlib.contextmanager
def peer_threads(peer: str, n: int):
    """Runs the body with the peer at ``n`` threads where the peer has a
    process-wide setting (PyTorch), restoring it after."""
    if peer != "torch":
        yield
        return
    import torch  # optional peer
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def peer_call(peer, op, wl, x, target, *, n_threads=1, v=None):
    """A zero-argument callable running ``op`` of workload ``wl`` with the peer
    (in this process: torch, sklearn, or jax inside its child), or None where
    the peer has no such call."""
    function, grad, hess = OPS[op]
    function = function or wl.loss_function
    if peer == "torch":
        if hess or function == "cross_entropy_hvp":
            return None
        return torch_runner(function, wl, x, target, return_grad=grad)
    if op in ADAPTER_OPS:                                  # fastxent.torch against torch only
        return None
    if peer == "sklearn":
        return _sklearn_call(function, grad, hess, wl, x, target, n_threads)
    if peer == "jax":
        return _jax_call(function, grad, hess, wl, x, target, v)
    raise ValueError(f"peer must be one of {', '.join(PEERS)}, got {peer!r}")


# ----------------------------------------------------------------------------
# scikit-learn
# ----------------------------------------------------------------------------

def _sklearn_split(wl, a):
    """Views of an input-shaped array ``a`` as sklearn._loss takes them: the
    array itself, or for (N, C, d1, ...) a strided (d1*..., C) view per image."""
    if wl.binary or a.ndim == 2:
        return [a]
    C = a.shape[wl.axis]
    return [a[i].reshape(C, -1).T for i in range(a.shape[0])]


def _sklearn_targets(wl, x, target):
    """The targets, as floats of ``x``'s dtype, one array per view (made once)."""
    if wl.binary or x.ndim == 2:
        return [target.astype(x.dtype)]
    return [target[i].reshape(-1).astype(x.dtype) for i in range(x.shape[0])]


def _sklearn_call(function, grad, hess, wl, x, target, n_threads):
    if function not in ("cross_entropy", "binary_cross_entropy_with_logits"):
        return None
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
    lo = HalfBinomialLoss() if wl.binary else HalfMultinomialLoss(n_classes=x.shape[wl.axis])
    ys, raws = _sklearn_targets(wl, x, target), _sklearn_split(wl, x)
    count = sum(y.size for y in ys)

    if hess:
        def gradient_hessian():
            g, h = np.empty_like(x), np.empty_like(x)
            for y, r, gv, hv in zip(ys, raws, _sklearn_split(wl, g), _sklearn_split(wl, h)):
                lo.gradient_hessian(y, r, gradient_out=gv, hessian_out=hv, n_threads=n_threads)
            return None, g, h
        return gradient_hessian
    if grad:
        def loss_gradient():
            g = np.empty_like(x)
            total = 0.0
            for y, r, gv in zip(ys, raws, _sklearn_split(wl, g)):
                loss, _ = lo.loss_gradient(y, r, gradient_out=gv, n_threads=n_threads)
                total += float(loss.sum())
            return total / count, g
        return loss_gradient

    def loss():
        return sum(float(lo.loss(y, r, n_threads=n_threads).sum()) for y, r in zip(ys, raws)) / count
    return loss


# Where sklearn's results differ from fastxent's by convention, not by error:
# the gradient and Hessian are not divided by the number of samples.
def sklearn_scale(wl, x) -> float:
    return float(x.size // (1 if wl.binary else x.shape[wl.axis]))


# ----------------------------------------------------------------------------
# JAX (called inside _bench_jax's child process)
# ----------------------------------------------------------------------------

def _jax_call(function, grad, hess, wl, x, target, v):
    if hess:
        return None
    import jax  # optional peer
    import jax.numpy as jnp
    import optax

    xj = jnp.asarray(x)
    if function == "logsumexp":
        f = jax.jit(lambda a: jax.nn.logsumexp(a, axis=wl.axis))
        return lambda: jax.block_until_ready(f(xj))
    tj = jnp.asarray(target)
    if function == "distillation_loss":                    # batchmean, as the bench's runner
        T = FAMILY_OPTIONS[function]["temperature"]
        p_t = jax.nn.softmax(jnp.asarray(teacher_logits(x)) / T, axis=wl.axis)

        def loss(a):
            lp_s = jax.nn.log_softmax(a / T, axis=wl.axis)
            return T * T * optax.kl_divergence(lp_s, p_t, axis=wl.axis).sum() / a.shape[0]
    elif function == "sigmoid_focal_loss":
        def loss(a):
            return optax.sigmoid_focal_loss(a, tj, **FAMILY_OPTIONS[function]).mean()
    elif wl.binary:
        def loss(a):
            return optax.sigmoid_binary_cross_entropy(a, tj).mean()
    else:
        def loss(a):
            return optax.softmax_cross_entropy_with_integer_labels(a, tj, axis=wl.axis).mean()
    if function == "cross_entropy_hvp":
        vj = jnp.asarray(v)
        f = jax.jit(lambda a, u: jax.jvp(jax.grad(loss), (a,), (u,))[1])
        return lambda: jax.block_until_ready(f(xj, vj))
    f = jax.jit(jax.value_and_grad(loss) if grad else loss)
    return lambda: jax.block_until_ready(f(xj))
