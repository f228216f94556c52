"""
The tutorials' multi-class examples
===================================

The multi-class worked examples of the tutorials (seeds 000 and 001), with fastxent.

Each example prints the number the tutorial printed with PyTorch; the gradients
that PyTorch's `backward()` gave come from `return_grad=True`, in the same pass
as the loss.  Run: python examples/seed_000_crossentropy.py
"""
import numpy as np

import fastxent

# nn.CrossEntropyLoss()(torch.tensor([[0, 1, 2, 3]]), torch.tensor([3]))  ->  0.4402
loss = fastxent.cross_entropy(np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32), np.array([3]))
print(f"class index target:         loss {loss:.4f}")

# input = torch.ones(3, requires_grad=True), target class probabilities,
# loss.backward()  ->  loss 1.0986, input.grad [-0.2671, -0.0006, 0.2676]
# (the tutorial printed -0.2670, from its unrounded random targets)
target = np.array([0.6004, 0.3339, 0.0657])
loss, grad = fastxent.cross_entropy(np.ones(3, dtype=np.float32), target, return_grad=True)
print(f"class probability target:   loss {loss:.4f}  grad {np.array2string(grad, precision=4)}")

# The same with torch.empty(3) as the "probabilities" (unnormalised targets are
# allowed)  ->  loss 20.8517, grad [6.3267, -12.6533, 6.3267]
# (the tutorial's unrounded targets gave 20.8519)
target = np.array([0.0, 18.980, 7.7549e-14])
loss, grad = fastxent.cross_entropy(np.ones(3, dtype=np.float32), target, return_grad=True)
print(f"unnormalised target:        loss {loss:.4f}  grad {np.array2string(grad, precision=4)}")

# nn.CrossEntropyLoss(weight=torch.tensor([1.3, 2.0])) on two identical rows  ->  0.4032
loss_fn = fastxent.CrossEntropyLoss(weight=np.array([1.3, 2.0]))
loss = loss_fn(np.array([[1.3, 2.0], [1.3, 2.0]], dtype=np.float32), np.array([1, 1]))
print(f"class weights:              loss {loss:.4f}")
