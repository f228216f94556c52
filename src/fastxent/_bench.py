"""``python -m fastxent bench``: fastxent against its NumPy twin and PyTorch.

For each workload of ``_workloads.py``: make the data, check that fastxent and the
NumPy baseline agree (and stop loudly if not), time the copy and exp floors, then
time every op with fastxent, NumPy and PyTorch (where it imports) at each thread
count.  Times are medians after a warm-up call.  Progress goes to stderr as it
happens; the table goes to stdout at the end.
"""
from __future__ import annotations

import functools
import sys
import time

import numpy as np

from . import _info, _kernels
from ._workloads import (OPS, WORKLOADS, available, disagreement, impl_of, runner, time_median,
                         torch_runner)

REPEAT = {"full": 5, "quick": 3}
COLUMNS = ("workload", "op", "threads", "fastxent ms", "numpy ms", "torch ms",
           "vs numpy", "vs torch", "/copy", "/exp")


class BenchError(Exception):
    """fastxent disagrees with the NumPy baseline: nothing is timed."""


def parse_threads(text: str) -> list:
    """``--threads``: thread counts from 1 to the most one fastxent call runs
    (``_kernels.MAX_THREADS``), which also keeps PyTorch and OpenMP from being
    asked for a million threads."""
    try:
        threads = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        threads = []
    cap = _kernels.MAX_THREADS
    if not threads or min(threads) < 1 or max(threads) > cap:
        raise ValueError(f"--threads takes integers from 1 to {cap} (the most threads a fastxent "
                         f"call runs) separated by commas, got {text!r}")
    return threads


def default_threads() -> list:
    return sorted({1, _kernels.get_num_threads()})


@functools.lru_cache(maxsize=None)
def _import_torch():
    """PyTorch, or None; imported when first needed (it takes seconds)."""
    try:
        import torch  # type: ignore[import-not-found]  # optional peer
    except ImportError:
        return None
    return torch


def _ms(seconds) -> str:
    if seconds is None:
        return "-"
    v = seconds * 1e3
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _ratio(num, den) -> str:
    if num is None or den is None or den <= 0:
        return "-"
    r = num / den
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def _table(rows) -> str:
    cells = [COLUMNS] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    fmt = lambda r: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ("-" if i < 2 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(COLUMNS), rule] + [fmt(r) for r in rows])


def run(*, quick=False, threads=None, repeat=None, tiny=False, out=None, err=None) -> None:
    """Print the benchmark table.  Raises BenchError when fastxent disagrees with NumPy."""
    out = out or sys.stdout
    err = err or sys.stderr
    threads = threads or default_threads()
    repeat = repeat or REPEAT["quick" if quick else "full"]

    def progress(text):
        err.write(text)
        err.flush()

    progress(f"fastxent bench: {_info.summary()}; threads {','.join(map(str, threads))}, "
             f"median of {repeat}\n")
    jobs = [(wl, dtype) for wl in WORKLOADS if wl.quick or not quick
            for dtype in (wl.dtypes[:1] if quick else wl.dtypes)]
    rows, floors, notes = [], [], []
    started = time.perf_counter()
    for i, (wl, dtype) in enumerate(jobs, 1):
        label = wl.label(dtype, tiny)
        progress(f"[{i}/{len(jobs)}] {label}:")
        t0 = time.perf_counter()
        missing = sorted({wl.function(op) for op in wl.ops
                          if impl_of(op) == "fastxent" and not available(wl.function(op))})
        if missing:
            notes.append(f"{label}: skipped, this build of fastxent has no {', '.join(missing)}")
            progress(" skipped\n")
            continue
        ops = [op for op in wl.ops if impl_of(op) == "fastxent"
               or available(wl.function(op), impl_of(op))]
        if len(ops) < len(wl.ops):
            notes.append(f"{label}: {', '.join(op for op in wl.ops if op not in ops)} not timed "
                         f"(the peer library does not import)")
        progress(" data")
        x, target = wl.make(dtype, tiny=tiny)

        progress(", check")
        for op in ops:
            problem = disagreement(wl.function(op), wl, x, target, return_grad=OPS[op][1],
                                   impl=impl_of(op))
            if problem:
                progress(" FAILED\n")
                raise BenchError(f"{label}, {op}: {problem}")

        progress(", floors")
        buf = np.empty_like(x)
        copy_floor = time_median(lambda: np.copyto(buf, x), repeat)
        exp_floor = time_median(lambda: np.exp(x, out=buf), repeat)
        del buf
        floors.append((label, copy_floor, exp_floor))

        torch = _import_torch()
        for op in ops:
            progress(f", {op}")
            function, grad, impl = wl.function(op), OPS[op][1], impl_of(op)
            t_numpy = None if impl != "fastxent" else time_median(
                runner("numpy", function, wl, x, target, return_grad=grad), repeat)
            for n in threads:
                t_fast = time_median(runner(impl, function, wl, x, target, return_grad=grad,
                                            n_threads=n), repeat)
                t_torch = None
                if torch is not None:
                    torch.set_num_threads(n)
                    t_torch = time_median(torch_runner(function, wl, x, target, return_grad=grad), repeat)
                rows.append((label, op, str(n), _ms(t_fast), _ms(t_numpy), _ms(t_torch),
                             _ratio(t_numpy, t_fast), _ratio(t_torch, t_fast),
                             _ratio(t_fast, copy_floor), _ratio(t_fast, exp_floor)))
        del x, target
        progress(f" ({time.perf_counter() - t0:.1f} s)\n")
    progress(f"done in {time.perf_counter() - started:.1f} s\n")

    torch = _import_torch()
    peer = f"PyTorch {torch.__version__}" if torch is not None else "PyTorch not installed"
    print(f"fastxent bench: {_info.summary()}; {peer}", file=out)
    print(f"{'quick, ' if quick else ''}{'tiny arrays (timings mean nothing), ' if tiny else ''}"
          f"median of {repeat} after a warm-up; threads {','.join(map(str, threads))}; "
          f"reduction='mean', class-index targets", file=out)
    print(file=out)
    print(_table(rows), file=out)
    print(file=out)
    print("torch fwd+bwd: fastxent.torch's loss on tensors, forward and backward(), against "
          "torch.nn.functional's\n(the fastxent column is the adapter's time).", file=out)
    print("vs numpy, vs torch: how many times faster fastxent is (their time / fastxent's). "
          "The NumPy baseline\n(fastxent/_baseline.py) runs on one thread at every thread count. "
          "/copy, /exp: fastxent's time\nover the workload's floor: np.copyto of the logits, "
          "np.exp of them into a preallocated array.", file=out)
    if floors:
        width = max(len(label) for label, _, _ in floors)
        print("floors (NumPy, one thread):", file=out)
        for label, copy_floor, exp_floor in floors:
            print(f"  {label:<{width}}  copy {_ms(copy_floor):>7} ms  exp {_ms(exp_floor):>7} ms",
                  file=out)
    for note in notes:
        print(f"note: {note}", file=out)

    # W6, linear_cross_entropy: a section of its own (three ways, peak memory)
    from ._bench_linear import run_section
    run_section(quick=quick, threads=threads, repeat=repeat, tiny=tiny, torch=torch, out=out, err=err)
