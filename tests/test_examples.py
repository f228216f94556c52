"""The scripts of examples/ run and print the tutorials' numbers."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastxent

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

pytestmark = pytest.mark.skipif(not os.path.isdir(EXAMPLES), reason="examples/ not present")


def run_example(name, *args):
    res = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *args],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))  # this fastxent
    assert res.returncode == 0, res.stderr
    return res.stdout


def numbers(line):
    return [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", line)]


def test_seed_000_crossentropy():
    lines = run_example("seed_000_crossentropy.py").splitlines()
    assert numbers(lines[0]) == [0.4402]
    assert numbers(lines[1]) == [1.0986, -0.2671, -0.0006, 0.2676]
    assert numbers(lines[2]) == [20.8517, 6.3267, -12.6533, 6.3267]
    assert numbers(lines[3]) == [0.4032]


def test_seed_000_binary():
    lines = run_example("seed_000_binary.py").splitlines()
    assert numbers(lines[0]) == [0.3133]
    assert numbers(lines[1]) == [0.46380153]
    assert numbers(lines[2]) == [0.46380153, -0.3834, -0.8009, -0.1797]


def test_seed_003_random():
    lines = run_example("seed_003_random.py").splitlines()
    assert numbers(lines[0]) == [1.2340]
    assert numbers(lines[1]) == [1.8338]
    assert numbers(" ".join(lines[2:5])) == [
        0.0962, -0.2921, 0.0406, 0.0475, 0.1078,
        -0.2901, 0.0453, 0.0735, 0.0717, 0.0997,
        0.0882, 0.0452, 0.0815, 0.0336, -0.2484]
    last = numbers(lines[5])
    if "PyTorch not installed" not in lines[5]:
        loss, ref, diff = last
        assert loss == ref and diff < 1e-6


@pytest.mark.slow
def test_seed_002_mnist_mlp_reaches_stated_accuracy():
    out = run_example("seed_002_mnist_mlp.py")
    accuracy = numbers(out.splitlines()[-1])[0]
    assert accuracy >= 0.96, out


def test_seed_002_mnist_mlp_learns_quickly():
    """One short epoch: the script runs and the loss falls below chance (log 10 = 2.30)."""
    out = run_example("seed_002_mnist_mlp.py", "--epochs", "1", "--n-train", "2000")
    first = out.splitlines()[0]
    train_loss, test_loss, accuracy = numbers(first)[:3]
    assert test_loss < 2.0 and accuracy > 0.3, out


def _load_example(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(EXAMPLES, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lm_eval_perplexity_runs():
    """The default run: a stream whose logits would be 2.1 GB, scored in chunks."""
    lines = run_example("lm_eval_perplexity.py", "--quiet").splitlines()
    assert "2.10 GB" in lines[1] and "131.1 MB" in lines[1]
    loss, ppl = numbers(lines[3])
    unigram = numbers(lines[4])[0]
    assert abs(ppl - np.exp(loss)) <= 1e-3 * ppl
    assert 0.9 * unigram < ppl < 32000                 # knows the frequencies, not much more


def test_lm_eval_perplexity_matches_materialized_logits():
    """evaluate() on a small stream equals cross_entropy of the materialized logits."""
    ex = _load_example("lm_eval_perplexity.py")
    model = ex.make_model(vocab=500, hidden=16, seed=3)
    losses, scored = ex.evaluate(model, 3000, batch=700, chunk_size=64, progress=False)
    want = [fastxent.cross_entropy(model.hidden(prev) @ model.weight.T + model.bias, target,
                                   ignore_index=ex.IGNORE, reduction="none")
            for prev, target in ex.token_stream(model, 3000, batch=700)]
    np.testing.assert_allclose(losses, np.concatenate(want), rtol=1e-5, atol=1e-6)
    assert scored.sum() == sum((t != ex.IGNORE).sum() for _, t in ex.token_stream(model, 3000, batch=700))
    out = run_example("lm_eval_perplexity.py", "--tokens", "2000", "--vocab", "1000", "--quiet")
    assert numbers(out.splitlines()[1])[0] == round(2000 * 1000 * 4 / 1e9, 2)


def test_bench_bars_runs():
    """The gallery's benchmark chart, on tiny arrays: one row per quick workload."""
    out = run_example("bench_bars.py", "--tiny")
    rows = [line for line in out.splitlines() if line.startswith("W")]
    assert [r.split()[0] for r in rows] == ["W1", "W2", "W4", "W5"], out
    for row in rows:
        times = numbers(row.split(None, 2)[2])
        assert len(times) >= 3 and all(t >= 0 for t in times), row


