"""
Cross-entropy of random logits, against PyTorch
===============================================

The tutorial on random inputs (seed 003): a (3, 5) batch of logits with class
index targets, the loss and, from `return_grad=True`, the gradient that
PyTorch's `backward()` gives.

The tutorial printed its random tensors to four decimals; from those, fastxent
gives the printed losses (1.2340 and 1.8338) and gradients.  Then a fresh
random batch, compared with PyTorch where it is installed.
Run: python examples/seed_003_random.py
"""
import numpy as np

import fastxent

# Example 1: torch.rand(3, 5) logits, targets tensor([2, 0, 4])  ->  1.2340
logits = np.array([[0.2228, 0.2523, 0.9712, 0.7887, 0.2820],
                   [0.7778, 0.4144, 0.8693, 0.1355, 0.3706],
                   [0.0823, 0.5392, 0.0542, 0.0153, 0.8475]], dtype=np.float32)
loss = fastxent.cross_entropy(logits, np.array([2, 0, 4]))
print(f"example 1: loss {loss:.4f}")

# Example 2: targets tensor([1, 0, 4]), with backward()  ->  1.8338 and
# input.grad [[ 0.0962, -0.2921, 0.0406, 0.0475, 0.1078],
#             [-0.2901,  0.0453, 0.0735, 0.0717, 0.0997],
#             [ 0.0882,  0.0452, 0.0815, 0.0336, -0.2484]]
logits = np.array([[0.8671, 0.0189, 0.0042, 0.1619, 0.9805],
                   [0.1054, 0.1519, 0.6359, 0.6112, 0.9417],
                   [0.9968, 0.3285, 0.9185, 0.0315, 0.9592]], dtype=np.float32)
loss, grad = fastxent.cross_entropy(logits, np.array([1, 0, 4]), return_grad=True)
print(f"example 2: loss {loss:.4f}")
print("example 2: grad", np.array2string(grad, precision=4, separator=", ", floatmode="fixed")
      .replace("\n", "\n" + " " * 16))

# A fresh random batch, as the tutorial draws it, against PyTorch.
rng = np.random.default_rng(2024)
logits = rng.random((3, 5), dtype=np.float32)
target = rng.integers(0, 5, size=3)
loss, grad = fastxent.cross_entropy(logits, target, return_grad=True)
try:
    import torch
except ImportError:
    print(f"random batch: loss {loss:.6f} (PyTorch not installed: no comparison)")
else:
    x = torch.from_numpy(logits).requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(x, torch.from_numpy(target))
    ref.backward()
    print(f"random batch: loss {loss:.6f}, PyTorch {ref.item():.6f}; "
          f"largest gradient difference {np.abs(grad - x.grad.numpy()).max():.1e}")
