"""Garbage-input fuzz of fastxent's public functions; run as a subprocess.

    python tests/fuzz_driver.py [--n N] [--seed S] [--quiet]

Each call starts from a valid call of a randomly chosen function and replaces
one to three of its arguments with garbage: object arrays, strings, None,
nested ragged lists, complex, bool, datetime, structured and long-double
arrays, huge and negative class indices, NaN/inf in probability targets,
wrong ``out`` arrays (shape, dtype, layout, read-only, aliasing an input),
out-of-range options.  The contract (SPEC.md, "Bad input"): every call returns
or raises TypeError/ValueError, never anything else, never crashes, and never
modifies an input (nor ``out`` when it raises).

Before each call the driver writes the call's number and description to
stderr when --trace is given (so a crash names its call; faulthandler prints
the Python stack).  The last line of stdout is a JSON summary; the exit status
is 0 when every call kept the contract, 1 otherwise.

Functions are a table (FUNCTIONS): a new public function is one entry there.
"""
from __future__ import annotations

import argparse
import collections
import faulthandler
import inspect
import json
import math
import sys
import traceback
import warnings

import numpy as np

import fastxent

ALLOWED = (TypeError, ValueError)


class Garbage:
    """Garbage values, some generic, some made to fit the call being mutated."""

    def __init__(self, rng):
        self.rng = rng

    def generic(self):
        r = self.rng
        pool = [
            None, "abc", "", b"bytes", 3 + 4j, True, False, [], [[]], (), {}, {"a": 1}, {1, 2},
            object(), Ellipsis, slice(1, 2), range(3), print, float("nan"), float("inf"),
            -float("inf"), 2 ** 63, -2 ** 63 - 1, 2 ** 64, 10 ** 30, -(10 ** 30), -1, 0, 1.5,
            -0.5, np.float16(2), np.int8(-3), np.uint64(2 ** 64 - 1),
            [[1.0, 2.0], [3.0]],                          # ragged
            [[1.0, [2.0]], [3.0, 4.0]],                   # ragged, nested
            [1.0, "a"], [None, 1.0], [[np.nan, 1.0]],
            np.array([object(), 1.0], dtype=object),
            np.array([[1.0, 2.0], [3.0, 4.0]], dtype=object),
            np.array(["a", "b", "c"]),
            np.array([b"x", b"y"]),
            np.array([1 + 2j, 3j]),
            np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
            np.array([1, 2], dtype="timedelta64[s]"),
            np.array([True, False, True]),
            np.zeros(3, dtype=[("a", "f8"), ("b", "i4")]),
            np.zeros(2, dtype="V8"),
            np.array([1.0, 2.0], dtype=np.longdouble),
            np.zeros((1,) * 32),                          # NumPy's maximum number of dims
            np.zeros((0, 3)), np.zeros((3, 0)), np.zeros(0), np.array(1.5), np.array(3),
            np.full((2, 3), np.nan), np.full((2, 3), np.inf), np.full((2, 3), -np.inf),
            np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
            np.arange(6.0).reshape(2, 3)[:, ::2],
            np.arange(6, dtype=">f8").reshape(2, 3),
            np.iinfo(np.int64).max, np.iinfo(np.int64).min,
            np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max]),
            np.array([2 ** 63, 2 ** 64 - 1], dtype=np.uint64),
            np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32),
        ]
        return pool[r.integers(len(pool))]

    def fitted(self, ref_shape, C):
        """Garbage that passes the first checks of an array argument: the right
        shape with a bad dtype or values, or a plausible shape that is wrong."""
        r = self.rng
        shape = tuple(ref_shape)
        n = math.prod(shape)
        choice = r.integers(14)
        if choice == 0:
            return np.full(shape, "x")
        if choice == 1:
            return np.empty(shape, dtype=object)
        if choice == 2:
            return np.full(shape, 1 + 1j)
        if choice == 3:
            return np.zeros(shape, dtype=bool)
        if choice == 4:
            return np.full(shape, r.choice([-1, C, C + 1, 2 ** 40, -2 ** 62, np.iinfo(np.int64).max]),
                           dtype=np.int64)
        if choice == 5:
            a = np.zeros(shape, dtype=np.int64)
            if n:
                a.reshape(-1)[r.integers(n)] = r.choice([-7, C, 10 ** 15, np.iinfo(np.int64).min])
            return a
        if choice == 6:
            return np.full(shape, np.iinfo(np.uint64).max, dtype=np.uint64)
        if choice == 7:
            return np.zeros(shape + (2,))
        if choice == 8:
            return np.zeros(shape[:-1]) if shape else np.zeros(3)
        if choice == 9:
            return np.zeros(tuple(reversed(shape)) + (1,))
        if choice == 10:
            v = r.standard_normal(shape)
            if n:
                v.reshape(-1)[r.integers(n)] = r.choice([np.nan, np.inf, -np.inf, -1e300, 1e300])
            return v
        if choice == 11:
            return np.zeros(shape, dtype=np.float16).tolist()
        if choice == 12:
            return np.zeros(shape, dtype=np.uint8)
        return np.zeros(shape, dtype=np.complex64)


