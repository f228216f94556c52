"""Loss classes keep their options as real attributes (issue 10, item 2; issue 19,
item 2): assigning one is checked there, by the check the functions use, and
takes effect on the next call; the repr shows the current values; ``return_grad``,
``grad_output`` and ``out`` are keyword-only in a call (issue 13, item 4)."""
from __future__ import annotations

import copy
import inspect
import pickle

import numpy as np
import pytest

import fastxent as fx
from fastxent import _args, _modules

# square, so that axis=0 fits the same targets and weights
X = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5], [-2.0, 1.0, 0.0]])
Y = np.array([0, 2, 1])
P = np.array([[0.9, 0.2, 0.6], [0.1, 0.5, 0.4], [0.3, 0.7, 0.8]])
T = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5], [1.0, 1.0, 0.0]])

# class, function, (input, target), {option: (initial, assigned)}
CLASSES = [
    (fx.CrossEntropyLoss, fx.cross_entropy, (X, Y),
     {"weight": (None, np.array([0.5, 2.0, 1.0])), "ignore_index": (-100, 2), "reduction": ("mean", "sum"),
      "label_smoothing": (0.0, 0.2), "z_loss": (0.0, 0.01), "softcap": (None, 2.0), "axis": (None, 0),
      "n_threads": (None, 2)}),
    (fx.NLLLoss, fx.nll_loss, (X, Y),
     {"weight": (None, np.array([0.5, 2.0, 1.0])), "ignore_index": (-100, 2), "reduction": ("mean", "none"),
      "axis": (None, 0), "n_threads": (None, 1)}),
    (fx.BCELoss, fx.binary_cross_entropy, (P, T),
     {"weight": (None, np.array([0.5, 2.0, 1.0])), "reduction": ("mean", "sum"), "n_threads": (None, 2)}),
    (fx.BCEWithLogitsLoss, fx.binary_cross_entropy_with_logits, (X, T),
     {"weight": (None, np.array([[0.5], [2.0], [3.0]])), "pos_weight": (None, np.array([3.0, 0.5, 1.0])),
      "reduction": ("mean", "none"), "n_threads": (None, 2)}),
    (fx.KLDivLoss, fx.kl_div, (np.log(P), T),
     {"reduction": ("mean", "batchmean"), "log_target": (False, True), "n_threads": (None, 2)}),
    (fx.SigmoidFocalLoss, fx.sigmoid_focal_loss, (X, T),
     {"alpha": (0.25, -1.0), "gamma": (2.0, 0.5), "reduction": ("none", "sum"),
      "n_threads": (None, 2)}),
]
IDS = [c[0].__name__ for c in CLASSES]

# option: (bad value, exception), each refused by the functions too
BAD = {
    "weight": ([["a", "b", "c"]], TypeError),
    "ignore_index": (1.5, TypeError),
    "reduction": ("avg", ValueError),
    "label_smoothing": (1.5, ValueError),
    "z_loss": (-1e-4, ValueError),
    "softcap": (0.0, ValueError),
    "axis": ("1", TypeError),
    "n_threads": (0, ValueError),
    "pos_weight": (np.array(["x"]), TypeError),
    "log_target": ("yes", TypeError),
    "alpha": ("0.25", TypeError),
    "gamma": (-1.0, ValueError),
}
MORE_BAD = {"reduction": [None, "Mean", 1], "label_smoothing": [True, "0.1", -0.1, None],
            "z_loss": [True, "0.1", None, float("inf"), float("nan")],
            "softcap": [True, "30", -30.0, float("inf"), float("nan"), np.float64(0.0)],
            "n_threads": [True, 1.5, -2], "ignore_index": [True, None, 2**64], "axis": [1.0, True],
            "log_target": [1, None], "alpha": [True, np.inf, None], "gamma": [True, np.nan, "2"]}
CLASS_WEIGHT_BAD = [2.0, np.ones((1, 3))]          # a class weight is 1-D


