"""GitHub Actions workflow commands: one annotation per finding on the pull request's diff."""

from __future__ import annotations

from smtpconf.findings import Finding
from smtpconf.rules import Rule

_COMMAND = {"error": "error", "warning": "warning", "info": "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def report(findings: list[Finding], rules: dict[str, Rule]) -> str:
    return "".join(
        f"::{_COMMAND[f.level]} file={_property(f.file)},line={f.line},col={f.col},"
        f"title={_property('smtpconf ' + f.rule)}::{_data(f.message)}\n"
        for f in findings
    )
