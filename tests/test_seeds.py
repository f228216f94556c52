"""The worked examples of the source documents (/work/shared/seeds/README.md),
multi-class part: each must run with fastxent and print the listed numbers.

The expected numbers are the ones the tutorials printed (rounded to 4 places),
not values computed by fastxent; where a tutorial's inputs were themselves
printed rounded, the README gives the number those rounded inputs produce.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import assert_close, torch_loss_and_grad


def printed(value, places=4):
    """What ``print`` of a torch tensor shows: rounded to ``places`` decimals."""
    return np.round(np.asarray(value, dtype=np.float64), places)


# ---- seeds 000/001: the CrossEntropyLoss tutorial ------------------------------

def test_seed_000_index_target():
    loss = fx.cross_entropy([[0.0, 1.0, 2.0, 3.0]], [3])
    assert printed(loss) == 0.4402
    assert_close(loss, np.log(np.sum(np.exp([0.0, 1.0, 2.0, 3.0]))) - 3.0, rtol=1e-15)


def test_seed_000_probability_target_with_backward():
    loss, grad = fx.cross_entropy(np.ones(3), [0.6004, 0.3339, 0.0657], return_grad=True)
    assert printed(loss) == 1.0986
    np.testing.assert_array_equal(printed(grad), [-0.2671, -0.0006, 0.2676])


def test_seed_000_unnormalized_probability_target():
    # torch.empty(3) left garbage in the target: it need not sum to 1
    loss, grad = fx.cross_entropy(np.ones(3), [0.0, 18.980, 7.7549e-14], return_grad=True)
    assert printed(loss) == 20.8517
    np.testing.assert_array_equal(printed(grad), [6.3267, -12.6533, 6.3267])


def test_seed_000_class_weights():
    loss_fn = fx.CrossEntropyLoss(weight=[1.3, 2.0])
    loss = loss_fn([[1.3, 2.0], [1.3, 2.0]], [1, 1])
    assert printed(loss) == 0.4032


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_000_examples_match_torch(torch, dtype):
    cases = [
        (np.array([[0.0, 1.0, 2.0, 3.0]]), np.array([3]), None),
        (np.ones(3), np.array([0.6004, 0.3339, 0.0657]), None),
        (np.ones(3), np.array([0.0, 18.980, 7.7549e-14]), None),
        (np.array([[1.3, 2.0], [1.3, 2.0]]), np.array([1, 1]), np.array([1.3, 2.0])),
    ]
    for x, t, w in cases:
        x = x.astype(dtype)
        t = t.astype(dtype) if t.dtype.kind == "f" else t
        w = None if w is None else w.astype(dtype)
        loss, grad = fx.cross_entropy(x, t, w, return_grad=True)
        t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, t, w, dtype=dtype)
        rtol = 1e-12 if dtype == np.float64 else 1e-5
        assert_close(loss, t_loss, rtol=rtol)
        assert_close(grad, t_grad, rtol=rtol, atol=rtol)


# ---- seed 003: random (3, 5) logits, CrossEntropyLoss and backward() -----------

def test_seed_003_example_1():
    x = np.array([[0.2228, 0.2523, 0.9712, 0.7887, 0.2820],
                  [0.7778, 0.4144, 0.8693, 0.1355, 0.3706],
                  [0.0823, 0.5392, 0.0542, 0.0153, 0.8475]], np.float32)
    assert printed(fx.cross_entropy(x, [2, 0, 4])) == 1.2340


def test_seed_003_example_2_with_gradient():
    x = np.array([[0.8671, 0.0189, 0.0042, 0.1619, 0.9805],
                  [0.1054, 0.1519, 0.6359, 0.6112, 0.9417],
                  [0.9968, 0.3285, 0.9185, 0.0315, 0.9592]], np.float32)
    loss, grad = fx.cross_entropy(x, [1, 0, 4], return_grad=True)
    assert printed(loss) == 1.8338
    np.testing.assert_array_equal(printed(grad), [[0.0962, -0.2921, 0.0406, 0.0475, 0.1078],
                                                  [-0.2901, 0.0453, 0.0735, 0.0717, 0.0997],
                                                  [0.0882, 0.0452, 0.0815, 0.0336, -0.2484]])


@pytest.mark.parametrize("seed", range(5))
def test_seed_003_random_logits_match_torch(torch, seed):
    # input = torch.rand(3, 5); target = torch.empty(3, dtype=torch.long).random_(5)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 5, generator=gen).numpy()
    y = torch.empty(3, dtype=torch.long).random_(5, generator=gen).numpy()
    loss, grad = fx.cross_entropy(x, y, return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, dtype=np.float32)
    assert isinstance(loss, np.float32) and grad.dtype == np.float32
    assert_close(loss, t_loss, rtol=1e-6)
    assert_close(grad, t_grad, rtol=1e-5, atol=1e-7)


# ---- seed 002: the MNISTClassifier (784-256-10 MLP) trained with SGD ----------

def _synthetic_digits(rng, n, n_classes=10, n_features=784):
    """Separable synthetic data standing in for MNIST (no download)."""
    centers = rng.standard_normal((n_classes, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    X = centers[y] + 2.0 * rng.standard_normal((n, n_features)).astype(np.float32)
    return X.astype(np.float32), y


def _linear_init(rng, fan_in, fan_out):
    """nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    W = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
    b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return W, b


