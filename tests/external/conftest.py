"""The peers' own tests, replayed on fastxent: the tally's report.

See peer_tally.py for the outcomes and DIFFERENCES.md for fastxent's deliberate
differences from the peers.  The three adapters skip cleanly where their peer (or
``expecttest``, which ``torch.testing._internal`` imports) is not installed.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from peer_tally import TALLY, summary_lines

REPORT_NAME = "fastxent-external.json"


def _report_path(config) -> Path:
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("fastxent-external")) / REPORT_NAME
    return Path(tempfile.gettempdir()) / REPORT_NAME


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY.cases:
        return
    path = _report_path(config)
    path.write_text(json.dumps(TALLY.as_json(), indent=1), encoding="utf-8")
    terminalreporter.section("fastxent against its peers' own tests (tests/external)")
    for line in summary_lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(every case and outcome: {path})")
