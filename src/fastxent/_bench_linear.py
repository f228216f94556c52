"""The W6 section of ``python -m fastxent bench``: linear_cross_entropy against
materializing the logits.

For each workload of ``_workloads.LINEAR_WORKLOADS``, the mean loss and the
gradients of hidden and weight are computed three ways (``LINEAR_IMPLS``): fused
(``fastxent.linear_cross_entropy``), materialized NumPy (``hidden @ weight.T``,
``fastxent.cross_entropy``, the two gradient matmuls; BLAS held to the thread count
through threadpoolctl) and PyTorch (``F.linear``, ``F.cross_entropy``,
``backward()``).  The fused result is checked against the materialized one first.
Times are medians of rounds that run the three one after another (interleaved,
so that a busy machine slows all three alike), and "vs" columns are medians of the
per-round ratios.  Peak extra memory is measured once per way in a fresh
subprocess: the peak resident set during one call over the resident set just
before it, less the outputs (the gradients).

``measure(...)`` is also what ``tools/linear_memory.py`` uses.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from . import _workloads
from ._workloads import LINEAR_IMPLS, LINEAR_WORKLOADS, linear_disagreement, linear_runner

COLUMNS = ("workload", "threads", "fused ms", "numpy ms", "torch ms", "vs numpy", "vs torch",
           "fused MB", "numpy MB", "torch MB")
MAX_ROUNDS = 3          # W6 takes seconds a call


# ----------------------------------------------------------------------------
# Memory: one call in a fresh interpreter
# ----------------------------------------------------------------------------

def _status_kib(field: str):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Resets the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _child(impl, dims, n_threads, chunk_size, trace):
    """Runs in the subprocess: prints one JSON line of what one call held."""
    import gc
    import tracemalloc

    hidden, weight, target = _workloads.make_linear(tuple(dims))
    if impl == "torch":
        import torch  # optional peer
        torch.set_num_threads(n_threads)
    call = linear_runner(impl, hidden, weight, target, n_threads=n_threads, chunk_size=chunk_size)
    gc.collect()
    if trace:
        tracemalloc.start()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    loss, grads = call()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if reset else None
    if peak is None:                               # not Linux: the process's high-water mark
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss // 1024 if sys.platform == "darwin" else rss
    outputs = sum(g.nbytes for g in grads)
    result = {"outputs": outputs, "seconds": seconds, "loss": float(loss),
              "rss_extra": None if before is None else (peak - before) * 1024 - outputs}
    if trace:
        result["traced_extra"] = tracemalloc.get_traced_memory()[1] - outputs
    print(json.dumps(result))


def measure(impl, dims, *, n_threads=1, chunk_size=None, trace=False, timeout=1800) -> dict:
    """What one call of ``impl`` on a problem of ``dims = (N, H, V)`` (float32)
    holds beyond its outputs, in a fresh interpreter: ``{"rss_extra": bytes,
    "outputs": bytes, "seconds": s, "loss": value}`` (and ``"traced_extra"``,
    NumPy's allocations by tracemalloc, with ``trace=True``).  Raises RuntimeError
    if the subprocess fails (e.g. torch not installed)."""
    code = (f"from fastxent._bench_linear import _child; "
            f"_child({impl!r}, {tuple(dims)!r}, {n_threads!r}, {chunk_size!r}, {trace!r})")
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"memory probe of {impl} failed: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# The section
# ----------------------------------------------------------------------------

def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.0f}" if seconds >= 0.1 else f"{seconds * 1e3:.2f}"


def _mb(nbytes) -> str:
    return "-" if nbytes is None else f"{max(nbytes, 0) / 1e6:.0f}"


def _ratio(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _table(rows) -> str:
    cells = [COLUMNS] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    fmt = lambda r: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i < 1 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ("-" if i < 1 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(COLUMNS), rule] + [fmt(r) for r in rows])


def _interleaved(calls: dict, rounds: int) -> dict:
    """Per way, the list of its times over ``rounds`` rounds (one warm-up first)."""
    for fn in calls.values():
        fn()
    times: dict = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return times


def run_section(*, quick=False, threads=(1,), repeat=3, tiny=False, torch=None, out=None,
                err=None) -> None:
    """Times W6 and prints its table.  Raises ``_bench.BenchError`` when the fused
    and materialized results disagree."""
    from ._bench import BenchError
    out = out or sys.stdout
    err = err or sys.stderr
    rounds = min(repeat, MAX_ROUNDS)
    rows, notes = [], []
    for wl in LINEAR_WORKLOADS:
        label = wl.label(quick=quick, tiny=tiny)
        err.write(f"[W6] {label}: data")
        err.flush()
        hidden, weight, target = wl.make(quick=quick, tiny=tiny)
        err.write(", check")
        err.flush()
        problem = linear_disagreement(hidden, weight, target, n_threads=threads[0])
        if problem:
            err.write(" FAILED\n")
            raise BenchError(f"{label}: {problem}")
        impls = [i for i in LINEAR_IMPLS if i != "torch" or torch is not None]
        err.write(", memory")
        err.flush()
        memory = {}
        for impl in impls:
            try:
                memory[impl] = measure(impl, wl.dims(quick=quick, tiny=tiny),
                                       n_threads=threads[0])["rss_extra"]
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                memory[impl] = None
                notes.append(f"{label}: peak memory of {impl} not measured ({e})")
        for n in threads:
            err.write(f", {n} thread{'s' if n > 1 else ''}")
            err.flush()
            if torch is not None:
                torch.set_num_threads(n)
            calls = {impl: linear_runner(impl, hidden, weight, target, n_threads=n) for impl in impls}
            t = _interleaved(calls, rounds)
            med = {k: statistics.median(v) for k, v in t.items()}
            vs = {k: statistics.median(a / b for a, b in zip(t[k], t["fused"])) for k in t}
            rows.append((label, str(n), _ms(med["fused"]), _ms(med["numpy"]), _ms(med.get("torch")),
                         _ratio(vs["numpy"]), _ratio(vs.get("torch")),
                         _mb(memory["fused"]), _mb(memory["numpy"]), _mb(memory.get("torch"))))
        del hidden, weight, target
        err.write("\n")
        err.flush()
    print(file=out)
    print(f"W6, linear_cross_entropy: mean loss and the gradients of hidden and weight, "
          f"{'tiny arrays (timings mean nothing), ' if tiny else ''}"
          f"median of {rounds} interleaved rounds after a warm-up", file=out)
    print(file=out)
    print(_table(rows), file=out)
    print(file=out)
    print("fused: fastxent.linear_cross_entropy (default chunk_size).  numpy: hidden @ weight.T "
          "materialized, then\nfastxent.cross_entropy and the two gradient matmuls (BLAS at the "
          "same thread count).  torch: F.linear,\nF.cross_entropy, backward().  vs: their time over "
          "fused's, median of the rounds' ratios.  MB: peak\nresident memory of one call beyond "
          "its inputs and outputs, in a fresh process at the first thread count.", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