def test_seed_002_numpy_mlp_trains_with_fastxent(rng):
    X, y = _synthetic_digits(rng, 64)
    W1, b1 = _linear_init(rng, 784, 256)
    W2, b2 = _linear_init(rng, 256, 10)
    lr = 0.05
    losses = []
    for step in range(6):
        h_pre = X @ W1 + b1
        h = np.maximum(h_pre, 0)
        logits = h @ W2 + b2
        loss, g_logits = fx.cross_entropy(logits, y, return_grad=True)
        losses.append(float(loss))
        if step == 0:
            # the loss and its gradient are those of the reference
            want, want_grad = ref.cross_entropy(logits, y, return_grad=True)
            assert_close(loss, want, rtol=2e-6)
            assert_close(g_logits, want_grad, rtol=2e-5, atol=1e-8)
        # backward through the two layers, plain NumPy
        gW2 = h.T @ g_logits
        gb2 = g_logits.sum(axis=0)
        g_h = (g_logits @ W2.T) * (h_pre > 0)
        gW1 = X.T @ g_h
        gb1 = g_h.sum(axis=0)
        for p, g in ((W1, gW1), (b1, gb1), (W2, gW2), (b2, gb2)):
            p -= lr * g
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_seed_002_mlp_gradients_match_torch(torch, rng):
    # the same model in PyTorch: fastxent's gradient w.r.t. the logits, pushed
    # back through the layers by hand, equals autograd's parameter gradients
    X, y = _synthetic_digits(rng, 5)
    W1, b1 = _linear_init(rng, 784, 256)
    W2, b2 = _linear_init(rng, 256, 10)

    layer1, layer2 = torch.nn.Linear(784, 256), torch.nn.Linear(256, 10)
    with torch.no_grad():
        layer1.weight.copy_(torch.from_numpy(W1.T.copy()))
        layer1.bias.copy_(torch.from_numpy(b1))
        layer2.weight.copy_(torch.from_numpy(W2.T.copy()))
        layer2.bias.copy_(torch.from_numpy(b2))
    out = layer2(torch.relu(layer1(torch.from_numpy(X))))
    out.retain_grad()
    t_loss = torch.nn.CrossEntropyLoss()(out, torch.from_numpy(y))
    t_loss.backward()

    h_pre = X @ W1 + b1
    h = np.maximum(h_pre, 0)
    logits = h @ W2 + b2
    loss, g_logits = fx.cross_entropy(logits, y, return_grad=True)
    assert_close(loss, t_loss.item(), rtol=1e-5)
    assert_close(g_logits, out.grad.numpy(), rtol=1e-4, atol=1e-7)
    gW2 = h.T @ g_logits
    g_h = (g_logits @ W2.T) * (h_pre > 0)
    gW1 = X.T @ g_h
    assert_close(gW2, layer2.weight.grad.numpy().T, rtol=1e-4, atol=1e-6)
    assert_close(gW1, layer1.weight.grad.numpy().T, rtol=1e-4, atol=1e-6)
