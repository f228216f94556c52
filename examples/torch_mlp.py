"""
Training a PyTorch MLP with fastxent.torch
==========================================

A small PyTorch MLP trained twice in lockstep: once with fastxent.torch's
cross-entropy, once with torch.nn.functional.cross_entropy.

The model, data and SGD of seed_002 (784-256-10, ReLU; the seven-segment digit
images of seed_002_mnist_mlp.py, no download), in PyTorch.  Both models start
from the same weights and see the same batches; each step of one is followed
by the same step of the other, and the time of each step (forward, loss,
backward, update; wall and process CPU time) is added to its model's total,
so that both see the same load on a busy machine.  Prints, per loss, the training time, the loss and the
test accuracy, and how far the two models' weights drifted apart.

At a batch of 64 and 10 classes the loss is a small part of a step, and
fastxent.torch's Python autograd node costs more than the kernel saves; the
adapter pays off where the logits are large (see the README's table).  Without
PyTorch the script says so and stops.

This page was built with ``--epochs 1 --n-train 3000``, to build quickly;
the defaults (4 epochs of 8000 images) take about a minute on two cores.

Run: ``python examples/torch_mlp.py [--epochs N] [--n-train N] [--batch B] [--threads T]``
"""
import argparse
import copy
import time

import numpy as np

try:
    import torch
except ImportError:
    torch = None

# The same data as seed_002: its module sits next to this one, on sys.path both
# when this script runs (its own folder) and in the documentation's gallery.
from seed_002_mnist_mlp import make_digits  # noqa: E402


def main():
    import torch.nn.functional as F

    import fastxent.torch as fxt

    parser = argparse.ArgumentParser(description="Training a PyTorch MLP with fastxent.torch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (also fastxent's default: they share OpenMP)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x_train, y_train = (torch.from_numpy(a) for a in make_digits(args.n_train, rng))
    x_test, y_test = (torch.from_numpy(a) for a in make_digits(2000, rng))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    runs = {"fastxent.torch": (copy.deepcopy(model), fxt.cross_entropy),
            "F.cross_entropy": (copy.deepcopy(model), F.cross_entropy)}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=args.lr) for k, (m, _) in runs.items()}
    seconds = dict.fromkeys(runs, 0.0)
    cpu_seconds = dict.fromkeys(runs, 0.0)
    losses = dict.fromkeys(runs, 0.0)

    for epoch in range(1, args.epochs + 1):
        order = torch.from_numpy(rng.permutation(args.n_train))
        losses = dict.fromkeys(runs, 0.0)
        steps = 0
        for lo in range(0, args.n_train - args.batch + 1, args.batch):
            idx = order[lo:lo + args.batch]
            x, y = x_train[idx], y_train[idx]
            for name, (m, loss_fn) in runs.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                optimizers[name].zero_grad()
                loss = loss_fn(m(x), y)
                loss.backward()
                optimizers[name].step()
                seconds[name] += time.perf_counter() - start
                cpu_seconds[name] += time.process_time() - cpu_start
                losses[name] += loss.item()
            steps += 1

    print(f"{args.epochs} epochs of {args.n_train} images, batch {args.batch}, "
          f"{torch.get_num_threads()} thread(s)")
    print("| loss | training time (s) | CPU time (s) | last epoch's train loss | test accuracy |")
    print("|---|---:|---:|---:|---:|")
    for name, (m, loss_fn) in runs.items():
        with torch.no_grad():
            accuracy = (m(x_test).argmax(dim=1) == y_test).float().mean().item()
        print(f"| {name} | {seconds[name]:.2f} | {cpu_seconds[name]:.2f} | "
              f"{losses[name] / steps:.4f} | {accuracy:.4f} |")
    drift = max((a - b).abs().max().item() for a, b in
                zip(runs["fastxent.torch"][0].parameters(), runs["F.cross_entropy"][0].parameters()))
    print(f"largest difference between the two models' weights: {drift:.2e}")


if __name__ == "__main__":
    if torch is None:
        print("PyTorch is not installed: nothing to compare")
    else:
        main()
