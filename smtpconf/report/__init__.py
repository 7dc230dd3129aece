"""Reporters: one small function per output format, in a registry.

Each takes the findings of all files and the rule registry and returns the text to print.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Literal

from smtpconf.findings import Finding
from smtpconf.rules import Rule

Reporter = Callable[[list[Finding], dict[str, Rule]], str]
ReportFormat = Literal["text", "json", "sarif", "github"]


def reporter(name: ReportFormat) -> Reporter:
    if name == "text":
        from smtpconf.report.text import report
    elif name == "json":
        from smtpconf.report.json import report
    elif name == "sarif":
        from smtpconf.report.sarif import report
    elif name == "github":
        from smtpconf.report.github import report
    else:  # the type, and argparse's choices, rule this out
        raise ValueError(name)
    return report


def default_format() -> ReportFormat:
    """The format when ``--format`` is not given: annotations in GitHub Actions, text elsewhere."""
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


def emit(findings: list[Finding], rules: dict[str, Rule], fmt: ReportFormat | None) -> None:
    """Print the report on stdout; for text, a one-line count on stderr (where a person reads it)."""
    fmt = fmt or default_format()
    sys.stdout.write(reporter(fmt)(findings, rules))
    if fmt == "text" and findings:
        print(f"smtpconf: {summary(findings)}", file=sys.stderr)


def summary(findings: list[Finding]) -> str:
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning", "info")}
    return ", ".join(f"{n} {level}{'s' if n != 1 and level != 'info' else ''}" for level, n in counts.items())
