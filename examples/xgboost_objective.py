"""
A custom XGBoost objective from fastxent
========================================

XGBoost takes a custom objective as a function returning, for every sample
and class, the gradient and the Hessian's diagonal of the loss with respect to
the raw scores.  :func:`fastxent.objectives.xgboost_objective` is that
function for the multi-class cross-entropy, computed by fastxent's fused
kernel in one pass, with the Hessian factor of XGBoost's own ``multi:softprob``
(``2 p (1 - p)``): it grows the same trees.

The script trains the built-in objective and fastxent's for 20 rounds, through
``xgboost.train`` and through ``XGBClassifier``, with and without sample
weights, and a hand-written NumPy objective for comparison, and prints how far
each model's predicted probabilities are from the built-in's (on held-out
data) and the time per round: the whole round, and the part spent in the
custom objective.

XGBoost estimates the intercept (``base_score``) of its built-in objectives
from the labels, not that of a custom one, so both are given ``base_score=0``
(for ``multi:softprob``, scores that start at 0).  With ``"objective":
"multi:softprob"`` next to ``obj=``, ``predict`` returns probabilities.

This page was built with ``--n-samples 5000`` (default 20000), to build quickly;
the agreement is the same.
"""
import argparse
import time

import numpy as np

import fastxent
from fastxent.objectives import xgboost_objective


class Timed:
    """Wraps an objective, adding up the seconds spent in it."""

    def __init__(self, objective):
        self.objective, self.seconds = objective, 0.0

    def __call__(self, first, second, sample_weight=None):
        t0 = time.perf_counter()
        try:
            if sample_weight is None:
                return self.objective(first, second)
            return self.objective(first, second, sample_weight)
        finally:
            self.seconds += time.perf_counter() - t0


def numpy_objective(raw, dtrain):
    """The same objective by hand, as one would write it without fastxent."""
    labels = dtrain.get_label().astype(np.int64)
    weight = dtrain.get_weight()
    z = raw - raw.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    grad = p.copy()
    grad[np.arange(len(labels)), labels] -= 1.0
    hess = 2.0 * p * (1.0 - p)
    if weight.size:
        grad *= weight[:, None]
        hess *= weight[:, None]
    return grad, hess


def main(argv=None):
    parser = argparse.ArgumentParser(description="A custom XGBoost objective from fastxent")
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="XGBoost's and fastxent's (default 1)")
    args = parser.parse_args(argv)

    import xgboost as xgb
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(args.n_samples, 30, n_informative=15, n_classes=args.classes,
                               random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    sw = np.random.default_rng(0).uniform(0.2, 3.0, len(y_train))
    K, rounds = args.classes, args.rounds
    params = {"objective": "multi:softprob", "num_class": K, "base_score": 0.0, "max_depth": 6,
              "eta": 0.3, "tree_method": "hist", "nthread": args.threads}
    dtest = xgb.DMatrix(X_test)
    fastxent_obj = xgboost_objective(n_threads=args.threads)
    print(f"XGBoost {xgb.__version__}, {len(y_train)} x {X.shape[1]} training samples, "
          f"{K} classes, {rounds} rounds, {args.threads} thread(s)")
    print(f"{'model':<44} {'max |p - built-in|':>18} {'ms/round':>9} {'objective ms/round':>19}")

    def row(title, seconds, objective_seconds, proba, reference):
        diff = "(reference)" if reference is None else f"{np.abs(proba - reference).max():.1e}"
        obj = "-" if objective_seconds is None else f"{1e3 * objective_seconds / rounds:.2f}"
        print(f"{title:<44} {diff:>18} {1e3 * seconds / rounds:9.2f} {obj:>19}", flush=True)

    for weights in (None, sw):
        tag = "" if weights is None else ", sample_weight"
        dtrain = xgb.DMatrix(X_train, label=y_train, weight=weights)
        t0 = time.perf_counter()
        builtin = xgb.train(params, dtrain, rounds)
        seconds = time.perf_counter() - t0
        reference = builtin.predict(dtest)
        row(f"xgb.train multi:softprob (built-in){tag}", seconds, None, reference, None)
        for title, fn in (("xgb.train obj=fastxent", fastxent_obj),
                          ("xgb.train obj=NumPy", numpy_objective)):
            timed = Timed(fn)
            t0 = time.perf_counter()
            model = xgb.train(params, dtrain, rounds, obj=timed)
            seconds = time.perf_counter() - t0
            row(title + tag, seconds, timed.seconds, model.predict(dtest), reference)

        timed = Timed(fastxent_obj)
        clf = xgb.XGBClassifier(objective=timed, n_estimators=rounds, base_score=0.0, max_depth=6,
                                learning_rate=0.3, tree_method="hist", n_jobs=args.threads)
        t0 = time.perf_counter()
        clf.fit(X_train, y_train, sample_weight=weights)
        seconds = time.perf_counter() - t0
        row("XGBClassifier(objective=fastxent)" + tag, seconds, timed.seconds,
            clf.predict_proba(X_test), reference)

    # what the objective costs alone, on this round's scores
    raw = builtin.predict(xgb.DMatrix(X_train), output_margin=True)
    dtrain = xgb.DMatrix(X_train, label=y_train)
    for title, fn in (("fastxent", fastxent_obj), ("NumPy", numpy_objective)):
        best = min(_seconds(fn, raw, dtrain) for _ in range(5))
        print(f"one call of the {title} objective on {raw.shape} float32 scores: {1e3 * best:.2f} ms")
    print(f"test accuracy of the fastxent model: "
          f"{np.mean(fastxent.softmax(model.predict(dtest, output_margin=True), axis=1).argmax(1) == y_test):.4f}")


def _seconds(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
