"""Second order (issue 12): the loss, gradient and diagonal Hessian from one call,
and the Hessian-vector product, on W1, W2 (cross_entropy) and W4
(binary_cross_entropy_with_logits).

impl "fastxent" runs where this fastxent has them (``return_hessian=`` in the
loss's signature, ``cross_entropy_hvp``; skipped otherwise), "numpy" the NumPy
twins of ``fastxent._baseline`` (one thread), "sklearn" ``sklearn._loss``'s
``gradient_hessian`` (no loss; no Hessian-vector product).
"""
from .common import DTYPES, THREADS, data
from fastxent import _workloads as workloads

OPS = ["loss+grad+hess", "hvp"]


class SecondOrder:
    params = [["W1", "W2", "W4"], DTYPES, OPS, THREADS, ["fastxent", "numpy", "sklearn"]]
    param_names = ["workload", "dtype", "op", "threads", "impl"]
    timeout = 600

    def setup(self, workload, dtype, op, threads, impl):
        wl = workloads.get(workload)
        if dtype not in wl.dtypes:
            raise NotImplementedError(f"{workload} is defined in {', '.join(wl.dtypes)} only")
        if op not in getattr(wl, "ops", ()) or not hasattr(workloads, "op_available"):
            raise NotImplementedError(f"no {op} for {workload} in this fastxent's bench")
        if impl == "fastxent" and not workloads.op_available(wl, op):
            raise NotImplementedError(f"this fastxent has no {op}")
        if impl == "numpy" and threads != 1:
            raise NotImplementedError("the NumPy baseline runs on one thread")
        x, t = data(workload, dtype)
        v = wl.vector(dtype) if op == "hvp" else None
        function, grad, hess = workloads.OPS[op]
        if impl == "sklearn":
            try:
                from fastxent import _peers
                self.call = _peers.peer_call("sklearn", op, wl, x, t, n_threads=threads, v=v)
            except ImportError:
                self.call = None
            if self.call is None:
                raise NotImplementedError(f"sklearn._loss has no {op} here")
        else:
            self.call = workloads.runner(impl, wl.function(op), wl, x, t, return_grad=grad,
                                         return_hessian=hess, v=v, n_threads=threads)

    def time_second_order(self, *params):
        self.call()
