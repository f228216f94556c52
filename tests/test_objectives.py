"""fastxent.objectives (issue 12 item 4): boosting objectives and their adapters.

Unit tests: the gradient and Hessian of softmax_objective and
logistic_objective against the float64 oracle (tests/reference.py) and against
finite differences; label handling (float labels holding class indices),
sample weights, Hessian factors, memory layouts, argument errors; the adapters'
two calling conventions with stand-in training sets.  Integration tests: the
real XGBoost and LightGBM, native ``train`` and scikit-learn wrappers, whose
models with fastxent's objective must equal the built-in objective's (skipped
only where the library is not installed).
"""
from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastxent
import reference as ref
from fastxent import objectives as fo
from helpers import assert_grad_close

DTYPES = [np.float64, np.float32]


def _multiclass(rng, n=40, K=5, dtype=np.float64, scale=3.0):
    raw = (scale * rng.standard_normal((n, K))).astype(dtype)
    labels = rng.integers(0, K, n)
    return raw, labels


def _oracle_softmax(raw, labels, sw, factor):
    _, grad, hess = ref.cross_entropy(raw.astype(np.float64), np.asarray(labels, np.int64),
                                      reduction="sum", return_grad=True, return_hessian=True,
                                      sample_weight=sw)
    return grad, factor * hess