def test_dask_eval_out_of_core():
    """A small version of the out-of-core evaluation (64 MB of logits, 4 blocks,
    one worker limited to 1 GB): it runs, the first block's losses equal fastxent
    in memory bitwise, the exact mean agrees with the stored per-token losses."""
    for module in ("dask.array", "distributed", "zarr"):
        pytest.importorskip(module)
    lines = run_example("dask_eval.py").splitlines()
    value = {line.split(":")[0].strip(): line.split(":", 1)[1] for line in lines if ":" in line}
    assert value["first block equals fastxent in memory"].strip() == "True"
    exact, stored = numbers(value["mean loss"])[0], numbers(value["mean of per-token"])[0]
    assert abs(exact - stored) <= 1e-6 * exact
    assert numbers(value["peak worker memory"])[0] < 1.0        # GB: under the limit
    assert "100% Completed" in "\n".join(lines)                  # Dask's progress bar


# ----------------------------------------------------------------------------
# Issue 12: the logistic regression and boosting examples
# ----------------------------------------------------------------------------

def test_logistic_regression_reaches_sklearn_objective():
    """Both data sets (make_classification smaller than the default): L-BFGS-B
    and Newton-CG (cross_entropy_hvp) reach scikit-learn's objective to 1e-6,
    with the same test accuracy."""
    pytest.importorskip("sklearn")
    out = run_example("logistic_regression.py", "--n-samples", "4000")
    lines = out.splitlines()
    for data in ("digits", "make_classification"):
        rows = {title: numbers(line.split(title, 1)[1])
                for line in lines if line.startswith(data) and "relative difference" not in line
                for title in ("fastxent + L-BFGS-B", "fastxent + Newton-CG (hvp)", "scikit-learn lbfgs")
                if title in line}
        assert len(rows) == 3, out
        objective = {title: row[0] for title, row in rows.items()}
        accuracy = {title: row[1] for title, row in rows.items()}
        f_sk = objective["scikit-learn lbfgs"]
        for title in ("fastxent + L-BFGS-B", "fastxent + Newton-CG (hvp)"):
            assert abs(objective[title] - f_sk) <= 1e-6 * max(1.0, f_sk), out
            assert abs(accuracy[title] - accuracy["scikit-learn lbfgs"]) <= 2e-3, out
        diffs = [line for line in lines if line.startswith(data) and "relative difference" in line]
        assert len(diffs) == 1 and all(d <= 1e-6 for d in numbers(diffs[0].split(":", 1)[1])), out
    digits_accuracy = [numbers(line.split("L-BFGS-B", 1)[1])[1] for line in lines
                       if line.startswith("digits") and "L-BFGS-B" in line]
    assert digits_accuracy[0] > 0.9, out


def test_logistic_regression_sample_weight():
    """The example's estimator with sample weights: integer weights equal
    repeated samples, and both solvers reach scikit-learn's weighted objective."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.linear_model import LogisticRegression
    ex = _load_example("logistic_regression.py")
    X, y = sklearn_datasets.make_classification(300, 6, n_informative=4, n_classes=3,
                                                random_state=1)
    counts = np.random.default_rng(1).integers(0, 4, len(y))
    weighted = ex.LogisticRegression(C=0.5).fit(X, y, sample_weight=counts)
    repeated = ex.LogisticRegression(C=0.5).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert abs(weighted.objective_ - repeated.objective_) <= 1e-10
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-5)

    sw = np.random.default_rng(2).uniform(0.1, 3.0, len(y))
    sk = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(X, y, sample_weight=sw)
    f_sk = ex.LogisticRegression(C=0.5).objective(X, y, sw, coef=sk.coef_, intercept=sk.intercept_)
    for solver in ("lbfgs", "newton-cg"):
        model = ex.LogisticRegression(C=0.5, solver=solver).fit(X, y, sample_weight=sw)
        assert abs(model.objective_ - f_sk) <= 1e-6 * max(1.0, f_sk), solver
        assert model.objective_ == pytest.approx(model.objective(X, y, sw), rel=1e-12)
        np.testing.assert_allclose(model.predict_proba(X), sk.predict_proba(X), atol=1e-4)


def _boosting_rows(out):
    rows = [line for line in out.splitlines() if "objective=" in line or "obj=" in line]
    return [numbers(line.split("  ", 1)[1])[0] for line in rows
            if "(reference)" not in line and not line.startswith("model")]


@pytest.mark.parametrize("script,library", [("xgboost_objective.py", "xgboost"),
                                            ("lightgbm_objective.py", "lightgbm")])
def test_boosting_example_matches_the_builtin(script, library):
    """fastxent's objective, native train() and the scikit-learn wrapper, with
    and without sample weights: predictions within 1e-5 of the built-in's after
    20 rounds."""
    pytest.importorskip(library)
    pytest.importorskip("sklearn")
    out = run_example(script, "--n-samples", "3000", "--rounds", "20")
    diffs = _boosting_rows(out)
    assert len(diffs) == 6, out                  # fastxent, NumPy, wrapper; x2 weights
    assert all(d <= 1e-5 for d in diffs), out
    assert "one call of the fastxent objective" in out
