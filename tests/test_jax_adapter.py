"""fastxent.jax: the losses as custom_vjp over a host callback, checked against
the float64 reference (tests/reference.py), optax and finite differences under
jit, grad, value_and_grad and vmap, for both callbacks."""
import os

import numpy as np
import pytest

if os.environ.get("FASTXENT_UNDER_SANITIZER"):
    # tools/run_sanitized.sh preloads libasan into python; jaxlib's own C++ is
    # not what it checks (as PyTorch, hidden there)
    pytest.skip("JAX is not run under the sanitizers", allow_module_level=True)
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import fastxent  # noqa: E402
import fastxent.jax as fxj  # noqa: E402
import reference as ref  # noqa: E402
from helpers import make_case  # noqa: E402

try:
    from jax.experimental import buffer_callback  # noqa: F401
    KINDS = ["buffer", "pure"]
except ImportError:
    KINDS = ["pure"]

REDUCTIONS = ["mean", "sum", "none"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _close(a, b, rtol=1e-12, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, equal_nan=True)


def _go(rng, reduction, loss_shape):
    return rng.uniform(0.5, 2.0, size=loss_shape) if reduction == "none" else 1.3


def _vjp(fn, x, go):
    loss, pull = jax.vjp(fn, x)
    return loss, pull(jnp.asarray(go, dtype=loss.dtype))[0]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,axis", [((7,), None), ((6, 7), None), ((3, 7, 4), None),
                                        ((2, 3, 7), -1)])
@pytest.mark.parametrize("target_kind,weighted,eps", [("index", False, 0.0),
                                                      ("index", True, 0.2),
                                                      ("prob", True, 0.1)])
