"""
Multinomial logistic regression on SciPy's optimizers
=====================================================

A scikit-learn-style estimator in a page of code: the multinomial logistic
regression of ``sklearn.linear_model.LogisticRegression`` (L2 penalty,
unpenalized intercept, sample weights), fitted by SciPy's L-BFGS-B with
fastxent's loss and gradient, or by SciPy's Newton-CG with
:func:`fastxent.cross_entropy_hvp` for the Hessian's action.

The objective is scikit-learn's::

    f(W, b) = sum_i sw_i * CE(x_i W^T + b, y_i) / sum_i sw_i + ||W||^2 / (2 C sum_i sw_i)

``fastxent.cross_entropy(..., sample_weight=sw)`` with its default "mean"
is the first term exactly, and its fused gradient with respect to the logits
gives the gradient with respect to ``W`` and ``b`` through two matrix
products.  Newton-CG needs ``H v`` for the direction ``v``: the logits move by
``X V^T + v_b``, and ``cross_entropy_hvp`` returns the loss's Hessian times that
movement, one pass over the logits, the Hessian never formed.

The script fits both data sets with both solvers and with scikit-learn, and
prints a table: the objective reached, the test accuracy, the wall time, and
the share of it spent in the loss (fastxent's call; for scikit-learn, its
``HalfMultinomialLoss.loss_gradient``; the rest is mostly the matrix products
and the optimizer).  The objectives agree to 1e-6 (relative): both solvers
run to a tight tolerance.

By default the second data set is ``make_classification(20_000, 50,
n_classes=10)``; ``--n-samples 200000`` is the size of the issue that asked for
this example (about a minute on two cores).
"""
import argparse
import contextlib
import time

import numpy as np
from scipy import optimize

import fastxent


class LogisticRegression:
    """Multinomial logistic regression with an L2 penalty, fitted by SciPy.

    ``C`` is scikit-learn's (the inverse of the penalty's strength, scaled by
    the sum of the sample weights); the intercept is not penalized.  For two
    classes this is the multinomial model too (scikit-learn fits a binomial
    one there, a different objective).
    """

    def __init__(self, C=1.0, fit_intercept=True, solver="lbfgs", tol=1e-8, max_iter=10_000):
        if solver not in ("lbfgs", "newton-cg"):
            raise ValueError(f'solver must be "lbfgs" or "newton-cg", got {solver!r}')
        self.C, self.fit_intercept, self.solver = C, fit_intercept, solver
        self.tol, self.max_iter = tol, max_iter

    # -- the objective and its derivatives, at a flat parameter vector ------
    def _setup(self, X, y, sample_weight):
        self.classes_, yk = np.unique(y, return_inverse=True)
        self._X = np.ascontiguousarray(X, dtype=np.float64)
        self._y = yk.astype(np.int64)
        self._sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        sw_sum = len(yk) if sample_weight is None else float(self._sw.sum())
        self._l2 = 1.0 / (self.C * sw_sum)
        self._shape = (len(self.classes_), X.shape[1])
        self._cache = (None, None)                    # the logits at the last point
        self.loss_seconds_ = 0.0

    def _unpack(self, w):
        K, d = self._shape
        W = w[:K * d].reshape(K, d)
        b = w[K * d:] if self.fit_intercept else np.zeros(K)
        return W, b

    def _logits(self, w):
        if self._cache[0] is None or not np.array_equal(self._cache[0], w):
            W, b = self._unpack(w)
            self._cache = (w.copy(), self._X @ W.T + b)
        return self._cache[1]

    def _loss_grad(self, w):
        W, _ = self._unpack(w)
        logits = self._logits(w)
        t0 = time.perf_counter()
        loss, G = fastxent.cross_entropy(logits, self._y, sample_weight=self._sw, return_grad=True)
        self.loss_seconds_ += time.perf_counter() - t0
        f = float(loss) + 0.5 * self._l2 * float(np.vdot(W, W))
        gW = G.T @ self._X + self._l2 * W
        return f, self._pack(gW, G.sum(axis=0))

    def _hessp(self, w, v):
        V, vb = self._unpack(v)
        direction = self._X @ V.T + vb                # how the logits move along v
        logits = self._logits(w)
        t0 = time.perf_counter()
        Hd = fastxent.cross_entropy_hvp(logits, self._y, direction, sample_weight=self._sw)
        self.loss_seconds_ += time.perf_counter() - t0
        return self._pack(Hd.T @ self._X + self._l2 * V, Hd.sum(axis=0))

    def _pack(self, gW, gb):
        return np.concatenate([gW.ravel(), gb]) if self.fit_intercept else gW.ravel()

    # -- the estimator's API -------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        self._setup(X, y, sample_weight)
        K, d = self._shape
        w0 = np.zeros(K * d + (K if self.fit_intercept else 0))
        if self.solver == "lbfgs":
            res = optimize.minimize(self._loss_grad, w0, method="L-BFGS-B", jac=True,
                                    options={"maxiter": self.max_iter, "maxls": 50,
                                             "gtol": self.tol, "ftol": 64 * np.finfo(float).eps})
        else:
            res = optimize.minimize(self._loss_grad, w0, method="Newton-CG", jac=True,
                                    hessp=self._hessp,
                                    options={"maxiter": self.max_iter, "xtol": self.tol})
        W, b = self._unpack(res.x)
        self.coef_, self.intercept_ = W.copy(), b.copy()
        self.n_iter_, self.objective_ = res.nit, float(res.fun)
        del self._X, self._y, self._sw, self._cache
        return self

    def objective(self, X, y, sample_weight=None, coef=None, intercept=None):
        """The objective at ``coef``/``intercept`` (default: the fitted ones)."""
        self._setup(X, y, sample_weight)
        coef = self.coef_ if coef is None else coef
        intercept = self.intercept_ if intercept is None else intercept
        w = self._pack(np.asarray(coef, np.float64), np.asarray(intercept, np.float64))
        f = self._loss_grad(w)[0]
        del self._X, self._y, self._sw, self._cache
        return f

    def decision_function(self, X):
        return np.asarray(X, np.float64) @ self.coef_.T + self.intercept_

    def predict_proba(self, X):
        return fastxent.softmax(self.decision_function(X), axis=1)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def score(self, X, y):
        return float(np.mean(self.predict(X) == y))


