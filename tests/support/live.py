"""Helpers for the live-check integration tests: run the real ``smtpconf check`` command in a
subprocess and sort its findings by the relay, account or domain they belong to."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class CheckRun(NamedTuple):
    returncode: int
    findings: list[dict[str, Any]]
    stderr: str
    seconds: float


def smtpconf(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smtpconf", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})


def run_check(config: Path, *args: str) -> CheckRun:
    started = time.monotonic()
    done = smtpconf("check", str(config), "--format", "json", *args)
    seconds = time.monotonic() - started
    assert done.returncode in (0, 1), done.stderr
    return CheckRun(done.returncode, json.loads(done.stdout)["findings"], done.stderr, seconds)


def key_lines(text: str, indent: int = 2) -> dict[str, int]:
    """The line of each mapping key at ``indent`` spaces (relay and domain names), 1-based."""
    pattern = re.compile(rf"^ {{{indent}}}([^\s:#-][^:]*):\s*$")
    return {m.group(1).strip('"'): number for number, line in enumerate(text.splitlines(), 1)
            if (m := pattern.match(line))}


def rules_by_key(text: str, findings: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Live rule ids per relay/domain name, from the findings' lines (offline lint findings, such
    as the info ``provider-credential-hint``, are not what these tests are about)."""
    from smtpconf.rules import all_rules

    live = {rule.id for rule in all_rules().values() if rule.live}
    findings = [f for f in findings if f["rule"] in live]
    lines = {line: name for name, line in key_lines(text).items()}
    by_key: dict[str, list[str]] = {name: [] for name in lines.values()}
    for finding in findings:
        name = lines.get(finding["line"])
        assert name is not None, f"finding not at a relay or domain line: {finding}"
        by_key[name].append(finding["rule"])
    return by_key