# ---- valid calls ---------------------------------------------------------------------

def _logits(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    if x.size and rng.integers(3) == 0:
        with np.errstate(over="ignore"):
            x.reshape(-1)[rng.integers(x.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
    return x


def _shape(rng):
    ndim = int(rng.integers(1, 4))
    shape = [int(rng.integers(0, 5)) for _ in range(ndim)]
    if rng.integers(40) == 0:          # big enough for the parallel path
        shape = [64, 700][:ndim] + [1] * max(0, ndim - 2)
    return shape


def valid_multiclass(rng, kind):
    dtype = rng.choice([np.float64, np.float32, np.float16])
    shape = _shape(rng)
    ax = 0 if len(shape) == 1 else 1
    shape[ax] = max(shape[ax], 1)
    C = shape[ax]
    sshape = tuple(shape[:ax] + shape[ax + 1:])
    x = _logits(rng, shape, dtype)
    kw = {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    if kind == "xent" and rng.integers(2):
        t = rng.random(shape).astype(dtype)
    else:
        t = rng.integers(0, C, size=sshape)
        if t.size and rng.integers(2):
            t.reshape(-1)[0] = -100
    if rng.integers(2):
        kw["weight"] = rng.random(C).astype(dtype)
    if kind == "xent" and rng.integers(2):
        kw["label_smoothing"] = float(rng.choice([0.0, 0.1, 1.0]))
    if rng.integers(2):
        kw["return_grad"] = True
        if rng.integers(2):
            kw["out"] = np.empty(shape, dtype)
        if rng.integers(3) == 0:
            kw["grad_output"] = rng.random(sshape) if kw["reduction"] == "none" else 2.0
    if rng.integers(3) == 0:
        kw["n_threads"] = int(rng.integers(1, 4))
    if kind == "xent" and rng.integers(4) == 0:      # the language-model options
        kw["z_loss"] = float(rng.choice([0.0, 1e-4, 0.5]))
        kw["softcap"] = None if rng.integers(3) == 0 else float(rng.choice([0.5, 30.0]))
    return [x, t], kw, C


def valid_lse(rng, name):
    dtype = rng.choice([np.float64, np.float32, np.float16])
    shape = _shape(rng)
    x = _logits(rng, shape, dtype)
    kw = {}
    if rng.integers(2):
        kw["axis"] = int(rng.integers(-len(shape), len(shape)))
    if name == "logsumexp" and rng.integers(2):
        kw["keepdims"] = True
    if name != "logsumexp" and rng.integers(2):
        kw["out"] = np.empty(shape, dtype)
    return [x], kw, shape[-1]


def valid_binary(rng, name):
    dtype = rng.choice([np.float64, np.float32, np.float16])
    shape = _shape(rng)
    x = rng.random(shape).astype(dtype) if name == "binary_cross_entropy" else _logits(rng, shape, dtype)
    t = rng.random(shape).astype(dtype)
    kw = {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    if rng.integers(2):
        kw["weight"] = rng.random(shape[-1:]).astype(dtype)
    if name.endswith("logits") and rng.integers(2):
        kw["pos_weight"] = rng.random(shape[-1:]).astype(dtype)
    if rng.integers(2):
        kw["return_grad"] = True
        if rng.integers(2):
            kw["out"] = np.empty(shape, dtype)
    return [x, t], kw, shape[-1]


def _module_call(cls):
    """A module as a function: the constructor's options, then the call's."""
    ctor_keys = [k for k in inspect.signature(cls).parameters if k not in ("self",)]

    def call(*args, **kw):
        ctor = {k: kw.pop(k) for k in list(kw) if k in ctor_keys}
        return cls(**ctor)(*args, **kw)
    call.accepts = frozenset(ctor_keys) | {"return_grad", "grad_output", "out"}
    return call


def _set_threads_call(n_threads):
    before = fastxent.get_num_threads()
    try:
        fastxent.set_num_threads(n_threads)
    finally:
        fastxent.set_num_threads(before)


FUNCTIONS = {
    "cross_entropy": (fastxent.cross_entropy, lambda r: valid_multiclass(r, "xent")),
    "nll_loss": (fastxent.nll_loss, lambda r: valid_multiclass(r, "nll")),
    "CrossEntropyLoss": (_module_call(fastxent.CrossEntropyLoss), lambda r: valid_multiclass(r, "xent")),
    "NLLLoss": (_module_call(fastxent.NLLLoss), lambda r: valid_multiclass(r, "nll")),
    "logsumexp": (fastxent.logsumexp, lambda r: valid_lse(r, "logsumexp")),
    "softmax": (fastxent.softmax, lambda r: valid_lse(r, "softmax")),
    "log_softmax": (fastxent.log_softmax, lambda r: valid_lse(r, "log_softmax")),
    "set_num_threads": (_set_threads_call, lambda r: ([], {"n_threads": 2}, 1)),
    "binary_cross_entropy": (fastxent.binary_cross_entropy,
                             lambda r: valid_binary(r, "binary_cross_entropy")),
    "binary_cross_entropy_with_logits": (fastxent.binary_cross_entropy_with_logits,
                                         lambda r: valid_binary(r, "binary_cross_entropy_with_logits")),
    "BCELoss": (_module_call(fastxent.BCELoss), lambda r: valid_binary(r, "binary_cross_entropy")),
    "BCEWithLogitsLoss": (_module_call(fastxent.BCEWithLogitsLoss),
                          lambda r: valid_binary(r, "binary_cross_entropy_with_logits")),
}

def accepts(fn):
    """The keyword options ``fn`` takes."""
    if hasattr(fn, "accepts"):
        return sorted(fn.accepts)
    params = inspect.signature(fn).parameters
    return [k for k, p in params.items() if p.kind is not p.VAR_KEYWORD]


def mutate(rng, garbage, fn, args, kw, C):
    """Replace 1-3 argument slots (mostly 1) with garbage; returns a description."""
    what = []
    keys = [k for k in accepts(fn) if k not in ("input", "target", "x")]
    for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3]))):
        slots = [("arg", i) for i in range(len(args))] + [("kw", k) for k in keys]
        kind, key = slots[rng.integers(len(slots))]
        old = args[key] if kind == "arg" else kw.get(key)
        if key == "out" and rng.integers(2):
            new = _bad_out(rng, args, kw)
            if "return_grad" in keys:
                kw["return_grad"] = True
        elif isinstance(old, np.ndarray) and rng.integers(2):
            new = garbage.fitted(old.shape, C)
        else:
            new = garbage.generic()
        if kind == "arg":
            args[key] = new
        else:
            kw[key] = new
        what.append(f"{kind}:{key}={_short(new)}")
    if rng.integers(20) == 0:
        kw["no_such_option"] = 1
        what.append("unknown keyword")
    return ", ".join(what)


def _bad_out(rng, args, kw):
    x = args[0] if isinstance(args[0], np.ndarray) else np.zeros(3)
    choice = rng.integers(9)
    if choice == 0:
        return x                                        # the input itself
    if choice == 1 and len(args) > 1 and isinstance(args[1], np.ndarray):
        return args[1]                                  # the target
    if choice == 2 and isinstance(kw.get("weight"), np.ndarray):
        return kw["weight"]
    if choice == 3:
        o = np.empty(x.shape, x.dtype)
        o.flags.writeable = False
        return o
    if choice == 4:
        return np.empty(x.shape, np.float64 if x.dtype != np.float64 else np.float32)
    if choice == 5:
        return np.empty(x.shape[::-1] + (1,), x.dtype)
    if choice == 6 and x.ndim:
        return np.empty(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)[..., ::2]
    if choice == 7:
        return np.empty(x.shape, x.dtype.newbyteorder())
    return x.tolist()


def _short(v):
    if isinstance(v, np.ndarray):
        return f"ndarray{v.shape}:{v.dtype}"
    s = repr(v)
    return s if len(s) < 40 else s[:37] + "..."


# ---- checking that nothing was modified ---------------------------------------------------

def _arrays(args, kw):
    out = []
    for i, a in enumerate(args):
        out.append((f"arg{i}", a))
    for k, v in kw.items():
        out.append((k, v))
    return [(name, v) for name, v in out if isinstance(v, np.ndarray)]


def _fingerprint(a):
    if a.dtype.hasobject:
        return ("obj", a.shape, tuple(id(o) for o in a.reshape(-1)))
    return (a.shape, a.dtype.str, a.strides, a.flags.writeable, a.tobytes())


def _kernel_checked(name, raised):
    """Whether ``raised`` is binary_cross_entropy's check that its values lie in
    [0, 1], which its kernel makes during its one pass, after writing to ``out``
    (as its docstring says)."""
    return (name in ("binary_cross_entropy", "BCELoss") and isinstance(raised, ValueError)
            and "outside [0, 1]" in str(raised))


def run(n, seed, trace=False):
    rng = np.random.default_rng(seed)
    garbage = Garbage(rng)
    names = sorted(FUNCTIONS)
    outcomes = collections.Counter()
    by_function = collections.defaultdict(collections.Counter)
    messages = collections.Counter()
    warns = collections.Counter()
    failures = []
    for i in range(n):
        name = names[rng.integers(len(names))]
        fn, make = FUNCTIONS[name]
        args, kw, C = make(rng)
        desc = "valid call" if rng.integers(10) == 0 else mutate(rng, garbage, fn, args, kw, C)
        if trace:
            sys.stderr.write(f"call {i}: {name}: {desc}\n")
            sys.stderr.flush()
        before = [(k, a, _fingerprint(a)) for k, a in _arrays(args, kw)]
        raised = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = fn(*args, **kw)
            except ALLOWED as exc:
                raised = exc
                key = type(exc).__name__
            except BaseException as exc:          # noqa: BLE001 -- the point of the fuzz
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raised = exc
                key = "FORBIDDEN " + type(exc).__name__
                failures.append({"call": i, "function": name, "mutation": desc,
                                 "error": f"{type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc(limit=4)})
            else:
                key = "returned"
                problem = _check_result(name, result, kw)
                if problem:
                    key = "BAD RESULT"
                    failures.append({"call": i, "function": name, "mutation": desc, "error": problem})
        for w in caught:
            warns[f"{name}: {w.category.__name__}: {str(w.message)[:60]}"] += 1
        for k, a, fp in before:
            if k == "out" and raised is None:
                continue                           # out is written on success, by design
            if k == "out" and _kernel_checked(name, raised):
                continue                           # documented: see _kernel_checked
            if _fingerprint(a) != fp:
                key = "MODIFIED INPUT"
                failures.append({"call": i, "function": name, "mutation": desc,
                                 "error": f"argument {k} was modified" + (" (the call raised)" if raised else "")})
        outcomes[key] += 1
        by_function[name][key] += 1
        if raised is not None:
            messages[f"{type(raised).__name__}: {str(raised)[:70]}"] += 1
    return {
        "calls": n,
        "seed": seed,
        "functions": names,
        "outcomes": dict(outcomes),
        "by_function": {k: dict(v) for k, v in sorted(by_function.items())},
        "distinct_error_messages": len(messages),
        "top_error_messages": messages.most_common(12),
        "warnings": dict(warns.most_common(10)),
        "failures": failures[:20],
        "n_failures": len(failures),
        # calls that took the fast path of small calls (issue 19)
        "fast_path_calls": fastxent._kernels.kernels.fast_calls(),
    }


def _check_result(name, result, kw):
    """A call that returned: the result is NumPy floats of a sane type."""
    if name == "set_num_threads":
        return None
    parts = result if isinstance(result, tuple) else (result,)
    if kw.get("return_grad") and name not in ("logsumexp", "softmax", "log_softmax"):
        if not (isinstance(result, tuple) and len(result) == 2):
            return f"return_grad=True returned {type(result).__name__}"
    for p in parts:
        if not isinstance(p, (np.ndarray, np.generic)) or p.dtype.kind != "f":
            return f"returned {type(p).__name__} {getattr(p, 'dtype', '')}"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trace", action="store_true", help="name each call on stderr before making it")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    faulthandler.enable()
    summary = run(a.n, a.seed, a.trace)
    if not a.quiet:
        print(f"{summary['calls']} calls, seed {summary['seed']}: {summary['outcomes']}")
        for f in summary["failures"]:
            print("FAILURE", json.dumps(f))
    print(json.dumps(summary))
    return 0 if summary["n_failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