@contextlib.contextmanager
def timed_method(cls, name, seconds):
    """Adds the time spent in ``cls.name`` to ``seconds[0]`` while active."""
    original = getattr(cls, name)

    def timed(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            seconds[0] += time.perf_counter() - t0

    setattr(cls, name, timed)
    try:
        yield
    finally:
        setattr(cls, name, original)


def fit_sklearn(X, y, C, tol, max_iter):
    """scikit-learn's fit, and the seconds in its loss (None where not measurable)."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    model = SkLogisticRegression(C=C, tol=tol, max_iter=max_iter)
    seconds = [0.0]
    try:
        from sklearn._loss.loss import HalfMultinomialLoss      # measurement only
        timer = timed_method(HalfMultinomialLoss, "loss_gradient", seconds)
    except (ImportError, AttributeError):
        timer, seconds = contextlib.nullcontext(), [None]
    with timer:
        t0 = time.perf_counter()
        model.fit(X, y)
        wall = time.perf_counter() - t0
    return model, wall, seconds[0]


@contextlib.contextmanager
def thread_limit(n):
    """fastxent, BLAS and scikit-learn's OpenMP on ``n`` threads (None: their defaults)."""
    if n is None:
        yield
        return
    before = fastxent.get_num_threads()
    fastxent.set_num_threads(n)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            limits = contextlib.nullcontext()
        else:
            limits = threadpool_limits(n)
        with limits:
            yield
    finally:
        fastxent.set_num_threads(before)


def datasets(n_samples, seed=0):
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    yield "digits", train_test_split(digits.data / 16.0, digits.target, test_size=0.25,
                                     random_state=seed)
    X, y = make_classification(n_samples, 50, n_informative=20, n_classes=10, random_state=seed)
    yield "make_classification", train_test_split(X, y, test_size=0.25, random_state=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Multinomial logistic regression on SciPy's optimizers")
    parser.add_argument("--n-samples", type=int, default=20_000,
                        help="samples of the make_classification data set (default 20000)")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength (default 1)")
    parser.add_argument("--tol", type=float, default=1e-8,
                        help="gradient tolerance of L-BFGS-B, xtol of Newton-CG (default 1e-8)")
    parser.add_argument("--max-iter", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of fastxent, BLAS and scikit-learn (default 1; 0: the "
                             "libraries' own defaults)")
    parser.add_argument("--no-sklearn", action="store_true", help="fastxent's solvers only")
    args = parser.parse_args(argv)
    with thread_limit(args.threads or None):
        run(args)


def run(args):
    print(f"{'data set':<30} {'solver':<27} {'objective':>14} {'test acc':>8} "
          f"{'iters':>6} {'wall s':>7} {'loss share':>10}")
    for name, (X_train, X_test, y_train, y_test) in datasets(args.n_samples):
        label = f"{name} {X_train.shape[0]}x{X_train.shape[1]}"
        reached = {}
        for solver, title in (("lbfgs", "fastxent + L-BFGS-B"),
                              ("newton-cg", "fastxent + Newton-CG (hvp)")):
            model = LogisticRegression(C=args.C, solver=solver, tol=args.tol, max_iter=args.max_iter)
            t0 = time.perf_counter()
            model.fit(X_train, y_train)
            wall = time.perf_counter() - t0
            reached[title] = model.objective_
            print(f"{label:<30} {title:<27} {model.objective_:14.10f} "
                  f"{model.score(X_test, y_test):8.4f} {model.n_iter_:6d} {wall:7.2f} "
                  f"{model.loss_seconds_ / wall:10.0%}", flush=True)
        if args.no_sklearn:
            continue
        sk, wall, loss_seconds = fit_sklearn(X_train, y_train, args.C, args.tol, args.max_iter)
        f_sk = LogisticRegression(C=args.C).objective(X_train, y_train, coef=sk.coef_,
                                                       intercept=sk.intercept_)
        share = "n/a" if loss_seconds is None else f"{loss_seconds / wall:.0%}"
        print(f"{label:<30} {'scikit-learn lbfgs':<27} {f_sk:14.10f} "
              f"{sk.score(X_test, y_test):8.4f} {int(np.max(sk.n_iter_)):6d} {wall:7.2f} "
              f"{share:>10}", flush=True)
        diffs = ", ".join(f"{title} {abs(f - f_sk) / max(1.0, abs(f_sk)):.1e}"
                          for title, f in reached.items())
        print(f"{label:<30} relative difference to scikit-learn's objective: {diffs}", flush=True)


if __name__ == "__main__":
    main()
