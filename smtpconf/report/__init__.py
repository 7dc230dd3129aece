"""Reporters: one small function per output format, in a registry.

Each takes the findings of all files and the rule registry and returns the text to print.
"""

from __future__ import annotations

from typing import Callable

from smtpconf.findings import Finding
from smtpconf.rules import Rule

Reporter = Callable[[list[Finding], dict[str, Rule]], str]


def reporter(name: str) -> Reporter:
    if name == "text":
        from smtpconf.report.text import report
    elif name == "json":
        from smtpconf.report.json import report
    elif name == "sarif":
        from smtpconf.report.sarif import report
    elif name == "github":
        from smtpconf.report.github import report
    else:  # argparse restricts the choices
        raise ValueError(name)
    return report


def summary(findings: list[Finding]) -> str:
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info")}
    return ", ".join(f"{n} {level}{'s' if n != 1 and level != 'info' else ''}" for level, n in counts.items())
