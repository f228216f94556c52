"""The ``loop`` section of ``python -m fastxent bench``: loss+grad between NumPy matmuls.

One training step of a linear classifier on W1-sized logits: ``logits = h @ W``
(NumPy's BLAS), ``loss, G = fastxent.cross_entropy(logits, y, return_grad=True,
out=G)``, ``dh = G @ W.T`` (BLAS), repeated.  Two thread pools take turns on
the same cores, and each spins after its work before it sleeps: OpenBLAS's
pthreads workers poll for the next job for ``2**28`` TSC cycles (about 0.1 s;
``OPENBLAS_THREAD_TIMEOUT=k`` makes it ``2**k``, 4 <= k <= 30), and GNU OpenMP's
workers (fastxent's) spin ``GOMP_SPINCOUNT`` = 300000 pauses before they
block (``OMP_WAIT_POLICY=passive``: 0).  Both are read once, when the library
loads, so each configuration runs in a fresh interpreter:

- ``default``: neither variable set;
- ``OPENBLAS_THREAD_TIMEOUT=4``: BLAS's workers sleep at once after a matmul;
- ``OMP_WAIT_POLICY=passive``: fastxent's OpenMP workers sleep at once;
- both;
- ``BLAS 1 thread``: threadpoolctl holds NumPy's BLAS to one thread (no BLAS
  worker at all; the matmuls lose their second core).

Per configuration and fastxent thread count: the median over the steps of each
matmul, of loss+grad inside the loop, and of the step; loss+grad alone (back to
back, after BLAS's workers have gone to sleep) and matmul alone; and, measured
with each worker thread's own CPU clock (immune to the machine's load), the CPU
time BLAS's workers burned during loss+grad and OpenMP's workers during the
two matmuls, as means over the steps (another thread's clock may advance only
at scheduler ticks, 4 ms here, so one step's reading is coarse; the mean is not).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "default": {},
    "OPENBLAS_THREAD_TIMEOUT=4": {"OPENBLAS_THREAD_TIMEOUT": "4"},
    "OMP_WAIT_POLICY=passive": {"OMP_WAIT_POLICY": "passive"},
    "both": {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"},
    "BLAS 1 thread": {"threadpoolctl": "1"},
}
# Cleared in every child, so that "default" means the libraries' defaults.
CLEARED = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
SHAPES = {"full": (8192, 128, 1000), "tiny": (64, 16, 100)}      # N, H, C
COLUMNS = ("config", "threads", "matmul ms", "loss+grad ms", "alone ms", "in loop / alone",
           "step ms", "1T / nT in loop", "BLAS CPU ms", "OpenMP CPU ms")


def _tasks() -> set:
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:
        return set()


def _thread_clock(tid: str):
    """The CPU clock of thread ``tid`` of this process (Linux), or None."""
    clock = ((~int(tid)) << 3) | 6                 # MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)
    try:
        time.clock_gettime(clock)
    except (OSError, AttributeError, OverflowError):
        return None
    return clock


def _cpu(clocks) -> float:
    return sum(time.clock_gettime(c) for c in clocks)


def _child(shape, n, steps, blas_threads) -> None:
    """In the child: runs the loop, prints one JSON line of medians (ms)."""
    import numpy as np

    import fastxent
    # fastxent imported NumPy, whose OpenBLAS started its workers when it loaded;
    # OpenMP starts its own at fastxent's first parallel call, below
    blas = sorted(_tasks() - {str(os.getpid())})
    limit = None
    if blas_threads:
        from threadpoolctl import threadpool_limits  # optional
        limit = threadpool_limits(int(blas_threads), user_api="blas")

    N, H, C = shape
    rng = np.random.default_rng([11, N, H, C])
    h = rng.standard_normal((N, H), dtype=np.float32)
    W = rng.standard_normal((H, C), dtype=np.float32) * np.float32(3 / np.sqrt(H))
    y = rng.integers(0, C, N)
    logits, G = np.empty((N, C), np.float32), np.empty((N, C), np.float32)
    dh = np.empty((N, H), np.float32)

    def loss_grad():
        fastxent.cross_entropy(logits, y, return_grad=True, out=G, n_threads=n)

    before_omp = _tasks()
    np.matmul(h, W, out=logits)
    loss_grad()
    omp = sorted(_tasks() - before_omp - set(blas))
    blas_clocks = [c for c in map(_thread_clock, blas) if c is not None]
    omp_clocks = [c for c in map(_thread_clock, omp) if c is not None]

    rec: dict = {k: [] for k in ("mm", "loss", "step", "blas_cpu", "omp_cpu")}
    for i in range(steps + 2):                      # two warm-up steps
        c0 = _cpu(omp_clocks)
        t0 = time.perf_counter()
        np.matmul(h, W, out=logits)
        t1 = time.perf_counter()
        c1, b1 = _cpu(omp_clocks), _cpu(blas_clocks)
        t1b = time.perf_counter()
        loss_grad()
        t2 = time.perf_counter()
        b2, c2 = _cpu(blas_clocks), _cpu(omp_clocks)
        t2b = time.perf_counter()
        np.matmul(G, W.T, out=dh)
        t3 = time.perf_counter()
        c3 = _cpu(omp_clocks)
        if i >= 2:
            rec["mm"] += [t1 - t0, t3 - t2b]
            rec["loss"].append(t2 - t1b)
            rec["step"].append((t1 - t0) + (t2 - t1b) + (t3 - t2b))
            rec["blas_cpu"].append(b2 - b1)
            rec["omp_cpu"].append((c1 - c0) + (c3 - c2))
    time.sleep(0.3)                                 # BLAS's workers go to sleep
    alone = []
    for i in range(steps + 2):
        t = time.perf_counter()
        loss_grad()
        alone.append(time.perf_counter() - t)
    time.sleep(0.1)                                 # OpenMP's workers go to sleep
    mm_alone = []
    for i in range(max(steps // 2, 1) + 1):
        t = time.perf_counter()
        np.matmul(h, W, out=logits)
        mm_alone.append(time.perf_counter() - t)
    if limit is not None:
        limit.restore_original_limits()

    def med(v):
        return statistics.median(v) * 1e3

    def mean(v):                                    # thread clocks may move in scheduler ticks
        return statistics.fmean(v) * 1e3

    print(json.dumps({"mm": med(rec["mm"]), "loss": med(rec["loss"]), "step": med(rec["step"]),
                      "alone": med(alone[2:]), "mm_alone": med(mm_alone[1:]),
                      "blas_cpu": mean(rec["blas_cpu"]) if blas_clocks else None,
                      "omp_cpu": mean(rec["omp_cpu"]) if omp_clocks else None,
                      "blas_workers": len(blas), "omp_workers": len(omp)}))


def measure(config, n, *, tiny=False, steps=20, shape=None, timeout=600) -> dict:
    """One configuration at ``n`` fastxent threads, in a fresh interpreter
    (``shape``: ``(N, H, C)``, else the section's)."""
    settings = dict(CONFIGS[config])
    blas_threads = settings.pop("threadpoolctl", None)
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(settings)
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")])
    shape = tuple(shape or SHAPES["tiny" if tiny else "full"])
    code = (f"from fastxent._bench_loop import _child; "
            f"_child({shape!r}, {n!r}, {steps!r}, {blas_threads!r})")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"loop child ({config}, {n} threads) failed: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_section(*, threads=(1, 2), tiny=False, quick=False, out=None, err=None) -> dict:
    """Runs every configuration at each thread count; prints the table; returns
    ``{(config, n): measure(...)}``."""
    from ._bench import table
    out = out or sys.stdout
    err = err or sys.stderr
    steps = 3 if tiny else 10 if quick else 20
    configs = [c for c in CONFIGS if c != "BLAS 1 thread" or _has_threadpoolctl()]
    results, notes = {}, []
    for config in configs:
        err.write(f"[loop] {config}:")
        for n in threads:
            err.write(f" {n}T")
            err.flush()
            try:
                results[(config, n)] = measure(config, n, tiny=tiny, steps=steps)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                notes.append(str(e))
        err.write("\n")
    rows = []

    def f(v, digits=1):
        return "-" if v is None else f"{v:.{digits}f}"

    for (config, n), r in results.items():
        one = results.get((config, 1))
        rows.append((config, str(n), f(r["mm"]), f(r["loss"], 2), f(r["alone"], 2),
                     f"{r['loss'] / r['alone']:.2f}x", f(r["step"]),
                     "-" if one is None or n == 1 else f"{one['loss'] / r['loss']:.2f}x",
                     f(r["blas_cpu"], 2), f(r["omp_cpu"], 2)))
    N, H, C = SHAPES["tiny" if tiny else "full"]
    print(file=out)
    print(f"loop: matmul ({N}x{H} @ {H}x{C}), fastxent loss+grad (out=), matmul (G @ W.T), "
          f"float32, median of {steps} steps{', tiny: timings mean little' if tiny else ''}",
          file=out)
    print(file=out)
    print(table(COLUMNS, rows, left=1), file=out)
    print(file=out)
    print("matmul: either matmul of the step, BLAS at its default threads (all CPUs) but in "
          "'BLAS 1 thread'.\nalone: loss+grad back to back, no matmul between.  1T / nT: "
          "loss+grad in the loop at 1 thread over n threads.\nBLAS CPU: CPU time NumPy's "
          "OpenBLAS workers burned during one loss+grad call (their spin after the\nmatmul); "
          "OpenMP CPU: CPU time fastxent's OpenMP workers burned during the step's two matmuls "
          "(their\nspin after loss+grad); both from each worker thread's CPU clock, means over "
          "the steps.  Each "
          "configuration runs in a fresh\ninterpreter: OPENBLAS_THREAD_TIMEOUT and "
          "OMP_WAIT_POLICY are read when the library loads.", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    return results


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True
