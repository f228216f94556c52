"""More of the family (issue 16) against their NumPy twins: distillation_loss on W1
(the workload's logits as the student's, the teacher's those of the previous
sample, T = 2) and sigmoid_focal_loss on W4 (torchvision's defaults, alpha 0.25
and gamma 2), each the loss alone and the loss with its gradient.

The options and the teacher's logits come from ``fastxent._workloads``
(``FAMILY_OPTIONS``, ``teacher_logits``): what ``python -m fastxent bench``
times in its distill and focal rows.
"""
from .common import DTYPES, IMPLS, THREADS
from .common import _LossPair


class DistillationLoss(_LossPair):
    params = [["W1"], DTYPES, ["batchmean", "none"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "reduction", "threads", "impl"]

    def setup(self, workload, dtype, reduction, threads, impl):
        self.prepare_pair("distillation_loss", workload, dtype, reduction, threads, impl)


class SigmoidFocalLoss(_LossPair):
    params = [["W4"], DTYPES, ["mean", "none"], THREADS, IMPLS]
    param_names = ["workload", "dtype", "reduction", "threads", "impl"]

    def setup(self, workload, dtype, reduction, threads, impl):
        self.prepare_pair("sigmoid_focal_loss", workload, dtype, reduction, threads, impl)
