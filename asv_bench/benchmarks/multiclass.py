"""cross_entropy, nll_loss, logsumexp, softmax and log_softmax against their NumPy twins."""
from .common import DTYPES, IMPLS, MULTICLASS, THREADS, prepare
from .common import _LossPair


class CrossEntropy(_LossPair):
    """The loss alone, and the loss with its gradient from the fused pass."""
    params = [MULTICLASS, DTYPES, ["mean", "none"], ["indices", "probabilities"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "reduction", "targets", "threads", "impl"]

    def setup(self, workload, dtype, reduction, targets, threads, impl):
        self.prepare_pair("cross_entropy", workload, dtype, reduction, threads, impl,
                          targets=targets)


class CrossEntropyVocab:
    """W3, an LLM's vocabulary (512 x 128256 float32, 263 MB): one training step's
    loss and gradient.  Big, so only the case that matters."""
    params = [["W3"], ["float32"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "threads", "impl"]
    timeout = 600

    def setup(self, workload, dtype, threads, impl):
        self.loss_grad = prepare("cross_entropy", workload, dtype, impl, threads, return_grad=True)

    def time_loss_grad(self, *params):
        self.loss_grad()


class NLLLoss(_LossPair):
    """nll_loss of log-probabilities (log_softmax of the workload's logits).  It only
    gathers one value per sample, so the reductions are not swept here."""
    params = [MULTICLASS, DTYPES, THREADS, IMPLS]
    param_names = ["workload", "dtype", "threads", "impl"]

    def setup(self, workload, dtype, threads, impl):
        self.prepare_pair("nll_loss", workload, dtype, "mean", threads, impl,
                          inputs="log-probabilities")


class Normalizers:
    """logsumexp, softmax and log_softmax along the workload's class axis."""
    params = [MULTICLASS, DTYPES, THREADS, IMPLS]
    param_names = ["workload", "dtype", "threads", "impl"]

    def setup(self, workload, dtype, threads, impl):
        self.calls = {f: prepare(f, workload, dtype, impl, threads)
                      for f in ("logsumexp", "softmax", "log_softmax")}

    def time_logsumexp(self, *params):
        self.calls["logsumexp"]()

    def time_softmax(self, *params):
        self.calls["softmax"]()

    def time_log_softmax(self, *params):
        self.calls["log_softmax"]()
