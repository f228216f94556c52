"""The speed-up over NumPy of each workload's loss+grad, measured in one process.

asv stores absolute times, which move with the machine's load; the ratio of two
times taken back to back in the same process moves much less, so a change in it
is the code's doing.  The same medians ``python -m fastxent bench`` reports.
"""
from .common import ALL, DTYPES, THREADS, prepare
from fastxent import _workloads as workloads


class SpeedupOverNumPy:
    params = [ALL, DTYPES, THREADS]
    param_names = ["workload", "dtype", "threads"]
    timeout = 600
    repeat_calls = 3                     # per side, after a warm-up call

    def setup(self, workload, dtype, threads):
        function = workloads.get(workload).loss_function
        self.fastxent = prepare(function, workload, dtype, "fastxent", threads, return_grad=True)
        self.numpy = prepare(function, workload, dtype, "numpy", 1, return_grad=True)

    def track_loss_grad(self, workload, dtype, threads):
        """NumPy's time over fastxent's for the loss and its gradient."""
        return (workloads.time_median(self.numpy, self.repeat_calls)
                / workloads.time_median(self.fastxent, self.repeat_calls))

    track_loss_grad.unit = "x faster"
