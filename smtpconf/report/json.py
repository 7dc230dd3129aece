"""Machine-readable findings: ``{"findings": [...], "summary": {...}}``."""

from __future__ import annotations

import json
from typing import Any

from smtpconf.findings import Finding
from smtpconf.rules import Rule


def report(findings: list[Finding], rules: dict[str, Rule], *,
           observations: list[dict[str, Any]] | None = None) -> str:
    """``observations``: what ``check`` verified (docs/check.md), under its own key after the rest."""
    extra = {"observations": observations} if observations is not None else {}
    return json.dumps({
        "findings": [
            {"file": f.file, "line": f.line, "column": f.col, "level": f.level, "rule": f.rule,
             "message": f.message}
            for f in findings
        ],
        "summary": {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info")},
        **extra,
    }, indent=2, ensure_ascii=False) + "\n"
