"""scikit-learn's own tests of its multinomial and binomial losses, run on fastxent.

``sklearn/_loss/tests/test_loss.py`` is imported from the installed scikit-learn
(nothing is copied here).  Its cases that map onto fastxent are those of
``HalfMultinomialLoss`` (cross-entropy of logits, class labels as floats) and
``HalfBinomialLoss`` (binary cross-entropy of logits).  In them, the loss object
is replaced by a twin whose ``loss``, ``loss_gradient``, ``gradient``,
``gradient_hessian``, ``gradient_proba`` (and multinomial ``predict_proba``)
compute with fastxent, through sklearn's own wrappers (output allocation,
``(n, 1)`` squeezing); everything else (link functions, intercepts, intervals)
stays sklearn's.  sklearn's assertions then judge fastxent: against finite
differences, against specific values (mpmath), between methods, and directly
against sklearn's own Cython loss (``loss.closs``, which the twin keeps).

Sample weights and Hessians go to fastxent's ``sample_weight=`` and
``return_hessian=``.  A case that never reaches fastxent (it exercises only
sklearn's own machinery) counts as unsupported with that reason.
"""
from __future__ import annotations

import contextlib
import inspect

import numpy as np
import pytest

from peer_tally import TALLY, Differs, Unsupported, parametrizations, run_case

sklearn = pytest.importorskip("sklearn")
peer = pytest.importorskip("sklearn._loss.tests.test_loss")
from sklearn._loss import loss as sk_loss  # noqa: E402

import fastxent as fx  # noqa: E402

SOURCE = "sklearn"
TALLY.versions[SOURCE] = sklearn.__version__


class Calls:
    """How many times the twins reached fastxent in the current case."""
    n = 0


# ---- fastxent behind sklearn's Cython loss interface (closs) -------------------------

def _sample_weight(sample_weight) -> dict:
    return {} if sample_weight is None else {"sample_weight": sample_weight}


def _fastxent(fn, *args, **kwargs):
    """One fastxent call; a refused negative sample weight is the documented difference."""
    Calls.n += 1
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        sw = kwargs.get("sample_weight")
        if sw is not None and np.any(np.asarray(sw) < 0) and "sample_weight" in str(e):
            raise Differs("negative-sample-weight") from e
        raise


def _store(out, value):
    np.copyto(out, value, casting="unsafe" if out.dtype != value.dtype else "same_kind")
    return out


class _FastxentCLoss:
    """sklearn's closs interface (every output given), computed by fastxent.

    ``_call(raw, y, sw, n_threads, **options)`` is the one fastxent call: the
    per-sample loss (``reduction="none"``), with the gradient and Hessian of
    their sum where asked for."""

    def loss(self, y_true, raw_prediction, sample_weight, loss_out, n_threads=1):
        _store(loss_out, self._call(raw_prediction, y_true, sample_weight, n_threads))

    def loss_gradient(self, y_true, raw_prediction, sample_weight, loss_out, gradient_out,
                      n_threads=1):
        loss, grad = self._call(raw_prediction, y_true, sample_weight, n_threads, return_grad=True)
        _store(loss_out, loss)
        _store(gradient_out, grad)

    def gradient(self, y_true, raw_prediction, sample_weight, gradient_out, n_threads=1):
        _store(gradient_out, self._call(raw_prediction, y_true, sample_weight, n_threads,
                                        return_grad=True)[1])

    def gradient_hessian(self, y_true, raw_prediction, sample_weight, gradient_out, hessian_out,
                         n_threads=1):
        _, grad, hess = self._call(raw_prediction, y_true, sample_weight, n_threads,
                                   return_grad=True, return_hessian=True)
        _store(gradient_out, grad)
        _store(hessian_out, hess)


class _MultinomialCLoss(_FastxentCLoss):
    @staticmethod
    def _call(raw, y_true, sample_weight, n_threads, **options):
        labels = np.asarray(y_true)
        if not np.array_equal(labels, np.round(labels)):
            raise AssertionError("HalfMultinomialLoss's labels must be whole numbers")
        return _fastxent(fx.cross_entropy, raw, labels.astype(np.int64), axis=1, reduction="none",
                         n_threads=n_threads, **_sample_weight(sample_weight), **options)

    def gradient_proba(self, y_true, raw_prediction, sample_weight, gradient_out, proba_out,
                       n_threads=1):
        self.gradient(y_true, raw_prediction, sample_weight, gradient_out, n_threads)
        Calls.n += 1
        _store(proba_out, fx.softmax(raw_prediction, axis=1, n_threads=n_threads))


