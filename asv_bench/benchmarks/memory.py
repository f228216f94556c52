"""What one loss+grad call allocates: the fused pass allocates the gradient only.

Each workload's loss with ``return_grad=True``, float32, reduction="mean",
class-index targets, one thread.  impl="inputs only" calls nothing: its peakmem is
the floor (interpreter, NumPy, fastxent and the inputs) the other two rows are
read against, so fastxent's row minus it is the size of the gradient.
"""
import tracemalloc

from .common import ALL, data, prepare
from fastxent import _workloads as workloads


class FusedGradMemory:
    params = [ALL, ["inputs only", "fastxent", "numpy"]]
    param_names = ["workload", "impl"]
    timeout = 600

    def setup(self, workload, impl):
        wl = workloads.get(workload)
        if not workloads.available(wl.loss_function):
            raise NotImplementedError(f"this fastxent has no {wl.loss_function}")
        x, _ = data(workload, "float32")
        self.grad_nbytes = x.nbytes
        self.call = (lambda: None) if impl == "inputs only" else \
            prepare(wl.loss_function, workload, "float32", impl, 1, return_grad=True)

    def peakmem_loss_grad(self, workload, impl):
        self.call()

    def track_allocated(self, workload, impl):
        """The most memory NumPy arrays held during the call (tracemalloc's peak), in
        units of the gradient's size: 1.0 is the gradient and nothing else."""
        tracemalloc.start()
        try:
            self.call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak / self.grad_nbytes

    track_allocated.unit = "gradient sizes"
