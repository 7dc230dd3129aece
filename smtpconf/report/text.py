"""``file:line:col: level [rule] message`` — colour on a terminal unless NO_COLOR is set."""

from __future__ import annotations

import os
import sys
from typing import Any

from smtpconf.findings import Finding, printable
from smtpconf.rules import Rule

_COLOURS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
_RESET, _DIM = "\033[0m", "\033[2m"


def use_colour() -> bool:
    # https://no-color.org: any non-empty NO_COLOR disables colour.
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def report(findings: list[Finding], rules: dict[str, Rule]) -> str:
    colour = use_colour()
    lines = []
    for f in findings:
        level = f"{_COLOURS[f.level]}{f.level}{_RESET}" if colour else f.level
        rule = f"{_DIM}[{f.rule}]{_RESET}" if colour else f"[{f.rule}]"
        # One finding, one line: nothing from the file under review may start another line or
        # send escape sequences to the reviewer's terminal.
        message = f.message if f.message.isprintable() else printable(f.message, len(f.message) * 6)
        file = f.file if f.file.isprintable() else printable(f.file, len(f.file) * 6)  # a newline in a name
        lines.append(f"{file}:{f.line}:{f.col}: {level} {rule} {message}")
    return "\n".join(lines) + ("\n" if lines else "")


def observations_report(observations: list[Any]) -> str:
    """What ``check`` verified, one line per endpoint and per domain (docs/check.md). Server-sent
    text (certificate names) goes through ``printable``: it is not ours to put on a terminal."""
    from smtpconf.probe.observations import describe_domain, describe_endpoint, describe_site

    lines = [f"{o.file}: {describe_endpoint(e)}" for o in observations for e in o.endpoints]
    lines += [f"{o.file}: {describe_domain(d)}" for o in observations for d in o.domains]
    lines += [f"{o.file}: {describe_site(s)}" for o in observations for s in o.sites]
    return "".join(printable(line, len(line) * 6) + "\n" for line in lines)
