"""The benchmark workloads, defined once.

``python -m fastxent bench`` times them, ``asv_bench/benchmarks/`` parametrizes
over them and ``tests/test_workloads.py`` checks fastxent against its NumPy twin
(``_baseline.py``) on their small versions.  A workload is a shape, the dtypes it
is run in and the loss it stands for; its logits are ``3 * standard_normal`` from a
fixed seed, so every run of every tool sees the same numbers.

The calls are built here too, as zero-argument callables, so that the bench
command, asv and the tests time and check exactly the same thing:
``runner("fastxent" | "numpy", function, ...)`` and ``torch_runner(...)`` for the
PyTorch peer.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from . import _baseline

# The public functions, by the arguments they take.
LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
          "distillation_loss", "sigmoid_focal_loss")
NORMALIZERS = ("logsumexp", "softmax", "log_softmax")
# What each op of a workload calls: the function (None: the workload's loss
# function), whether the gradient is returned and whether the Hessian is.
OPS = {
    "loss": (None, False, False),
    "loss+grad": (None, True, False),
    "logsumexp": ("logsumexp", False, False),
    # fastxent.torch's loss on tensors, forward and backward (autograd), against
    # torch.nn.functional's; the NumPy baseline has no row of its own here
    "torch fwd+bwd": (None, True, False),
    # second order (SPEC.md version 0.2): timed where fastxent has them
    "loss+grad+hess": (None, True, True),
    "hvp": ("cross_entropy_hvp", False, False),
    # more of the family (SPEC.md): W1 as a student's logits, W4 as a detector's
    "distill": ("distillation_loss", False, False),
    "distill+grad": ("distillation_loss", True, False),
    "focal": ("sigmoid_focal_loss", False, False),
    "focal+grad": ("sigmoid_focal_loss", True, False),
}
# The options the bench runs them with (the teacher's logits: see teacher_logits):
# a usual distillation temperature, torchvision's defaults.
FAMILY_OPTIONS = {"distillation_loss": {"temperature": 2.0},
                  "sigmoid_focal_loss": {"alpha": 0.25, "gamma": 2.0}}
# The ops that run through an adapter, and the implementation they run.
ADAPTER_OPS = {"torch fwd+bwd": "fastxent.torch"}
SECOND_ORDER_OPS = ("loss+grad+hess", "hvp")


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    shape: tuple
    tiny_shape: tuple            # the same structure, small: for tests and --tiny
    dtypes: tuple = ("float32",)
    binary: bool = False         # elementwise binary loss instead of a class axis
    quick: bool = True           # part of `bench --quick`
    adapters: bool = False       # also time the adapter ops (ADAPTER_OPS)
    second_order: bool = False   # also time SECOND_ORDER_OPS (where fastxent has them)
    family: tuple = ()           # also time these ops of the family (OPS)

    axis = 1                     # the class axis of a multi-class workload

    @property
    def loss_function(self) -> str:
        return "binary_cross_entropy_with_logits" if self.binary else "cross_entropy"

    @property
    def ops(self) -> tuple:
        ops: tuple[str, ...] = ("loss", "loss+grad") if self.binary else ("loss", "loss+grad", "logsumexp")
        if self.second_order:
            ops += ("loss+grad+hess",) if self.binary else SECOND_ORDER_OPS
        return ops + self.family + (tuple(ADAPTER_OPS) if self.adapters else ())

    def function(self, op: str) -> str:
        return OPS[op][0] or self.loss_function

    def label(self, dtype, tiny=False) -> str:
        shape = "x".join(map(str, self.tiny_shape if tiny else self.shape))
        return f"{self.name} {shape} {np.dtype(dtype).name}"

    def vector(self, dtype, *, tiny=False):
        """The ``v`` of a Hessian-vector product: standard normal, input-shaped,
        the same on every call."""
        shape = self.tiny_shape if tiny else self.shape
        return np.random.default_rng([int(self.name[1:]), int(tiny), 1]).standard_normal(
            shape, dtype=np.dtype(dtype))

    def make(self, dtype, *, targets="indices", inputs="logits", tiny=False):
        """``(input, target)`` for this workload, the same on every call.

        targets: "indices" (int64 class indices) or "probabilities" (rows that sum
        to 1) for a multi-class workload; a binary one always has 0/1 floats.
        inputs: "logits"; or "log-probabilities" (multi-class, for nll_loss) or
        "probabilities" (binary, for binary_cross_entropy).
        Everything is generated in place, so making the data never needs more
        memory than the data itself (asv's peakmem benchmarks rely on it).
        """
        dtype = np.dtype(dtype)
        shape = self.tiny_shape if tiny else self.shape
        rng = np.random.default_rng([int(self.name[1:]), int(tiny)])
        x = rng.standard_normal(shape, dtype=dtype)
        x *= 3
        if self.binary:
            t = rng.random(shape, dtype=dtype)
            np.rint(t, out=t)                              # 0 or 1
        elif targets == "indices":
            C = shape[self.axis]
            t = rng.integers(0, C, size=shape[:self.axis] + shape[self.axis + 1:])
        elif targets == "probabilities":
            t = rng.random(shape, dtype=dtype)
            t /= t.sum(axis=self.axis, keepdims=True)
        else:
            raise ValueError(f"targets must be 'indices' or 'probabilities', got {targets!r}")

        if inputs == "log-probabilities" and not self.binary:
            x = _baseline.log_softmax(x, axis=self.axis)
        elif inputs == "probabilities" and self.binary:
            np.negative(x, out=x)                          # sigmoid, in place
            np.exp(x, out=x)
            x += 1
            np.reciprocal(x, out=x)
        elif inputs != "logits":
            raise ValueError(f"inputs={inputs!r} does not fit workload {self.name}")
        return x, t


WORKLOADS = (
    Workload("W1", "classification, 1000 classes", (8192, 1000), (64, 100), ("float32", "float64"),
             adapters=True, second_order=True, family=("distill", "distill+grad")),
    Workload("W2", "many samples, 10 classes", (262144, 10), (512, 10), second_order=True),
    Workload("W3", "LLM vocabulary, 263 MB of logits", (512, 128256), (4, 3000), quick=False),
    Workload("W4", "binary, 4M logits", (4_000_000,), (1000,), ("float32", "float64"), binary=True,
             second_order=True, family=("focal", "focal+grad")),
    Workload("W5", "segmentation, class axis 1", (16, 21, 128, 128), (2, 21, 8, 8)),
)


def get(name: str) -> Workload:
    for wl in WORKLOADS:
        if wl.name == name:
            return wl
    raise KeyError(f"no workload {name!r}; there are {', '.join(w.name for w in WORKLOADS)}")


def available(function: str, impl: str = "fastxent") -> bool:
    """Whether this build of fastxent has the public function (in the adapter
    ``impl``, whose peer library must import)."""
    import importlib
    try:
        module = importlib.import_module(impl)
    except ImportError:
        return False
    return hasattr(module, function)


def op_available(wl, op, impl="fastxent") -> bool:
    """Whether this build of fastxent (or the adapter ``impl``) can run ``op`` of
    ``wl``: the workload has the op, the function exists and, for the Hessian, takes ``return_hessian``
    (feature-detected from its signature, so the second-order rows appear by
    themselves once fastxent has them)."""
    function = wl.function(op)
    if op not in wl.ops or not available(function, impl):
        return False
    if OPS[op][2]:
        import inspect

        import fastxent
        try:
            return "return_hessian" in inspect.signature(getattr(fastxent, function)).parameters
        except (TypeError, ValueError):
            return False
    return True


def impl_of(op: str) -> str:
    """The implementation an op runs: "fastxent", or an adapter module."""
    return ADAPTER_OPS.get(op, "fastxent")


def runner(impl, function, wl, x, target=None, *, reduction="mean", return_grad=False,
           return_hessian=False, v=None, n_threads=None):
    """A zero-argument callable running ``function`` of fastxent or of its NumPy twin
    (``v``: the vector of ``cross_entropy_hvp``)."""
    if impl == "fastxent":
        import fastxent
        f, kw = getattr(fastxent, function), {"n_threads": n_threads}
    elif impl == "fastxent.torch":
        return _torch_adapter_runner(function, wl, x, target, reduction=reduction,
                                     n_threads=n_threads)
    elif impl == "numpy":
        f, kw = getattr(_baseline, function), {}
    else:
        raise ValueError(f"impl must be 'fastxent', 'fastxent.torch' or 'numpy', got {impl!r}")
    if function in NORMALIZERS:
        return lambda: f(x, axis=wl.axis, **kw)
    if function == "cross_entropy_hvp":
        kw.update(reduction=reduction, axis=wl.axis)
        return lambda: f(x, target, v, **kw)
    if function not in LOSSES:
        raise ValueError(f"unknown function {function!r}")
    kw.update(reduction=family_reduction(function, reduction), return_grad=return_grad,
              **FAMILY_OPTIONS.get(function, {}))
    if return_hessian:
        kw["return_hessian"] = True
    if not wl.binary:
        kw["axis"] = wl.axis
    if function == "distillation_loss":
        target = teacher_logits(x)
    return lambda: f(x, target, **kw)


def teacher_logits(x):
    """The teacher's logits of the distillation ops: the student's (the
    workload's logits) of the previous sample, ``np.roll`` by one along the
    batch axis: the same distribution, and no data of their own to keep."""
    return np.roll(x, 1, axis=0)


def family_reduction(function, reduction):
    """The reduction a call runs with: the bench's "mean" is "batchmean" for
    distillation_loss (its default; "mean" would also divide by the classes)."""
    return "batchmean" if function == "distillation_loss" and reduction == "mean" else reduction


def torch_runner(function, wl, x, target=None, *, reduction="mean", return_grad=False):
    """The PyTorch peer of ``runner``: forward, or forward and ``backward()``.

    Runs on PyTorch's own thread count (``torch.set_num_threads``); raises
    ImportError without torch.
    """
    import torch  # optional peer
    import torch.nn.functional as F

    xt = torch.from_numpy(x)
    if function == "logsumexp":
        return lambda: torch.logsumexp(xt, dim=wl.axis)
    fn = {"cross_entropy": F.cross_entropy,
          "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
          "distillation_loss": _torch_distillation(torch, wl.axis),
          "sigmoid_focal_loss": _torch_focal(torch)}[function]
    reduction = family_reduction(function, reduction)
    tt = torch.from_numpy(teacher_logits(x) if function == "distillation_loss" else target)
    if not return_grad:
        return lambda: fn(xt, tt, reduction=reduction)
    xg = torch.from_numpy(x).requires_grad_()

    def forward_backward():
        xg.grad = None                                     # a fresh gradient, not accumulated
        loss = fn(xg, tt, reduction=reduction)
        loss.backward(None if reduction != "none" else torch.ones_like(loss))
        return loss, xg.grad
    return forward_backward


def _torch_distillation(torch, dim):
    """PyTorch's distillation recipe, as its users write it."""
    F = torch.nn.functional
    T = FAMILY_OPTIONS["distillation_loss"]["temperature"]

    def distillation_loss(s, t, reduction):
        return F.kl_div(F.log_softmax(s / T, dim), F.log_softmax(t / T, dim),
                        reduction=reduction, log_target=True) * (T * T)
    return distillation_loss


def _torch_focal(torch):
    """torchvision.ops.sigmoid_focal_loss where torchvision imports, else its
    formula in torch (the same operations)."""
    alpha, gamma = FAMILY_OPTIONS["sigmoid_focal_loss"]["alpha"], FAMILY_OPTIONS["sigmoid_focal_loss"]["gamma"]
    try:
        from torchvision.ops import sigmoid_focal_loss as tv  # type: ignore[import-not-found]
    except ImportError:
        tv = None
    if tv is not None:
        return lambda x, t, reduction: tv(x, t, alpha=alpha, gamma=gamma, reduction=reduction)
    F = torch.nn.functional

    def sigmoid_focal_loss(x, t, reduction):
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * ((1 - p_t) ** gamma)
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
    return sigmoid_focal_loss


def _torch_adapter_runner(function, wl, x, target, *, reduction="mean", n_threads=None):
    """Forward and backward through fastxent.torch on tensors sharing ``x``'s
    memory; returns ``(loss, grad)`` as NumPy arrays."""
    import torch  # optional peer

    import fastxent.torch as fxt

    fn = getattr(fxt, function)
    xg = torch.from_numpy(x).requires_grad_()
    tt = torch.from_numpy(target)
    kw = {"reduction": reduction, "n_threads": n_threads}
    if not wl.binary:
        kw["axis"] = wl.axis

    def forward_backward():
        xg.grad = None
        loss = fn(xg, tt, **kw)
        loss.backward(None if reduction != "none" else torch.ones_like(loss))
        return loss.detach().numpy(), xg.grad.numpy()
    return forward_backward


JAX_IMPLS = ("fastxent.jax", "fastxent.jax pure", "optax", "fastxent")


def jax_value_and_grad_runner(impl, wl, x, target):
    """A zero-argument callable: the mean cross-entropy's value and gradient for a
    JAX user, under ``jax.jit``, waited for.  impl "fastxent.jax" (its default
    callback), "fastxent.jax pure" (through ``jax.pure_callback``), "optax"
    (``optax.softmax_cross_entropy_with_integer_labels``), or "fastxent" (the
    NumPy function on NumPy arrays, for reference).  Raises ImportError
    without JAX (or optax)."""
    if impl == "fastxent":
        return runner("fastxent", "cross_entropy", wl, x, target, return_grad=True)
    import jax  # optional peer
    import jax.numpy as jnp

    xj, tj = jnp.asarray(x), jnp.asarray(target)
    if impl == "optax":
        import optax

        def loss(a, t):
            a = jnp.moveaxis(a, wl.axis, -1)
            return optax.softmax_cross_entropy_with_integer_labels(a, t).mean()
    elif impl in ("fastxent.jax", "fastxent.jax pure"):
        import fastxent.jax as fxj

        callback = "pure" if impl.endswith("pure") else "auto"

        def loss(a, t):
            return fxj.cross_entropy(a, t, axis=wl.axis, callback=callback)
    else:
        raise ValueError(f"impl must be one of {', '.join(JAX_IMPLS)}, got {impl!r}")
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    return lambda: jax.block_until_ready(value_and_grad(xj, tj))


def time_median(fn, repeat=5, warmup=1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_ratio(fn, reference, repeat=5, warmup=1) -> float:
    """Median over ``repeat`` rounds of time(fn()) / time(reference()), the two timed
    back to back in each round, so that both see the same load on a busy machine."""
    for _ in range(warmup):
        fn()
        reference()
    ratios = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        fn()
        middle = time.perf_counter()
        reference()
        ratios.append((middle - start) / (time.perf_counter() - middle))
    return statistics.median(ratios)


def tolerance(dtype) -> float:
    return 1e-4 if np.dtype(dtype).itemsize <= 4 else 1e-10


def differs(got, want, dtype, *, names=("result",), scale=None):
    """None when ``got`` matches ``want`` (the NumPy twin's output: a value or a
    tuple of them, named by ``names``) at the bench's tolerance for ``dtype``;
    else what differs.  ``scale``: a factor ``got``'s arrays (not the loss) are
    divided by first (a peer's unscaled gradient).  A None in ``got`` is a value
    the peer does not return, and is not compared."""
    if len(names) == 1:
        got, want = (got,), (want,)
    rtol = tolerance(dtype)
    for name, a, b in zip(names, got, want):
        if a is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        if scale is not None and a.ndim:
            a = a / scale
        if a.shape != b.shape:
            return f"{name}: shape {a.shape}, NumPy's {b.shape}"
        atol = rtol * float(np.max(np.abs(b), initial=0.0))
        if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            err = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
            return (f"{name} differs from NumPy's by up to {err:.3g} (tolerance {rtol:g} relative)"
                    + (f"; {float(a):.9g} against {float(b):.9g}" if a.ndim == 0 else ""))
    return None


def result_names(return_grad=False, return_hessian=False) -> tuple:
    return ("loss", "grad", "hess") if return_hessian else ("loss", "grad") if return_grad \
        else ("result",)


def disagreement(function, wl, x, target=None, *, reduction="mean", return_grad=False,
                 return_hessian=False, v=None, n_threads=None, impl="fastxent"):
    """None when fastxent (or its adapter ``impl``) and its NumPy twin agree on
    this call; else what differs."""
    kw = dict(reduction=reduction, return_grad=return_grad, return_hessian=return_hessian, v=v)
    fast = runner(impl, function, wl, x, target, n_threads=n_threads, **kw)()
    slow = runner("numpy", function, wl, x, target, **kw)()
    names = result_names(return_grad, return_hessian)
    for name, a, b in zip(names, *((fast, slow) if len(names) > 1 else ((fast,), (slow,)))):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return (f"{function} {name}: fastxent gives {a.dtype}{a.shape}, "
                    f"NumPy {b.dtype}{b.shape}")
    problem = differs(fast, slow, x.dtype, names=names)
    return None if problem is None else \
        f"{function} (reduction={reduction!r}): fastxent and NumPy disagree: {problem}"


# ----------------------------------------------------------------------------
# W6: a language model's output layer, for linear_cross_entropy
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LinearWorkload:
    """hidden ``(N, H)``, an embedding ``(V, H)`` and ``(N,)`` targets: the loss is
    the cross-entropy of ``hidden @ weight.T``.  Unlike W1-W5 it is timed three
    ways (``LINEAR_IMPLS``), in a section of its own in the bench."""
    name: str
    what: str
    shape: tuple                 # (N, H, V)
    quick_shape: tuple           # `bench --quick`
    tiny_shape: tuple            # tests and --tiny
    dtype: str = "float32"

    def dims(self, *, quick=False, tiny=False) -> tuple:
        return self.tiny_shape if tiny else self.quick_shape if quick else self.shape

    def label(self, *, quick=False, tiny=False) -> str:
        N, H, V = self.dims(quick=quick, tiny=tiny)
        return f"{self.name} N={N} H={H} V={V} {self.dtype}"

    def make(self, *, quick=False, tiny=False):
        """``(hidden, weight, target)``, the same on every call."""
        return make_linear(self.dims(quick=quick, tiny=tiny), self.dtype)


def make_linear(dims, dtype="float32"):
    """``(hidden, weight, target)`` of shape ``dims = (N, H, V)``, from a seed fixed
    by the shape; logits of about unit scale (weight entries of variance 1/H).
    Made in place: no more memory than the arrays themselves."""
    N, H, V = dims
    rng = np.random.default_rng([6, N, H, V])
    hidden = rng.standard_normal((N, H), dtype=dtype)
    weight = rng.standard_normal((V, H), dtype=dtype)
    weight *= np.asarray(1.0 / np.sqrt(max(H, 1)), dtype=dtype)
    target = rng.integers(0, V, size=N)
    return hidden, weight, target


LINEAR_WORKLOADS = (
    LinearWorkload("W6", "LM output layer, V = 128256 (Llama 3)", (1024, 1024, 128256),
                   (256, 512, 32000), (16, 32, 300)),
)
# fused: fastxent.linear_cross_entropy.  numpy: the logits materialized by NumPy's
# matmul, fastxent.cross_entropy, then the two gradient matmuls.  torch: F.linear,
# F.cross_entropy and backward().
LINEAR_IMPLS = ("fused", "numpy", "torch")


def get_linear(name: str) -> LinearWorkload:
    for wl in LINEAR_WORKLOADS:
        if wl.name == name:
            return wl
    raise KeyError(f"no linear workload {name!r}; there are {', '.join(w.name for w in LINEAR_WORKLOADS)}")


def _blas_limit(n_threads):
    """A context holding NumPy's BLAS to ``n_threads`` (threadpoolctl), or nothing."""
    import contextlib
    if n_threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits  # optional
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n_threads, user_api="blas")


def linear_runner(impl, hidden, weight, target, *, n_threads=None, chunk_size=None):
    """A zero-argument callable computing the mean loss and the gradients
    ``(loss, (grad_hidden, grad_weight))`` of one W6-like problem, three ways
    (``LINEAR_IMPLS``).  torch runs on PyTorch's own thread count
    (``torch.set_num_threads``); ImportError without it."""
    if impl == "fused":
        import fastxent

        def fused():
            loss, (gh, gw, _) = fastxent.linear_cross_entropy(
                hidden, weight, target, return_grad=True, n_threads=n_threads,
                chunk_size=chunk_size)
            return loss, (gh, gw)
        return fused
    if impl == "numpy":
        import fastxent

        def materialized():
            with _blas_limit(n_threads):
                logits = hidden @ weight.T
                loss, G = fastxent.cross_entropy(logits, target, return_grad=True,
                                                 n_threads=n_threads)
                del logits
                return loss, (G @ weight, G.T @ hidden)
        return materialized
    if impl == "torch":
        import torch  # optional peer
        import torch.nn.functional as F
        ht = torch.from_numpy(hidden).requires_grad_()
        wt = torch.from_numpy(weight).requires_grad_()
        tt = torch.from_numpy(target)

        def forward_backward():
            ht.grad = wt.grad = None
            loss = F.cross_entropy(F.linear(ht, wt), tt)
            loss.backward()
            return loss.detach().numpy(), (ht.grad.numpy(), wt.grad.numpy())
        return forward_backward
    raise ValueError(f"impl must be one of {', '.join(LINEAR_IMPLS)}, got {impl!r}")


def linear_disagreement(hidden, weight, target, **kw):
    """None when the fused and materialized computations agree; else what differs."""
    fused = linear_runner("fused", hidden, weight, target, **kw)()
    slow = linear_runner("numpy", hidden, weight, target, **kw)()
    rtol = tolerance(hidden.dtype)
    pairs = [("loss", fused[0], slow[0]), ("grad_hidden", fused[1][0], slow[1][0]),
             ("grad_weight", fused[1][1], slow[1][1])]
    for name, a, b in pairs:
        a, b = np.asarray(a), np.asarray(b)
        atol = rtol * float(np.max(np.abs(b), initial=0.0))
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            err = float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0)) if a.shape == b.shape else None
            return f"linear_cross_entropy {name}: fused and materialized differ (max {err})"
    return None
