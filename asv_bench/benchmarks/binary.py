"""binary_cross_entropy_with_logits and binary_cross_entropy against their NumPy twins."""
from .common import BINARY, DTYPES, IMPLS, THREADS
from .common import _LossPair


class BinaryCrossEntropyWithLogits(_LossPair):
    params = [BINARY, DTYPES, ["mean", "none"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "reduction", "threads", "impl"]

    def setup(self, workload, dtype, reduction, threads, impl):
        self.prepare_pair("binary_cross_entropy_with_logits", workload, dtype, reduction,
                          threads, impl)


class BinaryCrossEntropy(_LossPair):
    """On probabilities: the sigmoid of the workload's logits."""
    params = [BINARY, DTYPES, ["mean", "none"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "reduction", "threads", "impl"]

    def setup(self, workload, dtype, reduction, threads, impl):
        self.prepare_pair("binary_cross_entropy", workload, dtype, reduction, threads, impl,
                          inputs="probabilities")
