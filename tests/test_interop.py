"""Arrays from other libraries: PyTorch CPU tensors and DLPack producers are read
without a copy where the layout allows, and give the same results as NumPy."""
import numpy as np
import pytest

import fastxent
from fastxent import _args

torch = pytest.importorskip("torch")


class DLPackOnly:
    """An array that offers DLPack and nothing else (no __array__, no buffer)."""

    def __init__(self, data):
        self._data = data

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=gen)
    labels = torch.randint(0, 10, (64,), generator=gen)
    return logits, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_contiguous_tensor_is_read_in_place(dtype, batch):
    logits = batch[0].to(dtype)
    x, _ = _args.as_input(logits)
    assert np.shares_memory(x, logits.numpy())


def test_dlpack_only_object_is_read_in_place(batch):
    logits = batch[0]
    x, _ = _args.as_input(DLPackOnly(logits))
    assert np.shares_memory(x, logits.numpy())


def test_strided_tensor_is_copied_once_and_right(batch):
    logits, labels = batch
    t = logits.t().contiguous().t()          # column-major: kernels need a C-contiguous copy
    x, _ = _args.as_input(t)
    assert x.flags.c_contiguous and not np.shares_memory(x, t.numpy())
    assert fastxent.cross_entropy(t, labels) == fastxent.cross_entropy(logits.numpy(), labels.numpy())


@pytest.mark.parametrize("wrap", [lambda t: t, DLPackOnly], ids=["tensor", "dlpack"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_tensors_give_numpys_results(wrap, reduction, batch):
    logits, labels = batch
    weight = torch.linspace(0.5, 2.0, 10)
    go = torch.rand(64) if reduction == "none" else None
    got = fastxent.cross_entropy(wrap(logits), wrap(labels), wrap(weight), reduction=reduction,
                                 return_grad=True, grad_output=None if go is None else wrap(go))
    want = fastxent.cross_entropy(logits.numpy(), labels.numpy(), weight.numpy(),
                                  reduction=reduction, return_grad=True,
                                  grad_output=None if go is None else go.numpy())
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
        assert type(a) is type(b)


def test_matches_torch(batch):
    logits, labels = batch
    logits = logits.double()
    loss, grad = fastxent.cross_entropy(logits, labels, label_smoothing=0.1, return_grad=True)
    leaf = logits.clone().requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(leaf, labels, label_smoothing=0.1)
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-13)
    np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_gradient_feeds_torch_backward(batch):
    """fastxent's gradient, handed to autograd, trains what comes before the logits."""
    logits, labels = batch
    layer = torch.nn.Linear(10, 10).double()
    out = layer(logits.double())
    _, grad = fastxent.cross_entropy(out.detach(), labels, return_grad=True)
    out.backward(torch.from_numpy(grad))
    ref_layer = torch.nn.Linear(10, 10).double()
    ref_layer.load_state_dict(layer.state_dict())
    torch.nn.functional.cross_entropy(ref_layer(logits.double()), labels).backward()
    np.testing.assert_allclose(layer.weight.grad, ref_layer.weight.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("arg", ["input", "target", "weight", "grad_output"])
def test_tensor_requiring_grad_is_refused(arg, batch):
    logits, labels = batch
    args = {"input": logits, "target": torch.rand(64, 10), "weight": torch.ones(10),
            "grad_output": torch.ones(64)}
    args[arg] = args[arg].clone().requires_grad_(True)
    with pytest.raises(TypeError, match=rf"{arg} is a tensor that requires grad.*{arg}\.detach\(\)"):
        fastxent.cross_entropy(args["input"], args["target"], args["weight"], reduction="none",
                               return_grad=True, grad_output=args["grad_output"])


def test_tensor_into_out_buffer(batch):
    """out= takes a NumPy view of a preallocated tensor: the gradient lands in the tensor."""
    logits, labels = batch
    grad_t = torch.empty_like(logits)
    _, g = fastxent.cross_entropy(logits, labels, return_grad=True, out=grad_t.numpy())
    assert np.shares_memory(g, grad_t.numpy())
    np.testing.assert_array_equal(grad_t.numpy(), fastxent.cross_entropy(logits, labels, return_grad=True)[1])