def _same(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls, fn, data, options", CLASSES, ids=IDS)
def test_assigned_option_takes_effect_on_the_next_call(cls, fn, data, options):
    """[10.2] f.reduction = "sum" used to leave the mean in place; each option,
    assigned on its own, gives the function's result with that option."""
    for name, (initial, assigned) in options.items():
        loss_fn = cls()
        assert getattr(loss_fn, name) is initial or getattr(loss_fn, name) == initial
        setattr(loss_fn, name, assigned)
        kw = {} if name == "weight" else {name: assigned}
        args = data + ((assigned,) if name == "weight" else ())
        _same(loss_fn(*data), fn(*args, **kw))
        _same(loss_fn(*data, return_grad=True), fn(*args, return_grad=True, **kw))
        # and back again
        setattr(loss_fn, name, initial)
        _same(loss_fn(*data), fn(*data))


@pytest.mark.parametrize("cls, fn, data, options", CLASSES, ids=IDS)
def test_option_is_checked_when_assigned(cls, fn, data, options):
    """[10.2] A bad value is refused by the assignment, with the function's error
    naming the option, and the option keeps its value."""
    for name in options:
        loss_fn = cls()
        before = getattr(loss_fn, name)
        more = CLASS_WEIGHT_BAD if name == "weight" and cls in (fx.CrossEntropyLoss, fx.NLLLoss) else []
        for bad in [BAD[name][0]] + MORE_BAD.get(name, []) + more:
            with pytest.raises((TypeError, ValueError), match=name):
                setattr(loss_fn, name, bad)
            with pytest.raises((TypeError, ValueError), match=name):
                cls(**{name: bad})
            assert getattr(loss_fn, name) is before
        bad, exc = BAD[name]
        with pytest.raises(exc, match=name):
            setattr(loss_fn, name, bad)
        # the function refuses the same value with the same exception
        args = data + ((bad,) if name == "weight" else ())
        with pytest.raises(exc, match=name):
            fn(*args, **({} if name == "weight" else {name: bad}))
        loss_fn(*data)                                  # still usable


def test_options_are_stored_checked():
    """[19.2] Checked once, on assignment: a call reuses the stored values and
    runs no option check of its own."""
    loss_fn = fx.CrossEntropyLoss([1.0, 2.0, 3.0], reduction="sum", label_smoothing=np.float32(0.25),
                                  ignore_index=np.int16(-1), n_threads=np.int64(1),
                                  z_loss=np.float32(0.5), softcap=np.int64(3))
    assert type(loss_fn.label_smoothing) is float and loss_fn.label_smoothing == 0.25
    assert type(loss_fn.z_loss) is float and type(loss_fn.softcap) is float
    assert type(loss_fn.ignore_index) is int and type(loss_fn.n_threads) is int
    assert isinstance(loss_fn.weight, np.ndarray) and loss_fn.weight.shape == (3,)
    want = loss_fn(X, Y, return_grad=True)
    checks = ["check_reduction", "check_label_smoothing", "check_int64", "threads_option",
              "axis_option", "class_weight_option", "real_array_option", "check_z_loss",
              "softcap_option"]
    saved = {name: getattr(_args, name) for name in checks}

    def refuse(*args, **kw):
        raise AssertionError("an option was checked again at call time")
    try:
        for name in checks:
            setattr(_args, name, refuse)
        _same(loss_fn(X, Y, return_grad=True), want)
    finally:
        for name, f in saved.items():
            setattr(_args, name, f)


def test_array_options_are_views_of_what_was_assigned():
    w = np.array([1.0, 2.0, 3.0])
    loss_fn = fx.CrossEntropyLoss(w)
    assert loss_fn.weight is w
    pw = np.array([1.0, 2.0, 3.0], np.float32)
    assert fx.BCEWithLogitsLoss(pos_weight=pw).pos_weight is pw
    assert fx.BCEWithLogitsLoss(pos_weight=[1, 2]).pos_weight.tolist() == [1, 2]


def test_repr_shows_the_current_values():
    """[10.2] The repr followed construction only."""
    loss_fn = fx.CrossEntropyLoss()
    loss_fn.reduction = "sum"
    loss_fn.label_smoothing = 0.25
    loss_fn.ignore_index = 3
    loss_fn.axis = -1
    loss_fn.n_threads = 2
    loss_fn.softcap = 30
    assert repr(loss_fn) == ("CrossEntropyLoss(weight=None, ignore_index=3, reduction='sum', "
                             "label_smoothing=0.25, z_loss=0.0, softcap=30.0, axis=-1, n_threads=2)")
    loss_fn.weight = [1.0, 2.0]
    assert repr(loss_fn).startswith("CrossEntropyLoss(weight=..., ignore_index=3")
    bce = fx.BCEWithLogitsLoss(reduction="none")
    bce.pos_weight = [2.0]
    assert repr(bce) == "BCEWithLogitsLoss(weight=None, pos_weight=..., reduction='none', n_threads=None)"
    assert repr(fx.NLLLoss()) == "NLLLoss(weight=None, ignore_index=-100, reduction='mean', axis=None, n_threads=None)"
    assert repr(fx.BCELoss()) == "BCELoss(weight=None, reduction='mean', n_threads=None)"


@pytest.mark.parametrize("cls", [c[0] for c in CLASSES], ids=IDS)
def test_options_are_real_attributes(cls):
    """[10.2, 13.4] No __getattr__: a misspelled option is an AttributeError when
    read and when assigned, not silently ignored."""
    assert "__getattr__" not in vars(cls) and not hasattr(fx.CrossEntropyLoss, "__getattr__")
    loss_fn = cls()
    with pytest.raises(AttributeError):
        loss_fn.label_smothing = 0.1
    with pytest.raises(AttributeError):
        loss_fn.label_smothing
    with pytest.raises(AttributeError):
        loss_fn.reductoin = "sum"


@pytest.mark.parametrize("cls, fn, data, options", CLASSES, ids=IDS)
def test_call_options_are_keyword_only(cls, fn, data, options):
    """[13.4] loss_fn(x, y, weights) bound weights to return_grad and failed with
    NumPy's "truth value of an array is ambiguous"."""
    loss_fn = cls()
    with pytest.raises(TypeError, match="positional"):
        loss_fn(*data, np.ones(3))
    with pytest.raises(TypeError, match="positional"):
        loss_fn(*data, True)
    with pytest.raises(TypeError, match="return_grad"):
        loss_fn(*data, return_grad="yes")


@pytest.mark.parametrize("cls, fn, data, options", CLASSES, ids=IDS)
def test_loss_classes_pickle_and_copy(cls, fn, data, options):
    loss_fn = cls(**{name: assigned for name, (_, assigned) in options.items()})
    want = loss_fn(*data)
    for other in (pickle.loads(pickle.dumps(loss_fn)), copy.copy(loss_fn), copy.deepcopy(loss_fn)):
        assert repr(other) == repr(loss_fn)
        _same(other(*data), want)


@pytest.mark.parametrize("cls", [c[0] for c in CLASSES], ids=IDS)
def test_option_docstring_examples_run(cls):
    """Each option's docstring (shown in the API reference) has an example that
    runs as written."""
    import doctest
    names = [name for name in dir(cls) if isinstance(inspect.getattr_static(cls, name), _modules._Option)]
    assert set(names) == set(cls._options)
    for name in names:
        test = doctest.DocTestParser().get_doctest(getattr(cls, name).__doc__, {}, name, None, 0)
        assert test.examples
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0, f"{cls.__name__}.{name}"
