"""W6: linear_cross_entropy against materializing the logits, and against PyTorch.

The mean loss and the gradients of hidden and weight of a language model's output
layer (``fastxent._workloads.LINEAR_WORKLOADS``), three ways
(``LINEAR_IMPLS``): fused (``fastxent.linear_cross_entropy``), numpy (the logits
materialized by NumPy's matmul, ``fastxent.cross_entropy``, the two gradient
matmuls) and torch (``F.linear``, ``F.cross_entropy``, ``backward()``).  size
"quick" is ``bench --quick``'s shape (N=256, H=512, V=32000), "full" the
workload's (N=1024, H=1024, V=128256: seconds a call).

``time_`` and ``peakmem_`` are asv's; ``track_fused_over_numpy`` is fused's time
over the materialized computation's, timed back to back in one process (smaller
is better, as asv reads every number; the goal is at most 1).
"""
from .common import THREADS
from fastxent import _workloads as workloads

SIZES = ["quick", "full"]


def _problem(size):
    return workloads.get_linear("W6").make(quick=size == "quick")


class LinearCrossEntropy:
    params = [SIZES, list(workloads.LINEAR_IMPLS), THREADS]
    param_names = ["size", "impl", "threads"]
    timeout = 1800
    number = 1
    repeat = (1, 3, 600.0)
    warmup_time = 0

    def setup(self, size, impl, threads):
        if not workloads.available("linear_cross_entropy"):
            raise NotImplementedError("this fastxent has no linear_cross_entropy")
        if impl == "torch":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("PyTorch is not installed") from None
            torch.set_num_threads(threads)
        hidden, weight, target = _problem(size)
        self.call = workloads.linear_runner(impl, hidden, weight, target, n_threads=threads)

    def time_loss_grads(self, size, impl, threads):
        self.call()

    def peakmem_loss_grads(self, size, impl, threads):
        self.call()


class LinearRatioToMaterialized:
    params = [SIZES, THREADS]
    param_names = ["size", "threads"]
    timeout = 1800
    rounds_timed = 3                     # after a warm-up round

    def setup(self, size, threads):
        if not workloads.available("linear_cross_entropy"):
            raise NotImplementedError("this fastxent has no linear_cross_entropy")
        hidden, weight, target = _problem(size)
        self.fused = workloads.linear_runner("fused", hidden, weight, target, n_threads=threads)
        self.numpy = workloads.linear_runner("numpy", hidden, weight, target, n_threads=threads)

    def track_fused_over_numpy(self, size, threads):
        """fused's time over the materialized computation's (same thread count)."""
        return workloads.time_ratio(self.fused, self.numpy, self.rounds_timed)

    track_fused_over_numpy.unit = "x materialized time"
