"""
The tutorials' binary examples
==============================

The binary worked examples of the tutorials (seeds 000 and 001), with fastxent.

Each example prints the number the tutorial printed.  Run:
python examples/seed_000_binary.py
"""
import numpy as np

import fastxent

# torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones([3])) on logits of 1.0 and
# targets of 1.0, shape (2, 3)  ->  -log(sigmoid(1.0)) = 0.3133
loss_fn = fastxent.BCEWithLogitsLoss(pos_weight=np.ones(3, dtype=np.float32))
loss = loss_fn(np.full((2, 3), 1.0, dtype=np.float32), np.ones((2, 3), dtype=np.float32))
print(f"BCEWithLogitsLoss, pos_weight:   loss {loss:.4f}")

# The tutorial's logistic regression: six points (three of each class) drawn
# with np.random.seed(0), the line w1 = -0.3, w2 = -0.35, b = 2.5, and the mean
# binary cross-entropy of sigmoid(points @ line)  ->  0.46380153
sample_points = 3
np.random.seed(0)
bias = np.ones(sample_points)
top = np.array([np.random.normal(5, 2, sample_points), np.random.normal(5, 2, sample_points), bias]).T
bottom = np.array([np.random.normal(3, 2, sample_points), np.random.normal(3, 2, sample_points), bias]).T
points = np.vstack((top, bottom))
line = np.array([-0.3, -0.35, 2.5])
y = np.array([0.0] * sample_points + [1.0] * sample_points)

linear = points @ line
probabilities = 1 / (1 + np.exp(-linear))
print(f"logistic regression, BCE:        loss {fastxent.binary_cross_entropy(probabilities, y):.8f}")

# From the logits directly (no sigmoid, no log(0) for confident points), with
# the gradient of the loss: by the chain rule, points.T @ grad is the gradient
# with respect to the line's parameters, one step of gradient descent away.
loss, grad = fastxent.binary_cross_entropy_with_logits(linear, y, return_grad=True)
line_grad = points.T @ grad
print(f"logistic regression, logits:     loss {loss:.8f}  "
      f"d loss / d line {np.array2string(line_grad, precision=4)}")