def test_cross_entropy_matches_reference(rng, kind, x64, reduction, shape, axis, target_kind,
                                         weighted, eps):
    x, t, w = make_case(rng, shape, axis, target_kind, weighted, ignore=len(shape) > 1)
    kw = dict(reduction=reduction, label_smoothing=eps, axis=axis)
    go = _go(rng, reduction, np.shape(ref.cross_entropy(x, t, w, **kw)))
    want, want_grad = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    f = jax.jit(lambda a: fxj.cross_entropy(a, jnp.asarray(t), None if w is None else
                                            jnp.asarray(w), callback=kind, **kw))
    loss, grad = _vjp(f, jnp.asarray(x), go)
    assert loss.dtype == jnp.float64 and grad.shape == x.shape
    _close(loss, want)
    _close(grad, want_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_reference(rng, kind, x64, reduction):
    x = np.log(rng.dirichlet(np.ones(5), size=8))
    t = rng.integers(0, 5, size=8)
    t[2] = -100
    w = rng.uniform(0.5, 2, 5)
    go = _go(rng, reduction, (8,))
    want, want_grad = ref.nll_loss(x, t, w, reduction=reduction, return_grad=True, grad_output=go)
    loss, grad = _vjp(lambda a: fxj.nll_loss(a, t, w, reduction=reduction, callback=kind),
                      jnp.asarray(x), go)
    _close(loss, want)
    _close(grad, want_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_losses_match_reference(rng, kind, x64, reduction, weighted):
    x = 3 * rng.standard_normal((6, 4))
    t = rng.random((6, 4))
    w = rng.uniform(0.5, 2, (1, 4)) if weighted else None
    pw = rng.uniform(0.5, 3, 4) if weighted else None
    go = _go(rng, reduction, (6, 4))

    loss, grad = _vjp(lambda a: fxj.binary_cross_entropy_with_logits(
        a, t, w, pos_weight=pw, reduction=reduction, callback=kind), jnp.asarray(x), go)
    want, want_grad = ref.binary_cross_entropy_with_logits(
        x, t, w, pos_weight=pw, reduction=reduction, return_grad=True, grad_output=go)
    _close(loss, want, rtol=1e-13)
    _close(grad, want_grad, rtol=1e-13)

    p = 1 / (1 + np.exp(-x))
    loss, grad = _vjp(lambda a: fxj.binary_cross_entropy(a, t, w, reduction=reduction,
                                                         callback=kind), jnp.asarray(p), go)
    want, want_grad = ref.binary_cross_entropy(p, t, w, reduction=reduction, return_grad=True,
                                               grad_output=go)
    _close(loss, want, rtol=1e-12)
    _close(grad, want_grad, rtol=1e-10)


def test_gradient_matches_finite_differences(rng, kind, x64):
    x = rng.standard_normal((4, 5))
    t = rng.integers(0, 5, size=4)
    w = rng.uniform(0.5, 2, 5)
    f = jax.jit(lambda a: fxj.cross_entropy(a, t, w, label_smoothing=0.1, callback=kind))
    grad = jax.grad(f)(jnp.asarray(x))
    _close(grad, ref.numerical_grad(lambda a: f(jnp.asarray(a)), x), rtol=1e-7, atol=1e-9)
    g = jax.jit(jax.grad(lambda a: fxj.binary_cross_entropy_with_logits(
        a, (x > 0).astype(float), pos_weight=np.full(5, 2.0), reduction="sum", callback=kind)))
    _close(g(jnp.asarray(x)), ref.numerical_grad(lambda a: fxj.binary_cross_entropy_with_logits(
        jnp.asarray(a), (x > 0).astype(float), pos_weight=np.full(5, 2.0), reduction="sum",
        callback=kind), x), rtol=1e-7, atol=1e-9)


def test_float32_against_optax(rng, kind):
    optax = pytest.importorskip("optax")
    x = jnp.asarray((3 * rng.standard_normal((64, 100))).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 100, 64).astype(np.int32))
    ours = jax.jit(jax.value_and_grad(lambda a: fxj.cross_entropy(a, y, callback=kind)))(x)
    theirs = jax.jit(jax.value_and_grad(
        lambda a: optax.softmax_cross_entropy_with_integer_labels(a, y).mean()))(x)
    assert ours[0].dtype == ours[1].dtype == jnp.float32
    _close(ours[0], theirs[0], rtol=1e-6)
    _close(ours[1], theirs[1], rtol=1e-5, atol=1e-8)


def test_value_and_grad_equals_fastxent_direct(rng, kind):
    x = (2 * rng.standard_normal((50, 9))).astype(np.float32)
    y = rng.integers(0, 9, 50)
    loss, grad = jax.jit(jax.value_and_grad(
        lambda a: fxj.cross_entropy(a, y, label_smoothing=0.05, callback=kind)))(jnp.asarray(x))
    want, want_grad = fastxent.cross_entropy(x, y, label_smoothing=0.05, return_grad=True)
    assert float(loss) == float(want)                       # the same kernel, bit for bit
    np.testing.assert_array_equal(np.asarray(grad), want_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_vmap(rng, kind, x64, reduction):
    """A batch of problems: batched input (with and without a batched target),
    loss and gradient equal to a loop over the batch, under jit."""
    xb = rng.standard_normal((3, 6, 4))
    tb = rng.integers(0, 4, size=(3, 6))
    t0 = tb[0]

    def loss(a, t):
        return fxj.cross_entropy(a, t, reduction=reduction, callback=kind)

    def total(a, t):
        return jnp.sum(loss(a, t))

    for in_axes, targets in (((0, 0), tb), ((0, None), t0)):
        out = jax.jit(jax.vmap(loss, in_axes=in_axes))(jnp.asarray(xb), jnp.asarray(targets))
        grads = jax.jit(jax.vmap(jax.grad(total), in_axes=in_axes))(jnp.asarray(xb),
                                                                   jnp.asarray(targets))
        for i in range(3):
            ti = targets[i] if in_axes[1] == 0 else targets
            want, want_grad = ref.cross_entropy(xb[i], ti, reduction=reduction, return_grad=True)
            _close(out[i], want)
            _close(grads[i], want_grad)


def test_vmap_of_unbatched_input_with_batched_target(rng, kind, x64):
    x = rng.standard_normal((5, 3))
    tb = rng.integers(0, 3, size=(4, 5))
    out = jax.vmap(lambda t: fxj.cross_entropy(x, t, callback=kind))(jnp.asarray(tb))
    _close(out, [ref.cross_entropy(x, t) for t in tb])


def test_nested_vmap(rng, kind, x64):
    x = rng.standard_normal((2, 3, 4, 5))
    t = rng.integers(0, 5, size=(2, 3, 4))
    f = jax.vmap(jax.vmap(lambda a, b: fxj.cross_entropy(a, b, callback=kind)))
    _close(f(jnp.asarray(x), jnp.asarray(t)),
           [[ref.cross_entropy(x[i, j], t[i, j]) for j in range(3)] for i in range(2)])


def test_forward_mode_is_refused_clearly(kind):
    x = jnp.ones((2, 3))
    y = jnp.zeros(2, dtype=jnp.int32)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda a: fxj.cross_entropy(a, y, callback=kind), (x,), (x,))
    with pytest.raises(TypeError, match="no forward-mode derivative"):
        jax.hessian(lambda a: fxj.cross_entropy(a, y, callback=kind))(x)
    with pytest.raises(TypeError, match="no forward-mode derivative"):
        jax.jacfwd(jax.grad(lambda a: fxj.binary_cross_entropy_with_logits(
            a, jnp.ones((2, 3)), callback=kind)))(x)


def test_only_input_is_differentiated(rng, kind):
    x = jnp.asarray(rng.standard_normal((3, 4)).astype(np.float32))
    p = jnp.full((3, 4), 0.25, jnp.float32)
    w = jnp.ones(4, jnp.float32)
    y = jnp.zeros(3, jnp.int32)
    with pytest.raises(TypeError, match="not target"):
        jax.grad(lambda t: fxj.cross_entropy(x, t, callback=kind))(p)
    with pytest.raises(TypeError, match="not weight"):
        jax.grad(lambda v: fxj.cross_entropy(x, y, v, callback=kind))(w)
    with pytest.raises(TypeError, match="not pos_weight"):
        jax.grad(lambda v: fxj.binary_cross_entropy_with_logits(x, p, pos_weight=v,
                                                                callback=kind))(w)
    # a target held constant is fine
    g = jax.grad(lambda a: fxj.cross_entropy(a, jax.lax.stop_gradient(p), callback=kind))(x)
    assert g.shape == x.shape


def test_argument_errors_are_raised_while_tracing(kind):
    x = jnp.ones((4, 3))
    y = jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match="reduction"):
        fxj.cross_entropy(x, y, reduction="avg", callback=kind)
    with pytest.raises(ValueError, match="label_smoothing"):
        jax.jit(lambda a: fxj.cross_entropy(a, y, label_smoothing=2.0, callback=kind))(x)
    with pytest.raises(ValueError, match=r"target must have shape \(4,\)"):
        fxj.cross_entropy(x, jnp.zeros(5, jnp.int32), callback=kind)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        fxj.cross_entropy(x, y, jnp.ones(4), callback=kind)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        fxj.cross_entropy(jnp.ones((4, 3), jnp.int32), y, callback=kind)
    with pytest.raises(TypeError, match="integer class indices"):
        fxj.nll_loss(x, jnp.zeros((4, 3)), callback=kind)
    with pytest.raises(ValueError, match="callback must be one of"):
        fxj.cross_entropy(x, y, callback="host")


