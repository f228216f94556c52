"""PyTorch's own test definitions of fastxent's functions, run on fastxent.

Collected from the installed torch at test time (nothing copied here):

- OpInfo (``common_methods_invocations.op_db``): every sample of
  ``op.sample_inputs`` (``op.reference_inputs`` where the op has them: its
  samples plus regression cases) for cross_entropy, nll_loss, binary_cross_entropy(_with_logits),
  softmax, log_softmax (with their ``with_dtype`` variants) and logsumexp, in each
  dtype the OpInfo declares for the CPU;
- ModuleInfo (``common_modules.module_db``): every module input of CrossEntropyLoss,
  NLLLoss, BCELoss, BCEWithLogitsLoss (through fastxent's loss classes), Softmax
  and LogSoftmax, and the modules' error inputs;
- common_nn: the criterion and module test entries of those functions.

Each case runs on fastxent and is compared with PyTorch itself evaluated on a
float64 copy of the same values: value, shape and dtype of the result and, for
the losses, the gradient with respect to the input against autograd, with a
random ``grad_output`` (fastxent has no gradient for softmax, log_softmax and
logsumexp; those are compared forward).  Tolerances are tests/helpers.py's for
the case's dtype.
"""
from __future__ import annotations

import inspect
import warnings
import zlib

import numpy as np
import pytest

from peer_tally import TALLY, Differs, Unsupported, run_case

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")          # torch.testing._internal imports it

import fastxent as fx  # noqa: E402
from helpers import GRAD_ATOL, RTOL, assert_close, assert_grad_close  # noqa: E402


def _import_torch_testing():
    """torch.testing._internal, without the hypothesis profile its common_utils
    loads at import (fastxent's property tests keep their own settings)."""
    try:
        import hypothesis
    except ImportError:
        hypothesis = None
    if hypothesis is not None:
        hypothesis.settings.register_profile("fastxent-before-torch",
                                             parent=hypothesis.settings.default)
    try:
        from torch.testing._internal import common_methods_invocations, common_modules, common_nn
        from torch.testing._internal.common_utils import set_default_dtype
    finally:
        if hypothesis is not None:
            hypothesis.settings.load_profile("fastxent-before-torch")
    return common_methods_invocations.op_db, common_modules.module_db, common_nn, set_default_dtype


op_db, module_db, common_nn, set_default_dtype = _import_torch_testing()

F = torch.nn.functional
SOURCE = "torch"
TALLY.versions[SOURCE] = torch.__version__.split("+")[0]


# ---- PyTorch's functions, as calls fastxent can answer ------------------------------
# Signatures of the torch functions (torch.softmax and friends are builtins, so
# they are written out); a call is bound to them to read its arguments by name.

def _cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                   reduce=None, reduction="mean", label_smoothing=0.0): ...
def _nll_loss(input, target, weight=None, size_average=None, ignore_index=-100,
              reduce=None, reduction="mean"): ...
def _binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                          reduction="mean"): ...
def _binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                      reduce=None, reduction="mean", pos_weight=None): ...
def _softmax(input, dim=None, _stacklevel=3, dtype=None): ...
def _logsumexp(input, dim, keepdim=False): ...


SIGNATURES = {"cross_entropy": _cross_entropy, "nll_loss": _nll_loss,
              "binary_cross_entropy": _binary_cross_entropy,
              "binary_cross_entropy_with_logits": _binary_cross_entropy_with_logits,
              "softmax": _softmax, "log_softmax": _softmax, "logsumexp": _logsumexp}
LOSSES = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits")
LOSS_OPTIONS = ("weight", "ignore_index", "reduction", "label_smoothing", "pos_weight")
TORCH_FNS = {name: getattr(F, name) for name in SIGNATURES if name != "logsumexp"}
TORCH_FNS["logsumexp"] = torch.logsumexp
# fastxent's loss classes and the torch modules they mirror
MODULES = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "BCELoss": "binary_cross_entropy",
           "BCEWithLogitsLoss": "binary_cross_entropy_with_logits", "Softmax": "softmax",
           "LogSoftmax": "log_softmax"}


def bind(fn: str, args, kwargs) -> dict:
    return dict(inspect.signature(SIGNATURES[fn]).bind(*args, **kwargs).arguments)


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            raise Unsupported("bfloat16 (NumPy has no bfloat16 dtype)")
        return value.detach().resolve_conj().resolve_neg().numpy()
    return value


