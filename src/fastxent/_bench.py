"""``python -m fastxent bench``: fastxent against its NumPy twin and its peers.

For each workload of ``_workloads.py``: make the data, check that fastxent and the
NumPy baseline agree (and stop loudly if not), time the floors, then time every
op with fastxent, NumPy and the in-process peers (PyTorch, scikit-learn; see
``_peers.py``) at each thread count; JAX runs afterwards, in a child process per
thread count (``_bench_jax.py``).  A peer's result is checked against the NumPy
twin before it is timed; one that disagrees is left out, with a note.  Times
are medians after a warm-up call, each implementation timed in a block of its
own (so that one library's spinning worker threads never land in another's
timing).  Progress goes to stderr as it happens; the tables go to stdout at
the end: W1-W5, then the sections ``small`` (``_bench_small.py``), ``loop``
(``_bench_loop.py``) and ``W6`` (``_bench_linear.py``).

The floors, NumPy on one thread, measured in the same run on the same arrays:
copy, ``np.copyto`` of the logits into a preallocated array (read once, write
once: a fused loss+grad can do no better); read, the faster of ``np.max`` and
``np.add.reduce`` of the logits into a scalar (read once: the floor of a loss
alone, of logsumexp); exp, ``np.exp`` into a preallocated array.  W4's loss
reads logits and targets: its copy floor is ``np.subtract(x, t, out=buf)``
(read two, write one) and its read floor reads both arrays.
"""
from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import _info, _kernels, _peers
from ._workloads import (OPS, WORKLOADS, differs, disagreement, impl_of, op_available,
                         result_names, runner, time_median)

REPEAT = {"full": 5, "quick": 3}
COLUMNS = ("workload", "op", "threads", "fastxent ms", "numpy ms", "torch ms", "jax ms",
           "sklearn ms", "best peer", "vs numpy", "vs best", "/copy", "/read", "/exp")
IMPLS = ("fastxent", "numpy") + _peers.PEERS
# What `--workloads` may name: the table's workloads, then the other sections.
SECTIONS = tuple(wl.name for wl in WORKLOADS) + ("small", "loop", "W6")


class BenchError(Exception):
    """fastxent disagrees with the NumPy baseline: nothing is timed."""


@dataclass
class Floors:
    copy: float
    read: float
    exp: float


@dataclass
class Result:
    """One row of the table: the seconds of each implementation that ran."""
    label: str
    op: str
    threads: int
    floors: Floors
    seconds: dict = field(default_factory=dict)

    def best_peer(self):
        """``(name, seconds)`` of the fastest peer that ran, or ``(None, None)``."""
        ran = [(s, p) for p, s in self.seconds.items() if p in _peers.PEERS and s is not None]
        return (min(ran)[1], min(ran)[0]) if ran else (None, None)


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


def parse_sections(text: str) -> tuple:
    """``--workloads``: some of SECTIONS, separated by commas."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise ValueError(f"--workloads takes some of {', '.join(SECTIONS)} separated by commas, "
                         f"got {text!r}")
    return tuple(s for s in SECTIONS if s in names)


def default_threads() -> list:
    return sorted({1, _kernels.get_num_threads()})


@functools.lru_cache(maxsize=None)
def _import_torch():
    """PyTorch, or None; imported when first needed (it takes seconds)."""
    try:
        import torch  # optional peer
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


def table(columns, rows, left=2) -> str:
    """A Markdown table; the first ``left`` columns left-aligned, the rest right."""
    cells = [columns] + rows
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    fmt = lambda r: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    rule = "|" + "|".join("-" * (w + 1) + ("-" if i < left else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([fmt(columns), rule] + [fmt(r) for r in rows])


def _row(r: Result) -> tuple:
    s = r.seconds
    fast = s.get("fastxent")
    best, t_best = r.best_peer()
    return (r.label, r.op, str(r.threads), _ms(fast), _ms(s.get("numpy")),
            *(_ms(s.get(p)) for p in _peers.PEERS), best or "-",
            _ratio(s.get("numpy"), fast), _ratio(t_best, fast),
            _ratio(fast, r.floors.copy), _ratio(fast, r.floors.read), _ratio(fast, r.floors.exp))


def measure_floors(wl, x, target, repeat) -> Floors:
    buf = np.empty_like(x)
    if wl.binary:
        pair = (x, target)
        copy = time_median(lambda: np.subtract(x, target, out=buf), repeat)
        read = min(time_median(lambda: [np.max(a) for a in pair], repeat),
                   time_median(lambda: [np.add.reduce(a, axis=None) for a in pair], repeat))
    else:
        copy = time_median(lambda: np.copyto(buf, x), repeat)
        read = min(time_median(lambda: np.max(x), repeat),
                   time_median(lambda: np.add.reduce(x, axis=None), repeat))
    exp = time_median(lambda: np.exp(x, out=buf), repeat)
    return Floors(copy, read, exp)


def _to_numpy(value):
    """A peer's output as NumPy values (tensors detached), tuples kept."""
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if value is None:
        return None
    if hasattr(value, "detach"):
        return value.detach().numpy()
    return np.asarray(value)


