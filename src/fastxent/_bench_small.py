"""The ``small`` section of ``python -m fastxent bench``: one call on a small batch, in µs.

On small inputs the Python layer, not the kernel, is the time (issue 19).
Logits (4, 3) and (64, 10) float64 with int64 class indices (the binary loss:
the same logits with 0/1 float targets), one thread: fastxent as a user calls
it (no keyword but ``return_grad``; ``fastxent.set_num_threads(1)`` for the
section, restored after), the NumPy twin, and PyTorch on tensors made
beforehand (``torch.from_numpy``) at ``torch.set_num_threads(1)``; PyTorch's
loss+grad is autograd's forward and ``backward()``.  Each result is checked
against the NumPy twin first.  A time is the mean over many calls (``timeit``,
as many calls as fill about 20 ms), the median of 5 such means.

``calls(impl, x, target, bin_target)`` is also what asv's ``small.py`` times.
"""
from __future__ import annotations

import importlib
import sys
import types
import timeit

import numpy as np

from . import _baseline

SHAPES = ((4, 3), (64, 10))
CALLS = ("cross_entropy loss", "cross_entropy loss+grad", "bce_with_logits loss", "logsumexp",
         "softmax")
IMPLS = ("fastxent", "numpy", "torch")
COLUMNS = ("shape", "call", "fastxent µs", "numpy µs", "torch µs", "vs numpy", "vs torch")


def make(shape):
    """``(x, target, bin_target)`` for a small batch: float64 logits, int64 class
    indices, and 0/1 float64 targets shaped like the logits."""
    rng = np.random.default_rng([19, *shape])
    x = 3 * rng.standard_normal(shape)
    return x, rng.integers(0, shape[1], shape[0]), rng.integers(0, 2, shape).astype(np.float64)


def calls(impl, x, target, bin_target) -> dict:
    """``{call: zero-argument callable}`` for one implementation; ImportError
    for torch where it is not installed."""
    if impl in ("fastxent", "numpy"):
        m: types.ModuleType = importlib.import_module("fastxent") if impl == "fastxent" else _baseline
        return {"cross_entropy loss": lambda: m.cross_entropy(x, target),
                "cross_entropy loss+grad": lambda: m.cross_entropy(x, target, return_grad=True),
                "bce_with_logits loss": lambda: m.binary_cross_entropy_with_logits(x, bin_target),
                "logsumexp": lambda: m.logsumexp(x, axis=-1),
                "softmax": lambda: m.softmax(x, axis=-1)}
    if impl == "torch":
        import torch  # optional peer
        import torch.nn.functional as F
        xt, tt, bt = torch.from_numpy(x), torch.from_numpy(target), torch.from_numpy(bin_target)
        xg = torch.from_numpy(x.copy()).requires_grad_()

        def loss_grad():
            xg.grad = None
            loss = F.cross_entropy(xg, tt)
            loss.backward()
            return loss, xg.grad
        return {"cross_entropy loss": lambda: F.cross_entropy(xt, tt),
                "cross_entropy loss+grad": loss_grad,
                "bce_with_logits loss": lambda: F.binary_cross_entropy_with_logits(xt, bt),
                "logsumexp": lambda: torch.logsumexp(xt, dim=-1),
                "softmax": lambda: torch.softmax(xt, dim=-1)}
    raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")


def mean_call_seconds(fn, *, target_seconds=0.02, rounds=5) -> float:
    """The mean time of one call of ``fn``: median over ``rounds`` of timeit's
    mean over enough calls to last about ``target_seconds``."""
    timer = timeit.Timer(fn)
    number = 1
    while True:                                    # also the warm-up
        elapsed = timer.timeit(number)
        if elapsed >= target_seconds / 4 or number >= 10**6:
            break
        number *= 4
    number = max(1, int(number * target_seconds / max(elapsed, 1e-9)))
    return float(np.median([timer.timeit(number) / number for _ in range(rounds)]))


def _check(impl, call, got, want):
    from ._workloads import differs
    if not isinstance(want, tuple):
        got, want = (got,), (want,)
    got = tuple(g.detach().numpy() if hasattr(g, "detach") else np.asarray(g) for g in got)
    return differs(got, want, np.float64, names=("loss", "grad")[:len(want)])


def run_section(*, tiny=False, peers=("torch",), out=None, err=None) -> dict:
    """Times the small calls and prints their table; returns ``{(shape, call, impl): s}``."""
    import fastxent

    from ._bench import table
    out = out or sys.stdout
    err = err or sys.stderr
    impls = [i for i in IMPLS if i != "torch" or "torch" in peers]
    seconds, notes = {}, []
    before = fastxent.get_num_threads()
    torch: types.ModuleType | None = None
    if "torch" in impls:
        torch = importlib.import_module("torch")    # optional peer
        torch_before = torch.get_num_threads()
        torch.set_num_threads(1)
    fastxent.set_num_threads(1)
    try:
        for shape in SHAPES:
            err.write(f"[small] {shape}:")
            x, target, bin_target = make(shape)
            want = calls("numpy", x, target, bin_target)
            want = {c: fn() for c, fn in want.items()}
            for impl in impls:
                err.write(f" {impl}")
                err.flush()
                for call, fn in calls(impl, x, target, bin_target).items():
                    problem = _check(impl, call, fn(), want[call])
                    if problem:
                        notes.append(f"{shape} {call}: {impl} left out, it disagrees: {problem}")
                        continue
                    seconds[(shape, call, impl)] = mean_call_seconds(
                        fn, target_seconds=0.001 if tiny else 0.02, rounds=2 if tiny else 5)
            err.write("\n")
    finally:
        fastxent.set_num_threads(before)
        if torch is not None:
            torch.set_num_threads(torch_before)

    def us(s):
        return "-" if s is None else f"{s * 1e6:.1f}" if s < 1e-3 else f"{s * 1e6:.0f}"

    def ratio(a, b):
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    rows = []
    for shape in SHAPES:
        for call in CALLS:
            t = {i: seconds.get((shape, call, i)) for i in IMPLS}
            rows.append(("x".join(map(str, shape)), call, us(t["fastxent"]), us(t["numpy"]),
                         us(t["torch"]), ratio(t["numpy"], t["fastxent"]),
                         ratio(t["torch"], t["fastxent"])))
    print(file=out)
    print(f"small: one call on a small batch, float64, int64 targets, one thread, µs per call "
          f"(mean of many calls, median of {2 if tiny else 5}){', tiny: timings mean little' if tiny else ''}",
          file=out)
    print(file=out)
    print(table(COLUMNS, rows), file=out)
    print(file=out)
    grow = [f"{call} {seconds[(SHAPES[1], call, 'fastxent')] / seconds[(SHAPES[0], call, 'fastxent')]:.2f}x"
            for call in CALLS if (SHAPES[0], call, "fastxent") in seconds
            and (SHAPES[1], call, "fastxent") in seconds]
    print(f"fastxent at 64x10 over 4x3 (issue 19's goal: at most 1.2x): {'; '.join(grow)}", file=out)
    print("torch: tensors made beforehand (torch.from_numpy); loss+grad is forward and backward(). "
          "vs: their time / fastxent's.", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    return seconds
