"""fastxent.torch: the losses on CPU tensors with autograd through the fused
gradient, checked against torch.nn.functional and torch.autograd.gradcheck."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastxent  # noqa: E402
import fastxent.torch as fxt  # noqa: E402

MULTICLASS = [(fxt.cross_entropy, F.cross_entropy), (fxt.nll_loss, F.nll_loss)]
REDUCTIONS = ["mean", "sum", "none"]


def _tensor(a, requires_grad=False):
    return torch.from_numpy(np.asarray(a, order="C")).requires_grad_(requires_grad)


def _grads(fn, x, target, go, **kw):
    """Loss and the gradient of sum(go * loss) with respect to x."""
    x = x.detach().clone().requires_grad_()
    loss = fn(x, target, **kw)
    loss.backward(go)
    return loss.detach(), x.grad


def _problem(rng, shape, C, dtype, kind="indices", ignore=False):
    x = rng.standard_normal(shape).astype(dtype) * 2
    sample = shape[:1] + shape[2:] if len(shape) > 1 else ()
    if kind == "indices":
        t = rng.integers(0, C, size=sample)
        if ignore and t.size:
            t.reshape(-1)[::3] = -100
        return _tensor(x), _tensor(t)
    p = rng.random(shape) + 0.05
    return _tensor(x), _tensor((p / p.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)).astype(dtype))


def _go(loss_shape, dtype, rng):
    return _tensor(rng.uniform(0.5, 2.0, size=loss_shape).astype(dtype))


def test_import_fastxent_imports_neither_torch_nor_jax():
    code = "import sys, fastxent; print('torch' in sys.modules, 'jax' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": ":".join(sys.path)}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (13, 7), (3, 7, 4, 5)])
@pytest.mark.parametrize("options", [{}, {"weight": True}, {"ignore": True},
                                     {"label_smoothing": 0.2, "weight": True, "ignore": True},
                                     {"probabilities": True, "label_smoothing": 0.1}])
def test_cross_entropy_matches_torch(rng, dtype, reduction, shape, options):
    C = shape[0] if len(shape) == 1 else shape[1]
    x, t = _problem(rng, shape, C, dtype, "probabilities" if options.get("probabilities") else
                    "indices", ignore=options.get("ignore", False))
    kw = {"reduction": reduction}
    if options.get("weight"):
        kw["weight"] = _tensor(rng.uniform(0.5, 2, C).astype(dtype))
    if "label_smoothing" in options:
        kw["label_smoothing"] = options["label_smoothing"]
    want_loss = F.cross_entropy(x, t, **kw)
    go = _go(want_loss.shape, dtype, rng) if reduction == "none" else _tensor(np.array(1.7, dtype))
    loss, grad = _grads(fxt.cross_entropy, x, t, go, **kw)
    want_loss, want_grad = _grads(F.cross_entropy, x, t, go, **kw)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert loss.dtype == want_loss.dtype and grad.dtype == x.dtype
    torch.testing.assert_close(loss, want_loss, **tol, equal_nan=True)
    torch.testing.assert_close(grad, want_grad, **tol, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(rng, dtype, reduction, weighted):
    x = _tensor(np.log(rng.dirichlet(np.ones(6), size=(11, 3)).transpose(0, 2, 1)).astype(dtype))
    t = _tensor(rng.integers(0, 6, size=(11, 3)))
    t[0, 0] = -100
    kw = {"reduction": reduction}
    if weighted:
        kw["weight"] = _tensor(rng.uniform(0.5, 2, 6).astype(dtype))
    want = F.nll_loss(x, t, **kw)
    go = _go(want.shape, dtype, rng) if reduction == "none" else None
    loss, grad = _grads(fxt.nll_loss, x, t, go, **kw)
    want, want_grad = _grads(F.nll_loss, x, t, go, **kw)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grad, want_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_losses_match_torch(rng, dtype, reduction, weighted):
    shape = (9, 4)
    logits = _tensor((rng.standard_normal(shape) * 3).astype(dtype))
    t = _tensor(rng.random(shape).astype(dtype))
    kw = {"reduction": reduction}
    if weighted:
        kw["weight"] = _tensor(rng.uniform(0.5, 2, (1, 4)).astype(dtype))
    go = _go(shape, dtype, rng) if reduction == "none" else None
    for ours, theirs, x, extra in [
            (fxt.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, logits,
             {"pos_weight": _tensor(rng.uniform(0.5, 3, 4).astype(dtype))} if weighted else {}),
            (fxt.binary_cross_entropy, F.binary_cross_entropy, torch.sigmoid(logits), {})]:
        loss, grad = _grads(ours, x, t, go, **kw, **extra)
        want, want_grad = _grads(theirs, x, t, go, **kw, **extra)
        torch.testing.assert_close(loss, want)
        torch.testing.assert_close(grad, want_grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_axis_last(rng, reduction):
    """axis=-1 (fastxent's extra) equals PyTorch on the moved axis."""
    x = _tensor(rng.standard_normal((2, 5, 9)))
    t = _tensor(rng.integers(0, 9, size=(2, 5)))
    go = _go((2, 5), np.float64, rng) if reduction == "none" else None
    loss, grad = _grads(fxt.cross_entropy, x, t, go, reduction=reduction, axis=-1)
    xt = x.detach().clone().requires_grad_()
    want = F.cross_entropy(xt.transpose(1, 2), t, reduction=reduction)
    want.backward(go)
    torch.testing.assert_close(loss, want.detach())
    torch.testing.assert_close(grad, xt.grad)


# ---------------------------------------------------------------------------
# gradcheck in float64: every function and option


def _gradcheck(fn, x, *args, **kw):
    x = x.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: fn(a, *args, **kw), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": True}, {"label_smoothing": 0.3},
                                     {"weight": True, "label_smoothing": 0.3, "ignore": True},
                                     {"probabilities": True}, {"probabilities": True, "weight": True,
                                                               "label_smoothing": 0.2}])
