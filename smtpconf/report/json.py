"""Machine-readable findings: ``{"findings": [...], "summary": {...}}``."""

from __future__ import annotations

import json

from smtpconf.findings import Finding
from smtpconf.rules import Rule


def report(findings: list[Finding], rules: dict[str, Rule]) -> str:
    return json.dumps({
        "findings": [
            {"file": f.file, "line": f.line, "column": f.col, "level": f.level, "rule": f.rule,
             "message": f.message}
            for f in findings
        ],
        "summary": {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info")},
    }, indent=2, ensure_ascii=False) + "\n"
