"""fastxent against NumPy on each workload's loss+grad, as a ratio measured in one process.

asv stores absolute times, which move with the machine's load; the ratio of two
times taken back to back in the same process moves much less, so a change in it
is the code's doing.  Each round times fastxent then NumPy; the value is the
median of the rounds' ratios.

The value is fastxent's time over NumPy's, the reciprocal of the bench table's
"vs numpy" (0.25: four times faster), because asv reads every number as smaller
is better: a slower fastxent then shows as a regression in ``asv continuous``,
``asv compare`` and the regressions page of ``asv publish``.
"""
from .common import ALL, DTYPES, THREADS, prepare
from fastxent import _workloads as workloads


class RatioToNumPy:
    params = [ALL, DTYPES, THREADS]
    param_names = ["workload", "dtype", "threads"]
    timeout = 600
    rounds_timed = 5                     # after a warm-up round

    def setup(self, workload, dtype, threads):
        function = workloads.get(workload).loss_function
        self.fastxent = prepare(function, workload, dtype, "fastxent", threads, return_grad=True)
        self.numpy = prepare(function, workload, dtype, "numpy", 1, return_grad=True)

    def track_loss_grad(self, workload, dtype, threads):
        """fastxent's time over NumPy's for the loss and its gradient."""
        return workloads.time_ratio(self.fastxent, self.numpy, self.rounds_timed)

    track_loss_grad.unit = "x NumPy's time"