class Call:
    """One call of a torch function (``fn`` with its bound arguments ``args``),
    and how fastxent answers it: its function, or ``module`` (a fastxent loss
    class built from the torch module's options)."""

    def __init__(self, fn: str, args: dict, module: str | None = None):
        self.fn, self.args, self.module = fn, args, module

    @property
    def input(self):
        return self.args["input"]

    def check_supported(self):
        a = self.args
        if a.get("size_average") is not None or a.get("reduce") is not None:
            raise Unsupported("PyTorch's deprecated size_average/reduce arguments")
        x = self.input
        if x.dtype == torch.bfloat16:
            raise Unsupported("bfloat16 (NumPy has no bfloat16 dtype)")
        if x.dtype == torch.complex32:
            raise Unsupported("complex32 input (NumPy has no complex32 dtype)")
        if x.is_complex():
            if self.fn in ("softmax", "log_softmax", "logsumexp"):
                with pytest.raises(TypeError, match="complex"):
                    getattr(fx, self.fn)(to_numpy(x))
            raise Unsupported("complex input (fastxent refuses it with a TypeError)")
        if self.fn in ("softmax", "log_softmax") and a.get("dim") is None:
            raise Unsupported("dim=None (PyTorch's deprecated implicit softmax dim)")

    def fastxent(self, x: np.ndarray, **grad):
        """fastxent's answer for input ``x``; ``grad``: return_grad and grad_output."""
        a = self.args
        if self.fn in LOSSES:
            opts = {k: to_numpy(a[k]) for k in LOSS_OPTIONS if k in a and a[k] is not None}
            target = to_numpy(a["target"])
            if self.module is not None:
                weight = opts.pop("weight", None)
                return getattr(fx, self.module)(weight, **opts)(x, target, **grad)
            return getattr(fx, self.fn)(x, target, **opts, **grad)
        if self.fn == "logsumexp":
            dim = a["dim"]
            axis = tuple(dim) if isinstance(dim, (list, tuple)) else dim
            return fx.logsumexp(x, axis=axis, keepdims=bool(a["keepdim"]))
        dtype = a.get("dtype")
        if dtype is not None:   # torch casts the input to dtype first
            want = torch.empty(0, dtype=dtype).numpy().dtype
            if not (x.dtype.kind in "iub" and want == np.float64):  # fastxent does this one itself
                x = x.astype(want)
        return getattr(fx, self.fn)(x, axis=a["dim"])

    def torch_float64(self, neutral=False):
        """PyTorch on a float64 copy: ``(output, input)`` with the input requiring
        grad.  ``neutral``: the input replaced by the point where every class is
        equally likely (logits 0, probabilities 1/2)."""
        args = {k: (v.detach().to(torch.float64) if isinstance(v, torch.Tensor) and
                    (v.is_floating_point() or k == "input") else v)
                for k, v in self.args.items() if k != "_stacklevel"}
        if args.get("dtype") is not None:
            args["dtype"] = torch.float64
        if neutral:
            args["input"] = torch.full_like(args["input"], 0.5 if self.fn == "binary_cross_entropy"
                                            else 0.0)
        args["input"] = args["input"].clone().requires_grad_(self.fn in LOSSES)
        return TORCH_FNS[self.fn](**args), args["input"]

    def gradient_scale(self, go: torch.Tensor) -> float:
        """The size of the terms a gradient entry is the difference of (grad_output
        times weights times the mean's scale; ``p - 1`` cancels where ``p`` is
        near 1): the largest gradient entry at the neutral input, where no term
        is small.  Rounding errors of a gradient are relative to it."""
        out, x0 = self.torch_float64(neutral=True)
        (g0,) = torch.autograd.grad(out, x0, go)
        finite = g0[torch.isfinite(g0)]
        return float(finite.abs().max()) if finite.numel() else 0.0

    def expected_dtype(self):
        x = self.input
        if self.args.get("dtype") is not None:
            return torch.empty(0, dtype=self.args["dtype"]).numpy().dtype
        if x.is_floating_point():
            return to_numpy(x[:0] if x.ndim else x.reshape(1)[:0]).dtype
        return np.dtype(np.float64)       # integer and bool input: SciPy's float64