class _BinomialCLoss(_FastxentCLoss):
    @staticmethod
    def _call(raw, y_true, sample_weight, n_threads, **options):
        target = np.asarray(y_true, dtype=np.asarray(raw).dtype)
        return _fastxent(fx.binary_cross_entropy_with_logits, raw, target, reduction="none",
                         n_threads=n_threads, **_sample_weight(sample_weight), **options)


class _Twin:
    """sklearn's loss class with fastxent doing the arithmetic: each method runs
    sklearn's own wrapper with ``closs`` pointing at fastxent for the call."""

    _fastxent_closs: _FastxentCLoss

    @contextlib.contextmanager
    def _on_fastxent(self):
        sklearn_closs, self.closs = self.closs, self._fastxent_closs
        try:
            yield
        finally:
            self.closs = sklearn_closs

    def loss(self, *args, **kwargs):
        with self._on_fastxent():
            return super().loss(*args, **kwargs)

    def loss_gradient(self, *args, **kwargs):
        with self._on_fastxent():
            return super().loss_gradient(*args, **kwargs)

    def gradient(self, *args, **kwargs):
        with self._on_fastxent():
            return super().gradient(*args, **kwargs)

    def gradient_hessian(self, *args, **kwargs):
        with self._on_fastxent():
            return super().gradient_hessian(*args, **kwargs)


class FastxentHalfMultinomialLoss(_Twin, sk_loss.HalfMultinomialLoss):
    _fastxent_closs = _MultinomialCLoss()

    def gradient_proba(self, *args, **kwargs):
        with self._on_fastxent():
            return super().gradient_proba(*args, **kwargs)

    def predict_proba(self, raw_prediction):
        Calls.n += 1
        return fx.softmax(raw_prediction, axis=1)


class FastxentHalfBinomialLoss(_Twin, sk_loss.HalfBinomialLoss):
    _fastxent_closs = _BinomialCLoss()


TWINS = {sk_loss.HalfMultinomialLoss: FastxentHalfMultinomialLoss,
         sk_loss.HalfBinomialLoss: FastxentHalfBinomialLoss}


def _twin_value(value):
    """A parameter value with sklearn's loss (instance or class) replaced by its
    twin; None where the value is another loss (the case does not map)."""
    if isinstance(value, type) and issubclass(value, sk_loss.BaseLoss):
        return TWINS.get(value)
    if isinstance(value, sk_loss.BaseLoss):
        twin = TWINS.get(type(value))
        if twin is None:
            return None
        return twin(n_classes=value.n_classes) if twin is FastxentHalfMultinomialLoss else twin()
    return value


# ---- collecting sklearn's cases -------------------------------------------------------

FIXTURES = {"global_random_seed": 42, "global_dtype": np.float64}
LOSS_NAMES = {"HalfMultinomialLoss", "HalfBinomialLoss", "_LOSSES"}


def collect():
    cases = []
    for name, func in vars(peer).items():
        if not (name.startswith("test_") and inspect.isfunction(func)):
            continue
        refers = bool(LOSS_NAMES & set(func.__code__.co_names))
        for label, params in parametrizations(func):
            losses = [v for v in params.values()
                      if isinstance(v, sk_loss.BaseLoss) or
                      (isinstance(v, type) and issubclass(v, sk_loss.BaseLoss))]
            if losses:
                if any(_twin_value(v) is None for v in losses):
                    continue                        # a loss fastxent does not compute
            elif not (refers and all(isinstance(v, (str, int, float, type(None), np.ndarray, tuple,
                                                     type)) for v in params.values())):
                continue
            if "loss" in params and isinstance(params["loss"], str) and \
                    params["loss"] not in ("binomial_loss", "multinomial_loss"):
                continue                            # _LOSSES[name] of another loss
            cases.append((f"{name}" + (f"[{label}]" if label else ""), func, params))
    return cases


CASES = collect()
LOSSES_TWINNED = {**peer._LOSSES, "binomial_loss": FastxentHalfBinomialLoss,
                  "multinomial_loss": FastxentHalfMultinomialLoss}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_sklearn_case(case, monkeypatch):
    case_id, func, params = case
    monkeypatch.setattr(peer, "HalfMultinomialLoss", FastxentHalfMultinomialLoss)
    monkeypatch.setattr(peer, "HalfBinomialLoss", FastxentHalfBinomialLoss)
    monkeypatch.setattr(peer, "_LOSSES", LOSSES_TWINNED)
    Calls.n = 0

    def run():
        kwargs = {k: _twin_value(v) for k, v in params.items()}
        for arg in inspect.signature(func).parameters:
            if arg in FIXTURES and arg not in kwargs:
                kwargs[arg] = FIXTURES[arg]
        func(**kwargs)
        if Calls.n == 0:
            raise Unsupported(f"does not reach fastxent (exercises sklearn's own {func.__name__})")

    run_case(SOURCE, case_id, run)