def _jobs(sections, quick):
    return [(wl, dtype) for wl in WORKLOADS if wl.name in sections and (wl.quick or not quick)
            for dtype in (wl.dtypes[:1] if quick else wl.dtypes)]


def _time_workload(wl, dtype, *, threads, repeat, tiny, peers, progress, notes) -> list:
    """The rows of one workload (in-process implementations), or [] if skipped."""
    label = wl.label(dtype, tiny)
    missing = sorted({wl.function(op) for op in wl.ops if impl_of(op) == "fastxent"
                      and op not in ("loss+grad+hess", "hvp")
                      and not op_available(wl, op)})
    if missing:
        notes.append(f"{label}: skipped, this build of fastxent has no {', '.join(missing)}")
        progress(" skipped\n")
        return []
    # second-order ops appear once fastxent has them; adapter ops where their peer imports
    ops = [op for op in wl.ops if op_available(wl, op, impl_of(op))]
    dropped = [op for op in wl.ops if op not in ops and impl_of(op) != "fastxent"]
    if dropped:
        notes.append(f"{label}: {', '.join(dropped)} not timed (the peer library does not import)")
    progress(" data")
    x, target = wl.make(dtype, tiny=tiny)
    v = wl.vector(dtype, tiny=tiny) if "hvp" in ops else None

    progress(", check")
    for op in ops:
        function, grad, hess = OPS[op]
        problem = disagreement(wl.function(op), wl, x, target, return_grad=grad,
                               return_hessian=hess, v=v, impl=impl_of(op))
        if problem:
            progress(" FAILED\n")
            raise BenchError(f"{label}, {op}: {problem}")

    progress(", floors")
    floors = measure_floors(wl, x, target, repeat)
    in_process = [p for p in peers if p != "jax"]
    results = []
    for op in ops:
        progress(f", {op}")
        _, grad, hess = OPS[op]
        function, impl = wl.function(op), impl_of(op)
        kw = dict(return_grad=grad, return_hessian=hess, v=v)
        want = runner("numpy", function, wl, x, target, **kw)
        t_numpy = None if impl != "fastxent" else time_median(want, repeat)
        want = want()
        usable = []
        for peer in in_process:
            call = _peers.peer_call(peer, op, wl, x, target, n_threads=threads[0], v=v)
            if call is None:
                continue
            with _peers.peer_threads(peer, threads[0]):
                got = _to_numpy(call())
            problem = differs(got, want, x.dtype, names=result_names(grad, hess),
                              scale=_peers.sklearn_scale(wl, x) if peer == "sklearn" else None)
            if problem:
                notes.append(f"{label} {op}: {peer} left out, its result disagrees: {problem}")
            else:
                usable.append(peer)
        for n in threads:
            r = Result(label, op, n, floors)
            r.seconds["fastxent"] = time_median(runner(impl, function, wl, x, target, n_threads=n,
                                                       **kw), repeat)
            r.seconds["numpy"] = t_numpy
            for peer in usable:
                call = _peers.peer_call(peer, op, wl, x, target, n_threads=n, v=v)
                with _peers.peer_threads(peer, n):
                    r.seconds[peer] = time_median(call, repeat)
            results.append(r)
    return results


def _add_jax(results, jobs, threads, *, repeat, tiny, err, notes) -> None:
    """Fills in JAX's seconds (child processes) and notes what its threads did."""
    from . import _bench_jax
    ops: dict = {}
    for r in results:
        if r.op not in ops.setdefault(r.label, []):
            ops[r.label].append(r.op)
    spec = [(wl.name, dtype, ops[wl.label(dtype, tiny)]) for wl, dtype in jobs
            if wl.label(dtype, tiny) in ops]
    if not spec:
        return
    err.write("[jax] one child process per thread count (its CPU affinity is the thread count)\n")
    err.flush()
    timed, more = _bench_jax.times(spec, threads, repeat=repeat, tiny=tiny, err=err)
    notes.extend(more)
    cpus: dict[int, list] = {n: [] for n in threads}
    for r in results:
        got = timed.get((r.label, r.op, r.threads))
        if got is None:
            continue
        seconds, cpu, problem = got
        if problem:
            if r.threads == threads[0]:
                notes.append(f"{r.label} {r.op}: jax left out, its result disagrees: {problem}")
            continue
        r.seconds["jax"] = seconds
        cpus[r.threads].append(f"{r.label.split()[0]} {r.op} {cpu:.2f}")
    for n, items in cpus.items():
        if items and n > 1:
            notes.append(f"jax at {n} threads, CPU time over wall time in its timed calls (the "
                         f"threads XLA kept busy): {'; '.join(items)}")