def check_call(call: Call, case_id: str):
    """Compare fastxent with PyTorch on one call (see the module docstring)."""
    call.check_supported()
    x = to_numpy(call.input)
    dtype = call.expected_dtype()
    ref, ref_input = call.torch_float64()
    differs = None
    if call.fn in LOSSES and call.input.requires_grad:
        rng = np.random.default_rng(zlib.crc32(case_id.encode()))
        go = rng.uniform(0.5, 2.0, size=tuple(ref.shape))
        got, grad = call.fastxent(x, return_grad=True,
                                  grad_output=go if go.ndim else float(go))
        go = torch.from_numpy(np.asarray(go))
        (ref_grad,) = torch.autograd.grad(ref, ref_input, go)
        assert grad.dtype == x.dtype and grad.shape == x.shape
        ref_grad = ref_grad.numpy()
        finite = np.abs(ref_grad[np.isfinite(ref_grad)])
        scale = max(float(finite.max()) if finite.size else 0.0, call.gradient_scale(go))
        assert_close(grad, ref_grad, rtol=RTOL[dtype], atol=GRAD_ATOL[dtype] * scale,
                     err_msg="gradient")
    else:
        got = call.fastxent(x)
    ref = ref.detach().numpy()
    if call.fn == "logsumexp" and call.input.ndim == 0 and call.args["keepdim"]:
        # SciPy's convention: a 0-d input counts as 1-d (torch: shape ())
        assert np.shape(got) == (1,), np.shape(got)
        got, differs = np.asarray(got).reshape(()), Differs("lse-zero-dim-keepdims-shape")
    assert np.shape(got) == ref.shape, f"shape {np.shape(got)} != torch's {ref.shape}"
    assert np.asarray(got).dtype == dtype, f"dtype {np.asarray(got).dtype} != {dtype}"
    assert_grad_close(got, ref, dtype)
    if not call.input.is_floating_point() and call.fn == "logsumexp":
        differs = Differs("integer-input-float64")   # torch gives its default dtype, float32
    if differs:
        raise differs


# ---- collecting PyTorch's cases ---------------------------------------------------

OPS = {("nn.functional.cross_entropy", ""): "cross_entropy",
       ("nn.functional.nll_loss", ""): "nll_loss",
       ("nn.functional.binary_cross_entropy", ""): "binary_cross_entropy",
       ("nn.functional.binary_cross_entropy_with_logits", ""): "binary_cross_entropy_with_logits",
       ("softmax", ""): "softmax", ("softmax", "with_dtype"): "softmax",
       ("log_softmax", ""): "log_softmax", ("log_softmax", "with_dtype"): "log_softmax",
       ("logsumexp", ""): "logsumexp"}


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def opinfo_cases():
    cases = []
    for op in op_db:
        fn = OPS.get((op.name, op.variant_test_name))
        if fn is None:
            continue
        name = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
        for dtype in sorted(op.supported_dtypes("cpu"), key=str):
            grad = dtype.is_floating_point and op.supports_autograd
            with warnings.catch_warnings(), torch.random.fork_rng():
                warnings.simplefilter("ignore", UserWarning)    # "ComplexHalf ... experimental"
                torch.manual_seed(zlib.crc32(f"{name}/{dtype}".encode()))
                # reference_inputs: sample_inputs and the op's regression cases
                inputs = op.reference_inputs if op.reference_inputs_func else op.sample_inputs
                samples = list(inputs("cpu", dtype, requires_grad=grad))
            for i, s in enumerate(samples):
                call = Call(fn, bind(fn, (s.input, *s.args), s.kwargs))
                cases.append((f"OpInfo/{name}/{_dtype_name(dtype)}/{i}", call))
    return cases


def moduleinfo_cases():
    cases = []
    for info in module_db:
        name = info.module_cls.__name__
        fn = MODULES.get(name)
        if fn is None:
            continue
        sig = inspect.signature(info.module_cls)
        for dtype in sorted(info.dtypes, key=str):
            with torch.random.fork_rng():
                torch.manual_seed(zlib.crc32(f"{name}/{dtype}".encode()))
                inputs = info.module_inputs_func(info, device="cpu", dtype=dtype,
                                                 requires_grad=True, training=True)
            for i, mi in enumerate(inputs):
                opts = dict(sig.bind(*mi.constructor_input.args, **mi.constructor_input.kwargs).arguments)
                fwd = mi.forward_input
                if fn in LOSSES:
                    call = Call(fn, bind(fn, fwd.args, {**opts, **fwd.kwargs}), module=name)
                else:
                    call = Call(fn, bind(fn, fwd.args, {**fwd.kwargs, "dim": opts["dim"]}))
                cases.append((f"ModuleInfo/{name}/{_dtype_name(dtype)}/{mi.desc or i}", call))
            if info.module_error_inputs_func is not None and fn in LOSSES:
                errs = info.module_error_inputs_func(info, device="cpu", dtype=dtype,
                                                     requires_grad=False, training=True)
                for i, e in enumerate(errs):
                    mi = e.module_error_input
                    opts = dict(sig.bind(*mi.constructor_input.args,
                                         **mi.constructor_input.kwargs).arguments)
                    call = Call(fn, bind(fn, mi.forward_input.args, {**opts, **mi.forward_input.kwargs}),
                                module=name)
                    cases.append((f"ModuleInfo/{name}/{_dtype_name(dtype)}/error{i}", ErrorCase(call, e)))
    return cases


