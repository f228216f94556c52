"""The scripts of examples/ run and print the tutorials' numbers."""
import os
import re
import subprocess
import sys

import pytest


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


def test_bench_bars_runs():
    """The gallery's benchmark chart, on tiny arrays: one row per quick workload."""
    out = run_example("bench_bars.py", "--tiny")
    rows = [line for line in out.splitlines() if line.startswith("W")]
    assert [r.split()[0] for r in rows] == ["W1", "W2", "W4", "W5"], out
    for row in rows:
        times = numbers(row.split(None, 2)[2])
        assert len(times) >= 3 and all(t >= 0 for t in times), row
