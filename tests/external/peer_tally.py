"""The tally of the peers' test cases replayed on fastxent (tests/external/).

Each adapter turns a peer's test definitions (PyTorch's OpInfo/ModuleInfo/common_nn,
SciPy's test_logsumexp.py, scikit-learn's test_loss.py), read from the installed
package at test time, into cases.  :func:`run_case` runs one and records how it
ended:

- ``passed``: fastxent agrees with the peer (or passes the peer's own assertions);
- ``differs``: fastxent differs exactly as an entry of DIFFERENCES.md says it
  deliberately does, and the adapter checked that it does that (a case function
  signals it by raising :class:`Differs` with the entry's id);
- ``unsupported``: the case needs something fastxent does not offer (a bfloat16
  tensor, complex input, ...), raised as :class:`Unsupported` with the reason;
  where fastxent can be asked, the adapter has checked that it refuses cleanly;
- ``failed``: anything else; the pytest item fails.

The terminal summary prints one table per peer and every unsupported reason with
its count; the same goes to ``fastxent-external.json`` in pytest's cache directory
(or the temporary directory when the cache is off) for release notes.
"""
from __future__ import annotations

import collections
import itertools
import re
from pathlib import Path

import pytest

DIFFERENCES_MD = Path(__file__).with_name("DIFFERENCES.md")
SOURCES = {
    "torch": "PyTorch OpInfo / ModuleInfo / common_nn (`torch.testing._internal`)",
    "scipy": "SciPy `scipy/special/tests/test_logsumexp.py`, fastxent swapped in",
    "sklearn": "scikit-learn `sklearn/_loss/tests/test_loss.py`, mapped cases",
}
OUTCOMES = ("passed", "differs", "failed", "unsupported")


class Unsupported(Exception):
    """The case needs what fastxent does not offer; ``reason`` says what."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Differs(Exception):
    """fastxent differs from the peer as DIFFERENCES.md entry ``diff_id`` says."""

    def __init__(self, diff_id: str, detail: str = ""):
        super().__init__(diff_id)
        self.diff_id = diff_id
        self.detail = detail


def documented_differences() -> dict[str, str]:
    """The entries of DIFFERENCES.md: ``{id: title}`` from its ``### `id`: title``
    headings."""
    text = DIFFERENCES_MD.read_text(encoding="utf-8")
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^### `([a-z0-9-]+)`: (.+)$", text, re.MULTILINE)}


class Tally:
    """Every case's outcome, by peer."""

    def __init__(self):
        self.cases: dict[str, dict[str, tuple[str, str]]] = collections.defaultdict(dict)
        self.versions: dict[str, str] = {}

    def record(self, source: str, case_id: str, outcome: str, detail: str = "") -> None:
        assert outcome in OUTCOMES
        self.cases[source][case_id] = (outcome, detail)

    def counts(self, source: str) -> dict[str, int]:
        c = collections.Counter(outcome for outcome, _ in self.cases[source].values())
        return {"cases": len(self.cases[source]), **{o: c.get(o, 0) for o in OUTCOMES}}

    def reasons(self, source: str, outcome: str) -> list[tuple[str, int]]:
        """The distinct details of one outcome (unsupported reasons, difference
        ids), each with its count, most frequent first."""
        c = collections.Counter(detail for o, detail in self.cases[source].values() if o == outcome)
        return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))

    def as_json(self) -> dict:
        return {source: {"title": SOURCES.get(source, source),
                         "version": self.versions.get(source, ""),
                         "counts": self.counts(source),
                         "unsupported": dict(self.reasons(source, "unsupported")),
                         "differs": dict(self.reasons(source, "differs")),
                         "cases": {cid: list(v) for cid, v in sorted(self.cases[source].items())}}
                for source in sorted(self.cases)}


TALLY = Tally()


def run_case(source: str, case_id: str, fn) -> None:
    """Run one case (``fn()``) and record its outcome; skip the pytest item for an
    unsupported case, fail it for a failure or an undocumented difference."""
    try:
        fn()
    except Unsupported as u:
        TALLY.record(source, case_id, "unsupported", u.reason)
        pytest.skip(f"unsupported: {u.reason}")
    except Differs as d:
        if d.diff_id not in documented_differences():
            TALLY.record(source, case_id, "failed", f"undocumented difference {d.diff_id}")
            pytest.fail(f"difference {d.diff_id!r} is not documented in {DIFFERENCES_MD.name}")
        TALLY.record(source, case_id, "differs", d.diff_id)
    except pytest.skip.Exception as s:      # the peer's own test skipped itself
        TALLY.record(source, case_id, "unsupported", f"skipped by the peer's test: {s.msg}")
        raise
    except BaseException as e:
        message = " ".join(str(e).split())
        TALLY.record(source, case_id, "failed", f"{type(e).__name__}: {message[:160]}")
        raise
    else:
        TALLY.record(source, case_id, "passed")


def summary_lines() -> list[str]:
    """The terminal summary: a table per peer, then its unsupported reasons and
    the documented differences it met."""
    lines = ["| source | cases | passed | documented difference | failed | unsupported |",
             "|---|---:|---:|---:|---:|---:|"]
    order = [s for s in SOURCES if s in TALLY.cases] + sorted(set(TALLY.cases) - set(SOURCES))
    for source in order:
        c = TALLY.counts(source)
        title = SOURCES.get(source, source)
        version = TALLY.versions.get(source, "")
        lines.append(f"| {title} {version} | {c['cases']} | {c['passed']} | {c['differs']} | "
                     f"{c['failed']} | {c['unsupported']} |")
    for source in order:
        for outcome, label in (("unsupported", "not supported"), ("differs", "documented differences"),
                               ("failed", "failed")):
            reasons = TALLY.reasons(source, outcome)
            if reasons:
                lines.append(f"{source}, {label}:")
                lines.extend(f"  {n:5d}  {reason}" for reason, n in reasons)
    return lines


# ---- reading a peer's parametrized tests ----------------------------------------

def parametrizations(func):
    """The parametrizations of a peer's test function, read from its pytest marks:
    ``[(id, {argname: value})]``, with the ids pytest would give them (the
    decorator nearest the function first; the outermost varies fastest)."""
    axes = []
    for mark in [m for m in getattr(func, "pytestmark", []) if m.name == "parametrize"]:
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        ids = mark.kwargs.get("ids")
        entries = []
        for i, value in enumerate(mark.args[1]):
            if hasattr(value, "values") and hasattr(value, "marks"):     # pytest.param(...)
                value = value.values if len(names) > 1 else value.values[0]
            values = dict(zip(names, value)) if len(names) > 1 else {names[0]: value}
            if isinstance(ids, (list, tuple)):
                label = str(ids[i])
            else:
                label = "-".join(_label(n, v, i, ids) for n, v in values.items())
            entries.append((label, values))
        axes.append(entries)
    return [("-".join(label for label, _ in combo),
             {k: v for _, values in combo for k, v in values.items()})
            for combo in itertools.product(*axes)]


def _label(name, value, index, ids=None):
    if callable(ids):
        label = ids(value)
        if label is not None:
            return str(label)
    if isinstance(value, (int, float, complex, str, bool)) or value is None:
        return str(value)
    if isinstance(value, type) or callable(value):
        return getattr(value, "__name__", f"{name}{index}")
    return f"{name}{index}"
