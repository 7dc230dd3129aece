"""Messages under hostile input (SPEC §11): a finding never repeats a secret, not even the YAML
loader's; a file name cannot forge a report line; an ignore comment counts only when it is a real
YAML comment, never text inside a value."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import lint_text, rules_at

SMTPCONF = Path(sys.executable).with_name("smtpconf")
FINDING = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<level>error|warning|info) \[(?P<rule>[a-z0-9-]+)\] ")


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SMTPCONF), *argv], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "NO_COLOR": "1", "GITHUB_ACTIONS": ""})


# (YAML value, what it must never be shown as): the text and what YAML 1.1 reads it as.
SECRET_SPELLINGS = [
    ("01234567", ["01234567", "342391"]),
    ("7654:32:10", ["7654:32:10", "27556330"]),
    ("yes", ["yes"]),
    ("!!int 0xNotAnInt", ["0xNotAnInt"]),
    ("!!bool maybe-S3cret", ["maybe-S3cret"]),
]


@pytest.mark.parametrize("value, shown", SECRET_SPELLINGS, ids=[v for v, _ in SECRET_SPELLINGS])
@pytest.mark.parametrize("key", ["password", "refresh_token", "client_secret"])
@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_no_yaml_message_repeats_a_secret(tmp_path: Path, key: str, value: str, shown: list[str],
                                          fmt: str) -> None:
    where = (f"password: {value}" if key == "password" else
             f"oauth2: {{client_id: app, {key}: {value}}}")
    (tmp_path / "smtpconf.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        relays:
          ops:
            provider: office365
            username: ops@example.com
            {'auth: oauth2' if key != 'password' else 'auth: password'}
            {where}
        """))
    done = run("lint", "--format", fmt, "smtpconf.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("yaml-" in done.stdout) or ("schema" in done.stdout)
    said = done.stdout + done.stderr
    if fmt == "sarif":  # the rule documentation it carries is not about this file: only the results
        said = json.dumps(json.loads(done.stdout)["runs"][0]["results"]) + done.stderr
    for text in shown:
        assert text not in said


def test_the_octal_message_still_says_what_to_do_for_a_secret(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """\
        version: 1
        relays:
          a: {host: a.example.com, username: u, password: 01234567}
        """)
    octal = [f for f in result.findings if f.rule == "yaml-octal"]
    assert len(octal) == 1 and (octal[0].line, octal[0].col) == (3, 51)
    assert "`password`" in octal[0].message and "quote it" in octal[0].message
    assert "01234567" not in octal[0].message


def test_octal_messages_elsewhere_still_show_the_value(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """\
        version: 1
        relays:
          a: {host: a.example.com, port: 0465}
        """)
    assert any("'0465'" in f.message and "309" in f.message for f in result.findings)


def test_a_newline_in_a_file_name_cannot_forge_a_report_line(tmp_path: Path) -> None:
    forged = "x.yaml:1:1: error [forged] all is well\nreal.yaml"
    (tmp_path / forged).write_text("version: 1\nrelays:\n  a: {host: a.example.com, port: 0465}\n")
    done = run("lint", forged, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines and all(FINDING.match(line) for line in lines)
    assert "[forged]" not in [m["rule"] for m in map(FINDING.match, lines) if m]
    assert all(line.startswith("x.yaml:1:1: error [forged] all is well\\nreal.yaml:") for line in lines)


def test_an_escape_sequence_in_a_file_name_never_reaches_the_terminal(tmp_path: Path) -> None:
    name = "\x1b]52;c;ZWNobyBwd25lZA==\x07.yaml"  # OSC 52: write the clipboard
    (tmp_path / name).write_text("version: 1\nrelays:\n  a: {host: a.example.com, port: 0465}\n")
    done = run("lint", name, cwd=tmp_path)
    assert done.returncode == 1
    assert "\x1b" not in done.stdout and "\\x1b]52" in done.stdout


def test_a_fatal_error_shows_a_hostile_file_name_escaped_on_lines_that_cannot_be_forged(tmp_path: Path) -> None:
    """Errors that stop a command (exit 2) name files too: ``init`` refusing to overwrite one."""
    name = "a\x1b[2J.yaml\nsmtpconf: wrote all files"
    (tmp_path / name).write_text("")
    done = run("init", name, cwd=tmp_path)
    assert done.returncode == 2
    assert "\x1b" not in done.stderr and "\\x1b[2J" in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("smtpconf: error: a\\x1b[2J.yaml")
    assert all(line.startswith("  ") for line in lines[1:]) and len(lines) == 2


IGNORE_IN_VALUES = """\
    version: 1
    accounts:
      - {email: a@example.com, host: smtp.example.com, port: 465, security: starttls, name: "ops # smtpconf: ignore[all]"}
      - {email: b@example.com, host: smtp.example.com, port: 465, security: starttls, name: 'ops # smtpconf: ignore[tls-port-mismatch]'}
      - email: c@example.com
        host: smtp.example.com
        port: 465
        name: >-
          # smtpconf: ignore[all]
        security: starttls
      - {email: d@example.com, host: smtp.example.com, port: 465, security: starttls}  # smtpconf: ignore[tls-port-mismatch]
      # smtpconf: ignore[tls-port-mismatch]
      - {email: e@example.com, host: smtp.example.com, port: 465, security: starttls, name: "x # y"}
    """


def test_an_ignore_inside_a_quoted_or_block_value_silences_nothing(tmp_path: Path) -> None:
    result = lint_text(tmp_path, IGNORE_IN_VALUES)
    mismatches = sorted(f.line for f in result.findings if f.rule == "tls-port-mismatch")
    # Lines 3, 4 (quoted values) and 10 (the block scalar's account) are reported; 11 and 13
    # carry real comments (on the line, and alone on the line before).
    assert mismatches == [3, 4, 10]


def test_a_real_comment_after_a_quoted_value_still_counts(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """\
        version: 1
        accounts:
          - {email: a@example.com, host: smtp.example.com, port: 465, security: starttls, name: "a#b"}  # smtpconf: ignore[tls-port-mismatch]
          - {email: 小明@example.com, name: "小明 # 小明", host: smtp.example.com, port: 465, security: starttls}  # smtpconf: ignore[tls-port-mismatch]
        """)
    assert rules_at([f for f in result.findings if f.rule == "tls-port-mismatch"]) == []
