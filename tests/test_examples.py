"""The scripts of examples/ run and print the tutorials' numbers."""
import os
import re
import subprocess
import sys

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


@pytest.mark.skipif(not hasattr(fastxent, "binary_cross_entropy_with_logits"),
                    reason="the binary losses are not in this build")
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