@pytest.mark.parametrize("shape", [(5,), (6, 5), (2, 5, 3)])
def test_gradcheck_cross_entropy(rng, reduction, options, shape):
    x, t = _problem(rng, shape, 5, np.float64,
                    "probabilities" if options.get("probabilities") else "indices",
                    ignore=options.get("ignore", False) and len(shape) > 1)
    kw = {"reduction": reduction}
    if options.get("weight"):
        kw["weight"] = _tensor(rng.uniform(0.5, 2, 5))
    if "label_smoothing" in options:
        kw["label_smoothing"] = options["label_smoothing"]
    _gradcheck(fxt.cross_entropy, x, t, **kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_nll_loss_and_axis(rng, reduction, weighted):
    x = _tensor(rng.standard_normal((4, 3, 6)))
    t = _tensor(rng.integers(0, 6, size=(4, 3)))
    t[1, 1] = -100
    kw = {"reduction": reduction, "weight": _tensor(rng.uniform(0.5, 2, 6)) if weighted else None}
    _gradcheck(fxt.nll_loss, x, t, axis=-1, **kw)
    _gradcheck(fxt.cross_entropy, x, t, axis=2, **kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_binary(rng, reduction, weighted):
    logits = _tensor(rng.standard_normal((5, 3)) * 2)
    t = _tensor(rng.random((5, 3)))
    kw = {"reduction": reduction, "weight": _tensor(rng.uniform(0.5, 2, 3)) if weighted else None}
    pw = _tensor(rng.uniform(0.5, 3, 3)) if weighted else None
    _gradcheck(fxt.binary_cross_entropy_with_logits, logits, t, pos_weight=pw, **kw)
    probs = _tensor(rng.uniform(0.05, 0.95, (5, 3)))
    _gradcheck(fxt.binary_cross_entropy, probs, t, **kw)


# ---------------------------------------------------------------------------
# One kernel call, zero copies


class _Spy:
    """Wraps a fastxent function; records each call's input array and results."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, x, *args, **kw):
        res = self.fn(x, *args, **kw)
        self.calls.append((x, kw.get("return_grad", False), res))
        return res


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_one_kernel_call_and_no_copies(rng, monkeypatch, reduction):
    spy = _Spy(fastxent.cross_entropy)
    monkeypatch.setattr(fastxent, "cross_entropy", spy)
    x = _tensor(rng.standard_normal((40, 7)).astype(np.float32), requires_grad=True)
    t = _tensor(rng.integers(0, 7, size=40))
    loss = fxt.cross_entropy(x, t, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    assert len(spy.calls) == 1                    # backward called no kernel
    x_seen, return_grad, (loss_np, grad_np) = spy.calls[0]
    assert return_grad
    assert np.shares_memory(x_seen, x.detach().numpy())           # input: a view
    assert x.grad.data_ptr() == grad_np.ctypes.data                # gradient: the kernel's buffer
    if reduction == "none":
        assert loss.data_ptr() == loss_np.ctypes.data               # per-sample loss: a view


def test_without_autograd_the_loss_alone_is_computed(rng, monkeypatch):
    spy = _Spy(fastxent.cross_entropy)
    monkeypatch.setattr(fastxent, "cross_entropy", spy)
    x = _tensor(rng.standard_normal((8, 3)), requires_grad=True)
    t = _tensor(rng.integers(0, 3, size=8))
    with torch.no_grad():
        a = fxt.cross_entropy(x, t)
    b = fxt.cross_entropy(x.detach(), t)
    assert [c[1] for c in spy.calls] == [False, False]
    assert a.grad_fn is None and b.grad_fn is None
    assert a.item() == b.item() == pytest.approx(F.cross_entropy(x, t).item(), rel=1e-13)


def test_upstream_gradient_scales_and_accumulates(rng):
    x = _tensor(rng.standard_normal((10, 4)), requires_grad=True)
    t = _tensor(rng.integers(0, 4, size=10))
    loss = fxt.cross_entropy(x, t)
    (3 * loss).backward(retain_graph=True)
    g3 = x.grad.clone()
    loss.backward()                               # the stored gradient is not consumed
    want = torch.autograd.grad(F.cross_entropy(x, t), x)[0]
    torch.testing.assert_close(g3, 3 * want)
    torch.testing.assert_close(x.grad, 4 * want)
    with pytest.raises(RuntimeError):
        loss.backward()                           # freed, as PyTorch's own


def test_no_double_backward(rng):
    x = _tensor(rng.standard_normal((5, 3)), requires_grad=True)
    t = _tensor(rng.integers(0, 3, size=5))
    (g,) = torch.autograd.grad(fxt.cross_entropy(x, t), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        g.sum().backward()


# ---------------------------------------------------------------------------
# dtypes, devices, bad input


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(rng, dtype):
    x32 = _tensor(rng.standard_normal((16, 5)).astype(np.float32))
    t = _tensor(rng.integers(0, 5, size=16))
    x = x32.to(dtype).requires_grad_()
    loss = fxt.cross_entropy(x, t)
    loss.backward()
    assert loss.dtype == dtype and x.grad.dtype == dtype
    ref = x.detach().float().requires_grad_()
    want = F.cross_entropy(ref, t)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-2)
    torch.testing.assert_close(x.grad.float(), ref.grad, rtol=2e-2, atol=1e-3)


def test_other_devices_are_refused(rng):
    x = torch.empty((4, 3), device="meta")
    with pytest.raises(ValueError, match="input is on device meta"):
        fxt.cross_entropy(x, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="target is on device meta"):
        fxt.cross_entropy(torch.zeros(4, 3), torch.empty(4, dtype=torch.int64, device="meta"))


def test_bad_input_is_named(rng):
    x = _tensor(rng.standard_normal((4, 3)), requires_grad=True)
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        fxt.cross_entropy(x.detach().numpy(), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        fxt.cross_entropy(torch.zeros(4, 3, dtype=torch.int32), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="reduction"):
        fxt.cross_entropy(x, torch.zeros(4, dtype=torch.int64), reduction="avg")
    with pytest.raises(ValueError, match="target value 3"):
        fxt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    w = torch.ones(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="weight requires grad"):
        fxt.cross_entropy(x, torch.zeros(4, dtype=torch.int64), w)
    p = torch.full((4, 3), 1 / 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="target requires grad"):
        fxt.cross_entropy(x, p)
    with pytest.raises(ValueError, match="outside"):
        fxt.binary_cross_entropy(x, torch.zeros(4, 3, dtype=torch.float64))


def test_non_contiguous_and_negated_inputs(rng):
    base = _tensor(rng.standard_normal((6, 10)))
    x = base[:, ::2].detach().requires_grad_()          # strided
    t = _tensor(rng.integers(0, 5, size=6))
    loss, grad = _grads(fxt.cross_entropy, x, t, None)
    want, want_grad = _grads(F.cross_entropy, x, t, None)
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(grad, want_grad)
    neg = torch._neg_view(base)                           # a lazily negated view
    assert fxt.cross_entropy(neg, t).item() == pytest.approx(F.cross_entropy(-base, t).item())


# ---------------------------------------------------------------------------
# Modules


def test_modules_match_torch_nn(rng):
    x = _tensor(rng.standard_normal((8, 4)), requires_grad=True)
    t = _tensor(rng.integers(0, 4, size=8))
    w = _tensor(rng.uniform(0.5, 2, 4))
    same = lambda a: a  # noqa: E731
    pairs = [(fxt.CrossEntropyLoss(w, label_smoothing=0.1, reduction="sum"),
              torch.nn.CrossEntropyLoss(w, label_smoothing=0.1, reduction="sum"), same, t),
             (fxt.NLLLoss(w), torch.nn.NLLLoss(w), same, t)]
    tb = _tensor(rng.random((8, 4)))
    pairs += [(fxt.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=w),
               same, tb),
              (fxt.BCELoss(w), torch.nn.BCELoss(w), torch.sigmoid, tb)]
    for ours, theirs, pre, ti in pairs:
        assert isinstance(ours, torch.nn.Module)
        a, b = ours(pre(x), ti), theirs(pre(x), ti)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(torch.autograd.grad(a, x)[0], torch.autograd.grad(b, x)[0])


def test_module_buffers_and_attributes(rng):
    m = fxt.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    assert set(m.state_dict()) == {"weight"}
    assert m.double().weight.dtype == torch.float64
    x = _tensor(rng.standard_normal((5, 3)))
    t = _tensor(rng.integers(0, 3, size=5))
    m.reduction = "none"                          # takes effect on the next call
    assert m(x, t).shape == (5,)
    m.label_smoothing = 0.2
    torch.testing.assert_close(m(x, t), F.cross_entropy(x, t, m.weight, reduction="none",
                                                        label_smoothing=0.2))
    assert "label_smoothing=0.2" in repr(m)
    with pytest.raises(ValueError, match="reduction"):
        fxt.BCELoss(reduction="avg")
    with pytest.raises(TypeError):
        fxt.CrossEntropyLoss(None, None)          # options are keyword-only


def test_mlp_example_trains_the_same_model():
    """examples/torch_mlp.py: the two losses train the same weights (to float32
    rounding) to the same accuracy."""
    import os
    import re
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "examples", "torch_mlp.py")
    if not os.path.isfile(script):
        pytest.skip("examples/ not present")
    res = subprocess.run([sys.executable, script, "--epochs", "1", "--n-train", "640",
                          "--threads", "1"], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode == 0, res.stderr
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1]
            for line in res.stdout.splitlines() if line.startswith("| F") or "fastxent" in line}
    assert set(rows) == {"fastxent.torch", "F.cross_entropy"}, res.stdout
    assert rows["fastxent.torch"][2:] == rows["F.cross_entropy"][2:]     # loss and accuracy
    drift = float(re.search(r"weights: (\S+)", res.stdout).group(1))
    assert drift < 1e-5, res.stdout