class ErrorCase:
    """A module error input: PyTorch raises; fastxent must refuse too (TypeError or
    ValueError), unless DIFFERENCES.md says it deliberately accepts the input."""

    def __init__(self, call, error):
        self.call, self.error = call, error

    def check(self, case_id):
        call = self.call
        try:
            call.fastxent(to_numpy(call.input))
        except (TypeError, ValueError):
            return
        # fastxent answered: only as DIFFERENCES.md says, and then with PyTorch's
        # value for the input as fastxent reads it
        args, target = dict(call.args), call.args["target"]
        w = args.get("weight")
        if isinstance(w, torch.Tensor) and w.dtype != call.input.dtype and w.is_floating_point():
            args["weight"], differs = w.to(call.input.dtype), Differs("weight-dtype-converted")
        elif target.is_floating_point() and args.get("ignore_index", -100) != -100:
            args["ignore_index"], differs = -100, Differs("ignore-index-with-probabilities")
        else:
            raise AssertionError(f"fastxent accepted what PyTorch refuses with "
                                 f"{self.error.error_type.__name__}: {self.error.error_regex}")
        check_call(Call(call.fn, args, call.module), case_id)
        raise differs


# common_nn: the module and criterion entries of fastxent's functions.  The entry's
# module is run once with the torch.nn.functional function it calls watched, so
# that a functional wrapper (common_nn's wrap_functional) is read exactly.

COMMON_NN_NAMES = ("CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "softmax",
                   "log_softmax", "Softmax", "LogSoftmax")


def _common_nn_entries():
    with torch.random.fork_rng():          # the entries hold some random tensors
        torch.manual_seed(0)
        new_module_tests = common_nn.get_new_module_tests()
    entries = [("criterion", e) for e in common_nn.criterion_tests]
    entries += [("module", e) for e in common_nn.module_tests + new_module_tests]
    chosen = []
    for kind, e in entries:
        name = e.get("fullname") or e.get("module_name") or ""
        if name.startswith(COMMON_NN_NAMES) and not name.startswith(("Softmax2d", "Softmin")):
            chosen.append((kind, name, e))
    return chosen


def _watched_call(module, inputs, monkeypatch_ctx):
    """The calls of fastxent's functions that running ``module`` makes:
    ``[(name, args, kwargs)]``."""
    # common_nn's wrap_functional(fn, **kwargs) holds fn and kwargs in a closure
    fwd = type(module).forward
    free = dict(zip(fwd.__code__.co_freevars, (c.cell_contents for c in fwd.__closure__ or ())))
    for fn, original in TORCH_FNS.items():
        if free.get("fn") is original:
            return [(fn, tuple(inputs), dict(free.get("kwargs", {})))]
    # anything else (a module, a lambda calling F.<fn>): watch torch.nn.functional
    seen = []
    for fn in SIGNATURES:
        original = TORCH_FNS[fn] if fn != "logsumexp" else None
        if original is None:
            continue

        def spy(*args, _fn=fn, _original=original, **kwargs):
            seen.append((_fn, args, kwargs))
            return _original(*args, **kwargs)
        monkeypatch_ctx.setattr(F, fn, spy)
    module(*inputs)
    return seen


def common_nn_cases():
    cases = []
    for kind, name, entry in _common_nn_entries():
        cases.append((f"common_nn/{name}", (kind, entry)))
    return cases


def common_nn_call(kind, entry):
    test_cls = common_nn.CriterionTest if kind == "criterion" else common_nn.NewModuleTest
    t = test_cls(**entry)
    dtype = getattr(t, "default_dtype", None) or entry.get("default_dtype") or torch.get_default_dtype()
    with set_default_dtype(dtype), torch.random.fork_rng():
        torch.manual_seed(zlib.crc32(t.get_name().encode()))
        module = t.constructor(*t.constructor_args)
        inputs = [t._get_input()]
        if kind == "criterion":
            inputs.append(t._get_target())
        inputs = [v.detach().requires_grad_(v.is_floating_point() and i == 0) if
                  isinstance(v, torch.Tensor) else v for i, v in enumerate(inputs)]
        with pytest.MonkeyPatch.context() as mp:
            seen = _watched_call(module, inputs, mp)
    if len(seen) != 1:
        raise AssertionError(f"expected one call of fastxent's functions, saw {[s[0] for s in seen]}")
    fn, args, kwargs = seen[0]
    torch_name = type(module).__name__
    return Call(fn, bind(fn, args, kwargs), module=torch_name if torch_name in MODULES and fn in LOSSES
                else None)


CASES = opinfo_cases() + moduleinfo_cases() + common_nn_cases()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_torch_case(case):
    case_id, what = case

    def run():
        if isinstance(what, ErrorCase):
            what.check(case_id)
        elif isinstance(what, tuple):
            check_call(common_nn_call(*what), case_id)
        else:
            check_call(what, case_id)

    with np.errstate(all="ignore"):
        run_case(SOURCE, case_id, run)
