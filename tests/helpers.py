"""Small helpers for unit tests: lint YAML text written to a temporary file."""

from __future__ import annotations

import textwrap
from pathlib import Path

from smtpconf.findings import Finding
from smtpconf.lint import FileResult, lint_path


def lint_text(tmp_path: Path, text: str, name: str = "smtpconf.yaml") -> FileResult:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return lint_path(path, name)


def rules_at(findings: list[Finding]) -> list[tuple[int, str]]:
    return sorted((f.line, f.rule) for f in findings)
