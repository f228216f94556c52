"""A representative fastxent workload for tools/run_valgrind.sh: every public
function and option, both layouts (contiguous and strided class axis), long
rows (several chunks), every dtype, special values, the error paths, and a
few calls big enough to run the kernels on several OpenMP threads.  Small
enough to finish under valgrind in a few minutes."""
from __future__ import annotations

import itertools

import numpy as np

import fastxent


def main():
    rng = np.random.default_rng(0)
    n = 0
    shapes = [((7,), None), ((5, 9), None), ((4, 6, 3), None), ((3, 5, 70), 1), ((2, 3, 5), -1),
              ((2, 20000), None)]                              # a long row: chunked
    for (shape, axis), dtype in itertools.product(shapes, [np.float64, np.float32, np.float16]):
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        if x.size > 3:
            x.reshape(-1)[:3] = [np.nan, -np.inf, 1e4]
        ax = (0 if len(shape) == 1 else 1) if axis is None else axis % len(shape)
        C = shape[ax]
        sshape = shape[:ax] + shape[ax + 1:]
        y = rng.integers(0, C, size=sshape)
        y.reshape(-1)[:1] = -100
        t = rng.random(shape).astype(dtype)
        w = rng.random(C).astype(dtype)
        for tgt, wt, red, eps in itertools.product((y, t), (None, w), ("mean", "sum", "none"), (0.0, 0.2)):
            go = rng.random(sshape) if red == "none" else 0.5
            fastxent.cross_entropy(x, tgt, wt, reduction=red, label_smoothing=eps, axis=axis)
            fastxent.cross_entropy(x, tgt, wt, reduction=red, label_smoothing=eps, axis=axis,
                                   return_grad=True, grad_output=go, out=np.empty_like(x))
            n += 2
        for wt, red in itertools.product((None, w), ("mean", "sum", "none")):
            fastxent.nll_loss(x, y, wt, reduction=red, axis=axis, return_grad=True)
            n += 1
        for a in (axis if axis is not None else -1, 0, None):
            fastxent.logsumexp(x, axis=a, keepdims=True)
            n += 1
        fastxent.softmax(x, axis=ax)
        fastxent.log_softmax(x, axis=ax, out=np.empty_like(x))
        fastxent.CrossEntropyLoss(w, label_smoothing=0.1, axis=axis)(x, y, return_grad=True)
        fastxent.NLLLoss(axis=axis)(x, y)
        n += 4
        for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
            xb = rng.random(shape).astype(dtype) if name == "binary_cross_entropy" else x
            getattr(fastxent, name)(xb, t, return_grad=True)
            n += 1
    # error paths
    for bad in (lambda: fastxent.cross_entropy(np.zeros((3, 4)), [0, 7, 1]),
                lambda: fastxent.cross_entropy(np.zeros((3, 4)), [0, 1]),
                lambda: fastxent.nll_loss(np.zeros((3, 4)), np.zeros((3, 4))),
                lambda: fastxent.softmax(np.zeros(3), out=np.zeros(4))):
        try:
            bad()
        except (TypeError, ValueError):
            n += 1
    # several OpenMP threads
    x = rng.standard_normal((300, 200)).astype(np.float32)
    y = rng.integers(0, 200, size=300)
    for nt in (1, 2, 4):
        fastxent.cross_entropy(x, y, return_grad=True, n_threads=nt, label_smoothing=0.1)
        fastxent.cross_entropy(x.reshape(3, 100, 200).transpose(0, 2, 1), y.reshape(3, 100),
                               return_grad=True, n_threads=nt)
        fastxent.softmax(x, n_threads=nt)
        fastxent.nll_loss(x, y, return_grad=True, n_threads=nt)
        n += 4
    print(f"valgrind workload: {n} calls, SIMD path {fastxent._kernels.simd_path}")


if __name__ == "__main__":
    main()
