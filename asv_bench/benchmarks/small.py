"""Small calls (issue 19): one call of each public function on a small batch.

Logits (4, 3) and (64, 10) float64 with int64 targets, one thread, as
``python -m fastxent bench``'s ``small`` section times them
(``fastxent._bench_small``): fastxent as a user calls it, its NumPy twin, and
PyTorch on tensors made beforehand.  On inputs this small the Python layer is
the time, so a slower argument path shows here first.
"""
SHAPES = ["4x3", "64x10"]
CALLS = ["cross_entropy loss", "cross_entropy loss+grad", "bce_with_logits loss", "logsumexp",
         "softmax"]


class SmallCall:
    params = [SHAPES, CALLS, ["fastxent", "numpy", "torch"]]
    param_names = ["shape", "call", "impl"]

    def setup(self, shape, call, impl):
        try:
            from fastxent import _bench_small as small
        except ImportError:
            raise NotImplementedError("this fastxent has no small-call bench") from None
        import fastxent
        if impl == "torch":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("PyTorch is not installed") from None
            torch.set_num_threads(1)
        fastxent.set_num_threads(1)
        x, target, bin_target = small.make(tuple(int(s) for s in shape.split("x")))
        self.call = small.calls(impl, x, target, bin_target)[call]

    def time_small_call(self, shape, call, impl):
        self.call()
