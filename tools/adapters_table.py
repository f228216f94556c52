"""The adapters' tables for the README: W1 (8192 x 1000 float32, mean
cross-entropy, class-index targets), loss and gradient as each framework's
users get them.

  PyTorch: fastxent.torch.cross_entropy vs torch.nn.functional.cross_entropy,
           forward and backward() on CPU tensors.
  JAX:     jax.value_and_grad under jax.jit: fastxent.jax (buffer_callback and
           pure_callback) vs optax.softmax_cross_entropy_with_integer_labels,
           and fastxent called directly on NumPy arrays.

Every candidate is timed once per round, rounds interleaved, so all see the
same load; the medians of wall time and of process CPU time (all threads) are
printed.  Run with OMP_NUM_THREADS=1 and XLA_FLAGS="--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1" for one-thread numbers.

Run: PYTHONPATH=src python tools/adapters_table.py [--rounds N]
"""
import argparse
import statistics
import time

import numpy as np

import fastxent
from fastxent import _workloads as workloads


def _rounds(cands, rounds):
    for fn in cands.values():              # warm-up: compile, first-touch the buffers
        fn()
        fn()
    wall = {k: [] for k in cands}
    cpu = {k: [] for k in cands}
    for _ in range(rounds):
        for k, fn in cands.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (1e3 * statistics.median(wall[k]), 1e3 * statistics.median(cpu[k])) for k in cands}


def _print(title, res, reference):
    print(f"\n{title}\n")
    print(f"| implementation | wall ms (median) | CPU ms (median) | wall vs {reference} |")
    print("|---|---:|---:|---:|")
    for k, (w, c) in res.items():
        print(f"| {k} | {w:.2f} | {c:.2f} | {w / res[reference][0]:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    wl = workloads.get("W1")
    x, t = wl.make("float32")
    buf = np.empty_like(x)
    print(f"fastxent {fastxent.__version__}, SIMD {fastxent.get_simd_path()}, "
          f"{fastxent.get_num_threads()} thread(s); W1 {x.shape} float32; {args.rounds} rounds")

    try:
        import torch
    except ImportError:
        print("\nPyTorch not installed")
    else:
        cands = {
            "fastxent.torch": workloads.runner("fastxent.torch", "cross_entropy", wl, x, t,
                                               return_grad=True),
            "F.cross_entropy": workloads.torch_runner("cross_entropy", wl, x, t, return_grad=True),
            "fastxent (NumPy)": workloads.runner("fastxent", "cross_entropy", wl, x, t,
                                                 return_grad=True),
            "np.copyto (floor)": lambda: np.copyto(buf, x),
        }
        _print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads): "
               f"forward + backward()", _rounds(cands, args.rounds), "F.cross_entropy")

    try:
        import jax
    except ImportError:
        print("\nJAX not installed")
        return
    cands = {impl: workloads.jax_value_and_grad_runner(impl, wl, x, t)
             for impl in workloads.JAX_IMPLS}
    cands["np.copyto (floor)"] = lambda: np.copyto(buf, x)
    names = {"fastxent.jax": "fastxent.jax (buffer_callback)",
             "fastxent.jax pure": "fastxent.jax (pure_callback)", "optax": "optax",
             "fastxent": "fastxent (NumPy, direct)"}
    res = _rounds(cands, args.rounds)
    _print(f"JAX {jax.__version__}: jit(value_and_grad)", {names.get(k, k): v for k, v in res.items()},
           "optax")


if __name__ == "__main__":
    main()
