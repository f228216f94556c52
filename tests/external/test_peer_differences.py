"""DIFFERENCES.md is the one list of fastxent's deliberate differences from its peers.

Every difference an adapter may report must be documented there, and every
documented difference must be exercised: reported by an adapter, or pinned by a
named test of fastxent's own suite.  Runs without the peers installed.
"""
from __future__ import annotations

import re
from pathlib import Path

from peer_tally import DIFFERENCES_MD, documented_differences

HERE = Path(__file__).parent
TESTS = HERE.parent


def raised_by_adapters() -> dict[str, set[str]]:
    """``{id: {adapter file}}`` for every ``Differs("<id>")`` in the adapters."""
    found: dict[str, set[str]] = {}
    for path in sorted(HERE.glob("test_peer_*.py")):
        for m in re.finditer(r"Differs\(\s*[\"']([a-z0-9-]+)[\"']", path.read_text(encoding="utf-8")):
            found.setdefault(m.group(1), set()).add(path.name)
    return found


def pinned_tests(entry_text: str) -> list[tuple[Path, str]]:
    return [(TESTS.parent / path, name)
            for path, name in re.findall(r"Pinned by `(tests/[\w/]+\.py)::(\w+)`", entry_text)]


def entries() -> dict[str, str]:
    """Each documented id with the text of its entry."""
    text = DIFFERENCES_MD.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z0-9-]+)`: .+$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_reported_difference_is_documented():
    documented = documented_differences()
    raised = raised_by_adapters()
    assert raised, "found no Differs(...) in the adapters: has their wording changed?"
    missing = {d: sorted(files) for d, files in raised.items() if d not in documented}
    assert not missing, f"differences reported but not documented in {DIFFERENCES_MD.name}: {missing}"


def test_every_documented_difference_is_exercised():
    raised = raised_by_adapters()
    for diff_id, text in entries().items():
        if diff_id in raised:
            continue
        pins = pinned_tests(text)
        assert pins, f"{diff_id}: neither reported by an adapter nor pinned by a named test"
        for path, name in pins:
            assert path.is_file(), f"{diff_id}: {path} does not exist"
            assert re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.MULTILINE), \
                f"{diff_id}: {path.name} has no test {name}"


def test_headings_parse():
    documented = documented_differences()
    assert set(documented) == set(entries())
    assert all(title for title in documented.values())
