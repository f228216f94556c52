"""The framework adapters against each framework's own loss, on W1 (8192 x 1000).

TorchForwardBackward: ``fastxent.torch.cross_entropy`` against
``torch.nn.functional.cross_entropy``, forward and ``backward()`` on CPU tensors.
JaxValueAndGrad: ``jax.value_and_grad`` of the mean cross-entropy under
``jax.jit``, through ``fastxent.jax`` (its default callback, and
``jax.pure_callback``) against optax, and fastxent called directly on NumPy
arrays.  Skipped where the peer library is not installed.
"""
from .common import THREADS, data
from fastxent import _workloads as workloads


def _need(module):
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        raise NotImplementedError(f"{module} is not installed") from None


class TorchForwardBackward:
    params = [["W1"], ["float32", "float64"], THREADS, ["fastxent.torch", "torch"]]
    param_names = ["workload", "dtype", "threads", "impl"]

    def setup(self, workload, dtype, threads, impl):
        _need("torch")
        import torch
        wl = workloads.get(workload)
        x, t = data(workload, dtype)
        torch.set_num_threads(threads)        # torch's own, and OpenMP's (fastxent's default)
        if impl == "torch":
            self.call = workloads.torch_runner(wl.loss_function, wl, x, t, return_grad=True)
        else:
            self.call = workloads.runner("fastxent.torch", wl.loss_function, wl, x, t,
                                         return_grad=True, n_threads=threads)

    def time_forward_backward(self, *params):
        self.call()


class JaxValueAndGrad:
    params = [["W1"], ["float32"], list(workloads.JAX_IMPLS)]
    param_names = ["workload", "dtype", "impl"]

    def setup(self, workload, dtype, impl):
        _need("jax")
        if impl == "optax":
            _need("optax")
        x, t = data(workload, dtype)
        self.call = workloads.jax_value_and_grad_runner(impl, workloads.get(workload), x, t)
        self.call()                           # compiled before timing

    def time_value_and_grad(self, *params):
        self.call()