NOTES = """\
best peer, vs best: the fastest of PyTorch, JAX and scikit-learn on that row, and how many times
faster fastxent is (its time / fastxent's); vs numpy likewise for the NumPy twin
(fastxent/_baseline.py, one thread at every thread count).
torch: torch.nn.functional, forward (and backward() with the gradient), at torch.set_num_threads(n).
jax: jax.jit of optax's loss (jax.value_and_grad of it with the gradient), jax.nn.logsumexp,
jax.jvp of jax.grad for hvp; a child process per thread count, its CPU affinity set to n CPUs.
sklearn: sklearn._loss's HalfMultinomialLoss / HalfBinomialLoss loss (then the mean), loss_gradient
and gradient_hessian (no loss) at n_threads=n: per-sample losses, the gradient not divided by N.
torch fwd+bwd: fastxent.torch's loss on tensors, forward and backward(), against
torch.nn.functional's (the fastxent column is the adapter's time).
distill, distill+grad (W1): distillation_loss at T = 2, reduction 'batchmean', the teacher's
logits the student's rolled by one sample; torch: F.kl_div of two F.log_softmax, times T**2.
focal, focal+grad (W4): sigmoid_focal_loss, alpha 0.25, gamma 2, reduction 'mean'; torch:
torchvision's formula (torchvision.ops.sigmoid_focal_loss where it imports).
/copy, /read, /exp: fastxent's time over the workload's floors (NumPy, one thread, this run):
copy = np.copyto of the logits (W4: np.subtract(x, t, out=), read 2 write 1); read = the faster
of np.max and np.add.reduce of the logits into a scalar (W4: of logits and targets);
exp = np.exp of the logits into a preallocated array."""


def run(*, quick=False, threads=None, repeat=None, tiny=False, peers=None, sections=None,
        plot=None, out=None, err=None) -> list:
    """Print the benchmark tables; returns the rows (``Result``) of the main table.
    Raises BenchError when fastxent disagrees with NumPy."""
    out = out or sys.stdout
    err = err or sys.stderr
    threads = threads or default_threads()
    repeat = repeat or REPEAT["quick" if quick else "full"]
    peers = tuple(p for p in (_peers.PEERS if peers is None else peers) if _peers.importable(p))
    sections = sections or SECTIONS

    def progress(text):
        err.write(text)
        err.flush()

    progress(f"fastxent bench: {_info.summary()}; threads {','.join(map(str, threads))}, "
             f"median of {repeat}; peers {', '.join(peers) or 'none'}\n")
    jobs = _jobs(sections, quick)
    results: list[Result] = []
    notes: list[str] = []
    started = time.perf_counter()
    for i, (wl, dtype) in enumerate(jobs, 1):
        progress(f"[{i}/{len(jobs)}] {wl.label(dtype, tiny)}:")
        t0 = time.perf_counter()
        results += _time_workload(wl, dtype, threads=threads, repeat=repeat, tiny=tiny,
                                  peers=peers, progress=progress, notes=notes)
        progress(f" ({time.perf_counter() - t0:.1f} s)\n")
    if "jax" in peers:
        _add_jax(results, jobs, threads, repeat=repeat, tiny=tiny, err=err, notes=notes)
    progress(f"done in {time.perf_counter() - started:.1f} s\n")

    if jobs:
        versions = "; ".join(f"{p} {_peers.version(p)}" for p in _peers.PEERS)
        print(f"fastxent bench: {_info.summary()}; {versions}", file=out)
        print(f"{'quick, ' if quick else ''}{'tiny arrays (timings mean nothing), ' if tiny else ''}"
              f"median of {repeat} after a warm-up; threads {','.join(map(str, threads))}; "
              f"reduction='mean', class-index targets; {_load()}", file=out)
        print(file=out)
        print(table(COLUMNS, [_row(r) for r in results]), file=out)
        print(file=out)
        print(NOTES, file=out)
        _print_floors(results, out)
        for note in notes:
            print(f"note: {note}", file=out)

    if "small" in sections:
        from ._bench_small import run_section as small
        small(tiny=tiny, peers=peers, out=out, err=err)
    if "loop" in sections:
        from ._bench_loop import run_section as loop
        loop(threads=threads, tiny=tiny, quick=quick, out=out, err=err)
    if "W6" in sections:
        from ._bench_linear import run_section as linear
        linear(quick=quick, threads=threads, repeat=repeat, tiny=tiny,
               torch=_import_torch() if "torch" in peers else None, out=out, err=err)
    if plot:
        from ._bench_plot import plot_results
        plot_results(results, plot, title=f"fastxent bench: {_info.summary()}")
        progress(f"plot written to {plot}\n")
    return results


def _print_floors(results, out) -> None:
    floors: dict[str, Floors] = {}
    for r in results:
        floors.setdefault(r.label, r.floors)
    if not floors:
        return
    width = max(len(label) for label in floors)
    print("floors (NumPy, one thread):", file=out)
    for label, f in floors.items():
        print(f"  {label:<{width}}  copy {_ms(f.copy):>7} ms  read {_ms(f.read):>7} ms  "
              f"exp {_ms(f.exp):>7} ms", file=out)


def _load() -> str:
    """The machine's load average when the table is printed (the bench shares it)."""
    try:
        import os
        one, five, _ = os.getloadavg()
        return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"
    except (AttributeError, OSError):
        return "load average unknown"