def test_value_errors_are_raised_when_run(kind):
    x = jnp.ones((4, 3))
    with pytest.raises(Exception, match="target value 7"):
        jax.block_until_ready(jax.jit(lambda a, t: fxj.cross_entropy(a, t, callback=kind))(
            x, jnp.array([0, 1, 7, 2], jnp.int32)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision(rng, kind, dtype):
    x32 = (2 * rng.standard_normal((16, 5))).astype(np.float32)
    y = rng.integers(0, 5, 16)
    x = jnp.asarray(x32).astype(dtype)
    loss, grad = jax.value_and_grad(lambda a: fxj.cross_entropy(a, y, callback=kind))(x)
    assert loss.dtype == x.dtype and grad.dtype == x.dtype
    want, want_grad = ref.cross_entropy(np.asarray(x.astype(jnp.float32)), y, return_grad=True)
    _close(loss, want, rtol=1e-2)
    _close(grad, want_grad, rtol=3e-2, atol=2e-3)


def test_eager_calls_reuse_the_compilation(rng, kind):
    """The callback is made once per set of options, so repeated eager calls
    do not compile again."""
    x = jnp.asarray(rng.standard_normal((8, 3)).astype(np.float32))
    y = jnp.zeros(8, jnp.int32)
    fxj.cross_entropy(x, y, callback=kind)
    before = fxj._loss_jit._cache_size()
    for _ in range(3):
        fxj.cross_entropy(x, y, callback=kind)
    assert fxj._loss_jit._cache_size() == before
