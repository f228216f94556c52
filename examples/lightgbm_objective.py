"""
A custom LightGBM objective from fastxent
=========================================

LightGBM takes a custom objective as a function returning, for every sample
and class, the gradient and the Hessian's diagonal of the loss with respect to
the raw scores.  :func:`fastxent.objectives.lightgbm_objective` is that
function for the multi-class cross-entropy, computed by fastxent's fused
kernel in one pass, with the Hessian factor of LightGBM's own ``multiclass``
(``K / (K - 1) p (1 - p)``): it grows the same trees.

The script trains the built-in objective and fastxent's for 20 rounds, through
``lightgbm.train`` and through ``LGBMClassifier``, with and without sample
weights, and a hand-written NumPy objective for comparison, and prints how far
each model's predicted probabilities are from the built-in's (on held-out
data) and the time per round: the whole round, and the part spent in the
custom objective.

LightGBM starts its built-in objectives from the log of the class
frequencies (``boost_from_average``), a custom one from 0: the built-in runs
with ``boost_from_average=False`` here.  The last row starts fastxent's model
from those frequencies instead (``init_score``), and matches the built-in's
default up to rounding.  With a custom objective, ``predict`` returns raw scores (also
``LGBMClassifier``'s, with a warning): :func:`fastxent.softmax` makes them
probabilities.

This page was built with ``--n-samples 5000`` (default 20000), to build quickly;
the agreement is the same.
"""
import argparse
import time
import warnings

import numpy as np

import fastxent
from fastxent.objectives import lightgbm_objective


def timed(objective):
    """``objective`` with a counter of the seconds spent in it (``.seconds[0]``).

    A function, not an object with ``__call__``: ``lightgbm.train`` deep-copies
    its parameters, and a function is copied as itself, counter included.  It
    keeps the arity LightGBM's scikit-learn wrapper reads (3: with weights).
    """
    seconds = [0.0]

    def wrapper(first, second, weight=None):
        t0 = time.perf_counter()
        try:
            if weight is None:
                return objective(first, second)
            return objective(first, second, weight)
        finally:
            seconds[0] += time.perf_counter() - t0

    wrapper.seconds = seconds
    return wrapper


def numpy_objective(raw, train_set):
    """The same objective by hand, as one would write it without fastxent."""
    labels = train_set.get_label().astype(np.int64)
    weight = train_set.get_weight()
    K = raw.shape[1]
    z = raw - raw.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(len(labels)), labels] -= 1.0
    hess = K / (K - 1.0) * p * (1.0 - p)
    if weight is not None:
        grad *= weight[:, None]
        hess *= weight[:, None]
    return grad, hess


def main(argv=None):
    parser = argparse.ArgumentParser(description="A custom LightGBM objective from fastxent")
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM's and fastxent's (default 1)")
    args = parser.parse_args(argv)

    import lightgbm as lgb
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(args.n_samples, 30, n_informative=15, n_classes=args.classes,
                               random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    sw = np.random.default_rng(0).uniform(0.2, 3.0, len(y_train))
    K, rounds = args.classes, args.rounds
    params = {"objective": "multiclass", "num_class": K, "boost_from_average": False,
              "num_threads": args.threads, "verbose": -1}
    fastxent_obj = lightgbm_objective(n_threads=args.threads)
    print(f"LightGBM {lgb.__version__}, {len(y_train)} x {X.shape[1]} training samples, "
          f"{K} classes, {rounds} rounds, {args.threads} thread(s)")
    print(f"{'model':<48} {'max |p - built-in|':>18} {'ms/round':>9} {'objective ms/round':>19}")

    def row(title, seconds, objective_seconds, proba, reference):
        diff = "(reference)" if reference is None else f"{np.abs(proba - reference).max():.1e}"
        obj = "-" if objective_seconds is None else f"{1e3 * objective_seconds / rounds:.2f}"
        print(f"{title:<48} {diff:>18} {1e3 * seconds / rounds:9.2f} {obj:>19}", flush=True)

    for weights in (None, sw):
        tag = "" if weights is None else ", sample_weight"
        t0 = time.perf_counter()
        builtin = lgb.train(params, lgb.Dataset(X_train, y_train, weight=weights), rounds)
        seconds = time.perf_counter() - t0
        reference = builtin.predict(X_test)
        row(f"lgb.train multiclass (built-in){tag}", seconds, None, reference, None)
        for title, fn in (("lgb.train objective=fastxent", fastxent_obj),
                          ("lgb.train objective=NumPy", numpy_objective)):
            timer = timed(fn)
            t0 = time.perf_counter()
            model = lgb.train({**params, "objective": timer},
                              lgb.Dataset(X_train, y_train, weight=weights), rounds)
            seconds = time.perf_counter() - t0
            row(title + tag, seconds, timer.seconds[0],
                fastxent.softmax(model.predict(X_test), axis=1), reference)

        timer = timed(fastxent_obj)
        clf = lgb.LGBMClassifier(objective=timer, n_estimators=rounds, n_jobs=args.threads,
                                 verbose=-1)
        t0 = time.perf_counter()
        clf.fit(X_train, y_train, sample_weight=weights)
        seconds = time.perf_counter() - t0
        with warnings.catch_warnings():      # "Cannot compute class probabilities ..."
            warnings.simplefilter("ignore")
            raw = clf.predict(X_test, raw_score=True)
        row("LGBMClassifier(objective=fastxent)" + tag, seconds, timer.seconds[0],
            fastxent.softmax(raw, axis=1), reference)

    # the built-in's default start (boost_from_average) given as init_score
    prior = np.bincount(y_train, weights=sw, minlength=K) / sw.sum()
    start = np.log(prior)
    default = lgb.train({**params, "boost_from_average": True},
                        lgb.Dataset(X_train, y_train, weight=sw), rounds)
    model = lgb.train({**params, "objective": fastxent_obj},
                      lgb.Dataset(X_train, y_train, weight=sw,
                                  init_score=np.tile(start, (len(y_train), 1))), rounds)
    diff = np.abs(fastxent.softmax(model.predict(X_test) + start, axis=1)
                  - default.predict(X_test)).max()
    print(f"fastxent started from init_score = log(class frequencies) against the built-in's "
          f"default (boost_from_average): max |p - built-in| {diff:.1e}")
    print("  (the start differs by float rounding: a near-tie between two split thresholds "
          "may go either way)")

    # what the objective costs alone, on the scores LightGBM hands it
    raw = np.asfortranarray(builtin.predict(X_train, raw_score=True))
    train_set = lgb.Dataset(X_train, y_train).construct()
    for title, fn in (("fastxent", fastxent_obj), ("NumPy", numpy_objective)):
        best = min(_seconds(fn, raw, train_set) for _ in range(5))
        print(f"one call of the {title} objective on {raw.shape} float64 scores: {1e3 * best:.2f} ms")
    proba = fastxent.softmax(model.predict(X_test) + start, axis=1)
    print(f"test accuracy of the fastxent model: {np.mean(proba.argmax(axis=1) == y_test):.4f}")


def _seconds(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
