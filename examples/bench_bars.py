"""
The benchmark as a chart: fastxent, NumPy and PyTorch
=====================================================

The quick workloads of ``python -m fastxent bench`` (the same data, the same
NumPy baseline and the same timer), each timed for the mean loss and its
gradient with respect to the logits:

- fastxent on one thread and on every thread (``fastxent.get_num_threads()``),
- the plain-NumPy implementation of the same loss and gradient, on one thread,
- PyTorch's ``cross_entropy`` / ``binary_cross_entropy_with_logits`` forward
  and ``backward()``, on one thread and on every thread, where PyTorch is
  installed.

Each time is the median of five calls after a warm-up call (three for this
page, built with ``--repeat 3``); before timing a workload, the script checks
that fastxent and NumPy agree.  It takes about 10 to 30 seconds on two cores.
The numbers depend on the machine that built this page; ``python -m fastxent
bench`` prints the full table on yours.

Run: ``python examples/bench_bars.py [--repeat N]`` (``--tiny``: small arrays, a
check that the script runs; its times mean nothing)
"""
import argparse
import time

import numpy as np

import fastxent
from fastxent._workloads import WORKLOADS, disagreement, runner, time_median, torch_runner

parser = argparse.ArgumentParser(description="fastxent, NumPy and PyTorch on the bench workloads")
parser.add_argument("--tiny", action="store_true", help="small arrays: the times mean nothing")
parser.add_argument("--repeat", type=int, default=5, help="calls timed per bar (their median)")
options = parser.parse_args()
tiny, REPEAT = options.tiny, options.repeat

try:
    import torch
except ImportError:
    torch = None

# %%
# Time every workload
# -------------------
# The thread counts are fixed first: PyTorch shares the OpenMP runtime with
# fastxent on Linux, and ``torch.set_num_threads`` would change fastxent's
# default too, so fastxent is given its thread count explicitly.

all_threads = fastxent.get_num_threads()
thread_counts = sorted({1, all_threads})
torch_threads = torch.get_num_threads() if torch is not None else None

columns = [f"fastxent {n}T" for n in thread_counts] + ["NumPy 1T"]
if torch is not None:
    columns += [f"PyTorch {n}T" for n in thread_counts]

labels, times = [], []
start = time.perf_counter()
for wl in WORKLOADS:
    if not wl.quick:
        continue
    dtype = wl.dtypes[0]
    x, target = wl.make(dtype, tiny=tiny)
    function = wl.loss_function
    problem = disagreement(function, wl, x, target, return_grad=True)
    if problem:
        raise SystemExit(f"{wl.label(dtype)}: {problem}")
    row = [time_median(runner("fastxent", function, wl, x, target, return_grad=True, n_threads=n),
                       REPEAT) for n in thread_counts]
    row.append(time_median(runner("numpy", function, wl, x, target, return_grad=True), REPEAT))
    if torch is not None:
        for n in thread_counts:
            torch.set_num_threads(n)
            row.append(time_median(torch_runner(function, wl, x, target, return_grad=True), REPEAT))
        torch.set_num_threads(torch_threads)
    shape = wl.tiny_shape if tiny else wl.shape
    labels.append(f"{wl.name} {'x'.join(map(str, shape))}\n{wl.what}")
    times.append(row)
    del x, target
times_ms = np.array(times) * 1e3

width = max(len(c) for c in columns)
print(f"loss+grad, ms (median of {REPEAT}); {time.perf_counter() - start:.1f} s in all")
print(" " * 28 + "".join(f"{c:>{width + 2}}" for c in columns))
for label, row in zip(labels, times_ms):
    print(f"{label.splitlines()[0]:<28}" + "".join(f"{v:>{width + 2}.1f}" for v in row))
if torch is None:
    print("PyTorch is not installed: its columns are left out")

# %%
# Grouped bars
# ------------
# One group per workload, one bar per implementation and thread count; shorter
# is faster.  The number above each fastxent bar says how many times faster it
# is than NumPy.

try:
    import matplotlib.pyplot as plt
except ImportError:
    plt = None

if plt is not None:
    colors = {"fastxent": ["#1f5fa8", "#6fa8dc"], "NumPy": ["#888888"],
              "PyTorch": ["#e07b39", "#f4b183"]}
    used = {key: 0 for key in colors}
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    group = np.arange(len(labels))
    bar = 0.8 / len(columns)
    numpy_col = columns.index("NumPy 1T")
    for j, column in enumerate(columns):
        family = column.split()[0]
        color = colors[family][used[family]]
        used[family] += 1
        pos = group - 0.4 + bar * (j + 0.5)
        bars = ax.bar(pos, times_ms[:, j], bar, label=column, color=color)
        if family == "fastxent":
            speedup = times_ms[:, numpy_col] / times_ms[:, j]
            ax.bar_label(bars, [f"{s:.1f}x" for s in speedup], fontsize=8, padding=2)
    ax.set_xticks(group, labels, fontsize=9)
    ax.set_ylabel("ms per call (loss and gradient)")
    ax.set_title("fastxent against NumPy and PyTorch, float32, mean loss + gradient")
    ax.legend(ncols=len(columns), loc="upper left", fontsize=9)
    ax.set_ylim(0, times_ms.max() * 1.2)
    plt.show()