# ----------------------------------------------------------------------------
# softmax_objective: values
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("factor,value", [(1.0, lambda K: 1.0), ("xgboost", lambda K: 2.0),
                                          ("lightgbm", lambda K: K / (K - 1)), (0.7, lambda K: 0.7)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", [2, 3, 10, 70])
def test_softmax_objective_against_reference(rng, K, dtype, layout, weighted, factor, value):
    raw, labels = _multiclass(rng, n=53, K=K, dtype=dtype)
    raw = np.asfortranarray(raw) if layout == "F" else raw
    sw = rng.uniform(0.0, 3.0, len(labels)) if weighted else None
    grad, hess = fo.softmax_objective(labels.astype(np.float32), raw, sw, hessian_factor=factor)
    want_g, want_h = _oracle_softmax(raw, labels, sw, value(K))
    assert grad.dtype == hess.dtype == raw.dtype and grad.shape == hess.shape == raw.shape
    assert_grad_close(grad, want_g, dtype, rel=2.0)
    assert_grad_close(hess, want_h, dtype, rel=4.0)


def test_softmax_objective_is_the_textbook_formula(rng):
    raw, labels = _multiclass(rng, n=30, K=4)
    sw = rng.uniform(0.5, 2.0, 30)
    p = np.exp(raw - raw.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(4)[labels]
    grad, hess = fo.softmax_objective(labels, raw, sw, hessian_factor="xgboost")
    np.testing.assert_allclose(grad, sw[:, None] * (p - onehot), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, 2 * sw[:, None] * p * (1 - p), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_objective_finite_differences(rng, weighted):
    """grad is the derivative of sum_i sw_i CE_i; hess (factor 1) the derivative
    of each grad entry with respect to its own score."""
    raw, labels = _multiclass(rng, n=6, K=4, scale=1.5)
    sw = rng.uniform(0.2, 2.0, 6) if weighted else None

    def total(x):
        return fastxent.cross_entropy(x, labels, reduction="sum", sample_weight=sw)

    grad, hess = fo.softmax_objective(labels, raw, sw)
    np.testing.assert_allclose(grad, ref.numerical_grad(total, raw), rtol=1e-7, atol=1e-9)
    h = 1e-5
    fd = np.empty_like(raw)
    for i, k in np.ndindex(raw.shape):
        up, down = raw.copy(), raw.copy()
        up[i, k] += h
        down[i, k] -= h
        fd[i, k] = (fo.softmax_objective(labels, up, sw)[0][i, k]
                    - fo.softmax_objective(labels, down, sw)[0][i, k]) / (2 * h)
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-9)


def test_softmax_objective_hessian_is_torch_autograd_diagonal(rng, torch):
    raw, labels = _multiclass(rng, n=5, K=3, scale=1.0)
    sw = rng.uniform(0.2, 2.0, 5)
    yt, swt = torch.tensor(labels), torch.tensor(sw)

    def total(x):
        return (swt * torch.nn.functional.cross_entropy(x, yt, reduction="none")).sum()

    H = torch.autograd.functional.hessian(total, torch.tensor(raw)).numpy().reshape(15, 15)
    _, hess = fo.softmax_objective(labels, raw, sw)
    np.testing.assert_allclose(hess.reshape(-1), np.diag(H), rtol=1e-12, atol=1e-15)


def test_softmax_objective_layouts(rng):
    """LightGBM's Fortran-ordered scores give Fortran-ordered results (flattened
    by LightGBM without a copy), C gives C; the values are the same."""
    raw, labels = _multiclass(rng, n=33, K=6)
    gc, hc = fo.softmax_objective(labels, raw)
    gf, hf = fo.softmax_objective(labels, np.asfortranarray(raw))
    assert gc.flags.c_contiguous and hc.flags.c_contiguous
    assert gf.flags.f_contiguous and hf.flags.f_contiguous and not gf.flags.c_contiguous
    np.testing.assert_array_equal(gc, gf)
    np.testing.assert_array_equal(hc, hf)
    # a strided view and a list
    gs, _ = fo.softmax_objective(labels[::2], raw[::2])
    np.testing.assert_array_equal(gs, gc[::2])
    gl, _ = fo.softmax_objective(labels.tolist(), raw.tolist())
    np.testing.assert_array_equal(gl, gc)


def test_softmax_objective_float16(rng):
    raw, labels = _multiclass(rng, n=20, K=3, dtype=np.float16, scale=1.0)
    grad, hess = fo.softmax_objective(labels, raw)
    want_g, want_h = _oracle_softmax(raw, labels, None, 1.0)
    assert grad.dtype == hess.dtype == np.float16
    np.testing.assert_allclose(grad, want_g, atol=2e-3)
    np.testing.assert_allclose(hess, want_h, atol=2e-3)


def test_softmax_objective_threads_give_the_same_bits(rng):
    raw, labels = _multiclass(rng, n=5000, K=7)
    one = fo.softmax_objective(labels, raw, n_threads=1)
    two = fo.softmax_objective(labels, raw, n_threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_softmax_objective_leaves_inputs_alone(rng):
    raw, labels = _multiclass(rng)
    flabels, sw = labels.astype(np.float32), rng.uniform(0, 2, len(labels))
    copies = [a.copy() for a in (raw, flabels, sw)]
    for a in (raw, flabels, sw):
        a.setflags(write=False)
    fo.softmax_objective(flabels, raw, sw, hessian_factor="lightgbm")
    for a, c in zip((raw, flabels, sw), copies):
        np.testing.assert_array_equal(a, c)


# ----------------------------------------------------------------------------
# softmax_objective: labels, sample weights, factors, errors
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("label_dtype", [np.float32, np.float64, np.int8, np.uint16, np.int64])
def test_float_and_integer_labels_are_class_indices(rng, label_dtype):
    raw, labels = _multiclass(rng, K=5)
    want = fo.softmax_objective(labels, raw)
    got = fo.softmax_objective(labels.astype(label_dtype), raw)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_bool_labels_are_classes_0_and_1(rng):
    raw, labels = _multiclass(rng, K=2)
    np.testing.assert_array_equal(fo.softmax_objective(labels.astype(bool), raw)[0],
                                  fo.softmax_objective(labels, raw)[0])


@pytest.mark.parametrize("bad,message", [
    (1.5, r"labels\[3\] = 1.5 is not a whole number"),
    (np.nan, r"labels\[3\] = nan is not a whole number"),
    (np.inf, r"labels\[3\] = inf is not a class index in \[0, 4\)"),
    (-1.0, r"labels\[3\] = -1.0 is not a class index in \[0, 4\)"),
    (4.0, r"labels\[3\] = 4.0 is not a class index in \[0, 4\)"),
])
def test_float_labels_that_are_not_class_indices(rng, bad, message):
    raw, labels = _multiclass(rng, n=8, K=4)
    flabels = labels.astype(np.float32)
    flabels[3] = bad
    with pytest.raises(ValueError, match=message):
        fo.softmax_objective(flabels, raw)


@pytest.mark.parametrize("bad", [-1, 4, -100])
def test_integer_labels_out_of_range(rng, bad):
    """-100 too: ignore_index has no meaning for a boosting objective."""
    raw, labels = _multiclass(rng, n=8, K=4)
    labels[5] = bad
    with pytest.raises(ValueError, match=rf"labels\[5\] = {bad} is not a class index in \[0, 4\)"):
        fo.softmax_objective(labels, raw)


def test_softmax_objective_shape_and_type_errors(rng):
    raw, labels = _multiclass(rng, n=8, K=4)
    with pytest.raises(ValueError, match=r"labels must have shape \(8,\).*got \(7,\)"):
        fo.softmax_objective(labels[:7], raw)
    with pytest.raises(ValueError, match=r"raw must have shape \(n_samples, n_classes\).*\(32,\)"):
        fo.softmax_objective(labels, raw.reshape(-1))
    with pytest.raises(ValueError, match="at least 2 classes"):
        fo.softmax_objective(np.zeros(8), raw[:, :1])
    with pytest.raises(TypeError, match="raw must hold floating scores"):
        fo.softmax_objective(labels, raw.astype(np.int64))
    with pytest.raises(TypeError, match="labels must be class indices"):
        fo.softmax_objective(labels.astype(str), raw)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(8,\).*got \(8, 1\)"):
        fo.softmax_objective(labels, raw, np.ones((8, 1)))


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_sample_weight_values(rng, bad):
    raw, labels = _multiclass(rng, n=8, K=4)
    sw = np.ones(8)
    sw[2] = bad
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        fo.softmax_objective(labels, raw, sw)


def test_integer_sample_weights_equal_repeated_samples(rng):
    raw, labels = _multiclass(rng, n=10, K=3)
    counts = rng.integers(0, 4, 10)
    grad, hess = fo.softmax_objective(labels, raw, counts, hessian_factor="xgboost")
    rep_g, rep_h = fo.softmax_objective(np.repeat(labels, counts), np.repeat(raw, counts, axis=0),
                                        hessian_factor="xgboost")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for i in range(10):
        block = slice(starts[i], starts[i] + counts[i])
        np.testing.assert_allclose(grad[i], rep_g[block].sum(axis=0), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(hess[i], rep_h[block].sum(axis=0), rtol=1e-13, atol=1e-15)
    assert not grad[counts == 0].any() and not hess[counts == 0].any()


@pytest.mark.parametrize("factor,error", [("xgb", ValueError), (0.0, ValueError), (-1.0, ValueError),
                                          (np.nan, ValueError), (np.inf, ValueError),
                                          (True, TypeError), (None, TypeError), ("2", ValueError)])
def test_bad_hessian_factor(rng, factor, error):
    raw, labels = _multiclass(rng, n=4, K=3)
    with pytest.raises(error, match="hessian_factor"):
        fo.softmax_objective(labels, raw, hessian_factor=factor)


def test_numpy_hessian_factor_is_accepted(rng):
    raw, labels = _multiclass(rng, n=4, K=3)
    np.testing.assert_allclose(fo.softmax_objective(labels, raw, hessian_factor=np.float32(2.0))[1],
                               fo.softmax_objective(labels, raw, hessian_factor="xgboost")[1])


# ----------------------------------------------------------------------------
# logistic_objective
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("labels_kind", ["float", "int", "bool", "probability"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(57,), (20, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_objective_against_reference(rng, dtype, shape, weighted, labels_kind):
    raw = (3.0 * rng.standard_normal(shape)).astype(dtype)
    t = rng.integers(0, 2, shape)
    labels = {"float": t.astype(np.float32), "int": t, "bool": t.astype(bool),
              "probability": rng.random(shape)}[labels_kind]
    sw = rng.uniform(0.0, 3.0, shape[0]) if weighted else None
    grad, hess = fo.logistic_objective(labels, raw, sw)
    sw_b = None if sw is None else sw.reshape(sw.shape + (1,) * (len(shape) - 1))
    _, want_g, want_h = ref.binary_cross_entropy_with_logits(
        raw.astype(np.float64), np.asarray(labels, np.float64), reduction="sum",
        return_grad=True, return_hessian=True, sample_weight=sw_b)
    assert grad.dtype == hess.dtype == raw.dtype and grad.shape == hess.shape == shape
    assert_grad_close(grad, want_g, dtype, rel=2.0)
    assert_grad_close(hess, want_h, dtype, rel=2.0)


def test_logistic_objective_is_the_textbook_formula_and_finite_differences(rng):
    raw = 2.0 * rng.standard_normal(9)
    labels = rng.integers(0, 2, 9).astype(np.float32)
    sw = rng.uniform(0.5, 2.0, 9)
    s = 1.0 / (1.0 + np.exp(-raw))
    grad, hess = fo.logistic_objective(labels, raw, sw)
    np.testing.assert_allclose(grad, sw * (s - labels), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, sw * s * (1 - s), rtol=1e-12, atol=1e-15)

    def total(x):
        return fastxent.binary_cross_entropy_with_logits(x, labels, reduction="sum",
                                                          sample_weight=sw)

    np.testing.assert_allclose(grad, ref.numerical_grad(total, raw), rtol=1e-7, atol=1e-9)
    h = 1e-5
    fd = (fo.logistic_objective(labels, raw + h, sw)[0]
          - fo.logistic_objective(labels, raw - h, sw)[0]) / (2 * h)
    np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad", [1.5, -0.5, np.nan])
def test_logistic_labels_outside_0_1(rng, bad):
    labels = np.zeros(6)
    labels[4] = bad
    with pytest.raises(ValueError, match=r"labels\[4\] = .* is outside \[0, 1\]"):
        fo.logistic_objective(labels, np.zeros(6))
    labels2 = np.zeros((3, 2))
    labels2[1, 0] = bad
    with pytest.raises(ValueError, match=r"labels\[\(1, 0\)\] = .* is outside \[0, 1\]"):
        fo.logistic_objective(labels2, np.zeros((3, 2)))


def test_logistic_objective_errors():
    with pytest.raises(ValueError, match=r"labels must have raw's shape \(4,\), got \(3,\)"):
        fo.logistic_objective(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4,\)"):
        fo.logistic_objective(np.zeros(4), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="scalar"):
        fo.logistic_objective(0.0, 0.0)
    with pytest.raises(TypeError, match="raw must hold floating scores"):
        fo.logistic_objective(np.zeros(4), np.zeros(4, int))
    with pytest.raises(TypeError, match="labels must be 0/1"):
        fo.logistic_objective(np.array(["a"] * 4), np.zeros(4))
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        fo.logistic_objective(np.zeros(4), np.zeros(4), [1.0, -1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------
# The adapters, with stand-ins for the libraries' training sets
# ----------------------------------------------------------------------------

class _DMatrixLike:
    """XGBoost's DMatrix as the adapter sees it: float32 labels, an empty
    weight array when there are none."""

    def __init__(self, labels, weight=None):
        self._labels = np.asarray(labels, np.float32)
        self._weight = np.empty(0, np.float32) if weight is None else np.asarray(weight, np.float32)

    def get_label(self):
        return self._labels

    def get_weight(self):
        return self._weight


class _DatasetLike(_DMatrixLike):
    """lightgbm.Dataset as the adapter sees it: None when there are no weights."""

    def get_weight(self):
        return None if self._weight.size == 0 else self._weight


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_adapters_native_and_sklearn_conventions(rng, library, weighted):
    raw, labels = _multiclass(rng, n=12, K=4, dtype=np.float32)
    sw = rng.uniform(0.5, 2.0, 12).astype(np.float32) if weighted else None
    make = fo.xgboost_objective if library == "xgboost" else fo.lightgbm_objective
    Set = _DMatrixLike if library == "xgboost" else _DatasetLike
    obj = make()
    want = fo.softmax_objective(labels, raw, sw, hessian_factor=library)
    for got in (obj(raw, Set(labels, sw)),                       # native train()
                obj(labels.astype(np.float32), raw, sw),           # sklearn, positional (LightGBM)
                obj(labels, raw, sample_weight=sw)):               # sklearn, keyword (XGBoost)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    if weighted:       # the training set's weights are used, not the keyword
        np.testing.assert_array_equal(obj(raw, Set(labels, sw), np.ones(12))[0], want[0])


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_logistic_adapters(rng, library):
    raw = rng.standard_normal(10)
    labels = rng.integers(0, 2, 10)
    obj = (fo.xgboost_objective if library == "xgboost" else fo.lightgbm_objective)("logistic")
    want = fo.logistic_objective(labels, raw)
    got = obj(raw, _DMatrixLike(labels))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_adapter_objects():
    obj = fo.xgboost_objective("logistic", n_threads=2)
    assert repr(obj) == "xgboost_objective('logistic', n_threads=2)"
    assert repr(fo.lightgbm_objective()) == "lightgbm_objective('softmax')"
    assert obj == fo.xgboost_objective("logistic", n_threads=2) != fo.lightgbm_objective("logistic")
    assert len({obj, fo.xgboost_objective("logistic", n_threads=2)}) == 1
    for clone in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
        assert clone == obj
    import inspect
    # the scikit-learn wrappers read the signature: LightGBM counts 3 parameters
    # (passes weights), XGBoost looks for "sample_weight"
    params = inspect.signature(obj).parameters
    assert len(params) == 3 and "sample_weight" in params


def test_adapter_argument_errors():
    with pytest.raises(ValueError, match='objective must be "softmax" or "logistic"'):
        fo.xgboost_objective("multiclass")
    with pytest.raises(ValueError, match='library must be "xgboost" or "lightgbm"'):
        fo.BoostingObjective("softmax", "catboost")
    with pytest.raises(TypeError, match="n_threads"):
        fo.lightgbm_objective(n_threads=1.5)
    with pytest.raises(TypeError, match="n_threads"):
        fo.lightgbm_objective(n_threads=True)
    with pytest.raises(ValueError, match="n_threads"):
        fo.lightgbm_objective(n_threads=0)(np.zeros(2), np.zeros((2, 3)))


def test_no_boosting_library_is_imported():
    """SPEC: no import of XGBoost or LightGBM unless the adapter is used; and the
    adapters themselves need neither (they read the training set's methods)."""
    code = ("import sys, numpy as np\n"
            "import fastxent.objectives as fo\n"
            "class S:\n"
            "    def get_label(self): return np.zeros(3, np.float32)\n"
            "    def get_weight(self): return None\n"
            "fo.xgboost_objective()(np.zeros((3, 2), np.float32), S())\n"
            "fo.lightgbm_objective()(np.zeros((3, 2)), S())\n"
            "print(sorted(m for m in ('xgboost', 'lightgbm', 'sklearn') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# ----------------------------------------------------------------------------
# Integration: the real libraries (skipped where not installed)
# ----------------------------------------------------------------------------

def _data(K, n=1500, seed=0):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = sklearn_datasets.make_classification(n, 12, n_informative=8, n_classes=K,
                                                random_state=seed)
    sw = np.random.default_rng(seed).uniform(0.2, 3.0, n)
    return X, y, sw


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ROUNDS = 20


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [4, 2])
def test_xgboost_train_matches_the_builtin_objective(K, weighted):
    xgb = pytest.importorskip("xgboost")
    X, y, sw = _data(K)
    dtrain = xgb.DMatrix(X, label=y, weight=sw if weighted else None)
    builtin_params = ({"objective": "multi:softprob", "num_class": K, "base_score": 0.0} if K > 2
                      else {"objective": "binary:logistic", "base_score": 0.5})
    params = {**builtin_params, "max_depth": 4, "tree_method": "hist", "nthread": 1}
    obj = fo.xgboost_objective("softmax" if K > 2 else "logistic")
    builtin = xgb.train(params, dtrain, ROUNDS)
    custom = xgb.train(params, dtrain, ROUNDS, obj=obj)
    np.testing.assert_allclose(custom.predict(dtrain), builtin.predict(dtrain), atol=1e-5)
    # without "objective", predict gives the margins
    bare = {k: v for k, v in params.items() if k != "objective"}
    if K == 2:
        bare["base_score"] = 0.0
    margins = xgb.train(bare, dtrain, ROUNDS, obj=obj).predict(dtrain, output_margin=True)
    proba = fastxent.softmax(margins, axis=1) if K > 2 else _sigmoid(margins)
    np.testing.assert_allclose(proba, builtin.predict(dtrain), atol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [4, 2])
def test_xgbclassifier_matches_the_builtin_objective(K, weighted):
    xgb = pytest.importorskip("xgboost")
    X, y, sw = _data(K)
    kw = dict(n_estimators=ROUNDS, max_depth=4, n_jobs=1, tree_method="hist",
              base_score=0.0 if K > 2 else 0.5)
    fit = dict(sample_weight=sw if weighted else None)
    builtin = xgb.XGBClassifier(**kw).fit(X, y, **fit)
    custom = xgb.XGBClassifier(objective=fo.xgboost_objective("softmax" if K > 2 else "logistic"),
                               **kw).fit(X, y, **fit)
    np.testing.assert_allclose(custom.predict_proba(X), builtin.predict_proba(X), atol=1e-5)
    assert (custom.predict(X) == builtin.predict(X)).mean() > 0.99
    from sklearn.base import clone
    assert clone(custom).get_params()["objective"] == custom.objective


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [4, 2])
def test_lightgbm_train_matches_the_builtin_objective(K, weighted):
    lgb = pytest.importorskip("lightgbm")
    X, y, sw = _data(K)
    w = sw if weighted else None
    params = {"objective": "multiclass" if K > 2 else "binary", "num_class": K if K > 2 else 1,
              "boost_from_average": False, "num_threads": 1, "verbose": -1}
    builtin = lgb.train(params, lgb.Dataset(X, y, weight=w), ROUNDS)
    seen = []
    obj = fo.lightgbm_objective("softmax" if K > 2 else "logistic")

    def spy(raw, train_set):
        grad, hess = obj(raw, train_set)
        seen.append((raw.flags.f_contiguous, raw.flags.c_contiguous, grad.flags.f_contiguous))
        return grad, hess

    custom = lgb.train({**params, "objective": spy}, lgb.Dataset(X, y, weight=w), ROUNDS)
    raw = custom.predict(X)
    proba = fastxent.softmax(raw, axis=1) if K > 2 else _sigmoid(raw)
    np.testing.assert_allclose(proba, builtin.predict(X), atol=1e-5)
    if K > 2:     # LightGBM hands Fortran-ordered scores; the results follow
        assert seen[0] == (True, False, True)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [4, 2])
def test_lgbmclassifier_matches_the_builtin_objective(K, weighted):
    lgb = pytest.importorskip("lightgbm")
    X, y, sw = _data(K)
    fit = dict(sample_weight=sw if weighted else None)
    kw = dict(n_estimators=ROUNDS, n_jobs=1, verbose=-1)
    builtin = lgb.LGBMClassifier(boost_from_average=False, **kw).fit(X, y, **fit)
    custom = lgb.LGBMClassifier(objective=fo.lightgbm_objective("softmax" if K > 2 else "logistic"),
                                **kw).fit(X, y, **fit)
    with warnings.catch_warnings():      # raw scores from a custom objective: LightGBM warns
        warnings.simplefilter("ignore")
        raw = custom.predict(X, raw_score=True)
    want = builtin.predict_proba(X)
    if K > 2:
        np.testing.assert_allclose(fastxent.softmax(raw, axis=1), want, atol=1e-5)
    else:
        np.testing.assert_allclose(_sigmoid(raw), want[:, 1], atol=1e-5)


def test_lightgbm_init_score_reproduces_boost_from_average():
    """The documented way to match the built-in's default start: init_score =
    log of the weighted class frequencies, added back to the raw predictions.
    Compared on the training data after 3 rounds (later, a near-tie between two
    split thresholds may go either way, the starts differing by rounding)."""
    lgb = pytest.importorskip("lightgbm")
    K = 4
    X, y, sw = _data(K)
    params = {"objective": "multiclass", "num_class": K, "num_threads": 1, "verbose": -1}
    default = lgb.train(params, lgb.Dataset(X, y, weight=sw), 3)
    start = np.log(np.bincount(y, weights=sw, minlength=K) / sw.sum())
    custom = lgb.train({**params, "objective": fo.lightgbm_objective()},
                       lgb.Dataset(X, y, weight=sw, init_score=np.tile(start, (len(y), 1))), 3)
    np.testing.assert_allclose(custom.predict(X) + start, default.predict(X, raw_score=True),
                               atol=1e-6)
