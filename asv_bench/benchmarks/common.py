"""What the benchmark modules share: parameter values, the data, the calls.

Everything comes from ``fastxent._workloads`` of the installed fastxent, the same
definitions ``python -m fastxent bench`` uses.  Every benchmark has an ``impl``
parameter, "fastxent" or "numpy" (the plain-NumPy twin of the same function, on
the same data), so ``asv compare`` and the HTML show the two side by side.
Parameter combinations that do not exist are skipped (NotImplementedError in
``setup``): a workload in a dtype it is not defined in, NumPy at two threads (it
runs on one), a function this commit of fastxent does not have yet.
"""
import functools
import hashlib
import os
import tempfile

import numpy as np

from fastxent import _baseline
from fastxent import _workloads as workloads

DTYPES = ["float32", "float64"]
THREADS = [1, 2]
IMPLS = ["fastxent", "numpy"]
# The multi-class workloads small enough to sweep over every option; W3 (263 MB of
# logits) has benchmarks of its own.
MULTICLASS = ["W1", "W2", "W5"]
BINARY = ["W4"]
ALL = [wl.name for wl in workloads.WORKLOADS]


@functools.lru_cache(maxsize=1)
def data(workload, dtype, targets="indices", inputs="logits"):
    """The workload's (input, target), made once per benchmark process.

    asv runs every parameter combination in a process of its own and calls
    ``setup`` again before each timed sample: the in-process cache keeps that cheap,
    and a cache on disk (in the temp directory, named after a hash of the sources
    that make the data and of NumPy's version) saves making the same arrays for
    every combination.  ``np.load`` reads straight into the array, so a load needs
    no more memory than the data (the peakmem benchmarks rely on it).
    """
    key = [workload, dtype, targets, inputs, np.__version__]
    for module in (workloads, _baseline):
        with open(module.__file__, "rb") as f:
            key.append(hashlib.sha256(f.read()).hexdigest())
    stem = os.path.join(tempfile.gettempdir(), "fastxent-asv-data",
                        f"{workload}-{dtype}-{targets}-{inputs}-"
                        + hashlib.sha256(repr(key).encode()).hexdigest()[:16])
    try:
        return np.load(stem + "-input.npy"), np.load(stem + "-target.npy")
    except (OSError, ValueError):
        pass
    x, t = workloads.get(workload).make(dtype, targets=targets, inputs=inputs)
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    for name, a in (("-target.npy", t), ("-input.npy", x)):     # input last: it marks completion
        tmp = f"{stem}-{os.getpid()}.tmp.npy"
        np.save(tmp, a)
        os.replace(tmp, stem + name)
    return x, t


def prepare(function, workload, dtype, impl, threads, *, targets="indices", inputs="logits",
            **options):
    """The zero-argument call a benchmark times, or NotImplementedError to skip it."""
    wl = workloads.get(workload)
    if dtype not in wl.dtypes:
        raise NotImplementedError(f"{workload} is defined in {', '.join(wl.dtypes)} only")
    if impl == "numpy" and threads != 1:
        raise NotImplementedError("the NumPy baseline runs on one thread")
    if impl == "fastxent" and not workloads.available(function):
        raise NotImplementedError(f"this fastxent has no {function}")
    x, t = data(workload, dtype, targets, inputs)
    return workloads.runner(impl, function, wl, x, t, n_threads=threads, **options)


class _LossPair:
    """``time_loss`` and ``time_loss_grad`` of one loss function: a subclass sets
    ``params`` and calls ``prepare_pair`` from its ``setup``."""

    def prepare_pair(self, function, workload, dtype, reduction, threads, impl, **options):
        args = (function, workload, dtype, impl, threads)
        self.loss = prepare(*args, reduction=reduction, **options)
        self.loss_grad = prepare(*args, reduction=reduction, return_grad=True, **options)

    def time_loss(self, *params):
        self.loss()

    def time_loss_grad(self, *params):
        self.loss_grad()
