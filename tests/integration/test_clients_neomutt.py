"""Real neomutt reads the rendered muttrc: ``neomutt -F FILE -Q VAR`` prints each setting as
neomutt understood it, and the password command in backticks runs and yields the password. That neomutt then logs in
to a real IMAP server and reads the mail (password and OAuth2) is test_clients_neomutt_imap.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_clients import (  # noqa: F401  (clients_out is a fixture)
    ENV_CANARY, ENV_CANARY_NAME, FILE_CANARY, IDN_SMTP, clients_out,
)
from tests.support.gate import need_program

pytestmark = pytest.mark.integration


def query(neomutt: str, rc: Path, home: Path, *names: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """What neomutt thinks each variable is (its own quoted output, unquoted here). One run per
    variable: neomutt answers only the first -Q."""
    values = {}
    for name in names:
        done = subprocess.run([neomutt, "-n", "-F", str(rc), "-Q", name], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL,
                              env={"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", **(env or {})})
        assert done.returncode == 0, done.stderr
        shown, _, value = done.stdout.strip().removeprefix("set ").partition(" = ")
        assert shown == name, done.stdout
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[name] = value
    return values


@pytest.fixture
def neomutt() -> str:
    return need_program("neomutt", "neomutt")


def test_neomutt_reads_implicit_tls_settings_and_runs_the_password_command(
        clients_out: Path, neomutt: str, tmp_path: Path) -> None:
    rc = clients_out / "neomutt" / "alerts@163.com.muttrc"
    got = query(neomutt, rc, tmp_path, "smtp_url", "smtp_pass", "ssl_force_tls", "ssl_starttls", "from",
                "real_name", env={ENV_CANARY_NAME: ENV_CANARY})
    assert got == {"smtp_url": "smtps://alerts%40163.com@smtp.163.com:465/", "smtp_pass": ENV_CANARY,
                   "ssl_force_tls": "yes", "ssl_starttls": "no", "from": "alerts@163.com",
                   "real_name": 'Ops "Alerts", 163'}


def test_neomutt_reads_file_secret_and_idn(clients_out: Path, neomutt: str, tmp_path: Path) -> None:
    got = query(neomutt, clients_out / "neomutt" / "secretfile@example.com.muttrc", tmp_path, "smtp_pass",
                "smtp_url", "ssl_starttls")
    assert got == {"smtp_pass": FILE_CANARY, "smtp_url": "smtp://secretfile%40example.com@smtp.example.com:587/",
                   "ssl_starttls": "yes"}
    idn = query(neomutt, clients_out / "neomutt" / "用户@例子.测试.muttrc", tmp_path, "smtp_url", "real_name",
                "folder")
    assert f"@{IDN_SMTP}:465/" in idn["smtp_url"] and idn["real_name"] == "小明"
    assert idn["folder"].startswith("imaps://")


def test_neomutt_reads_every_rendered_file_without_complaint(clients_out: Path, neomutt: str,
                                                            tmp_path: Path) -> None:
    # The odd-character account runs `pass`, which is not installed: neomutt reports the failing
    # command but the file must still parse (exit 0), like every other one.
    for rc in sorted((clients_out / "neomutt").iterdir()):
        got = query(neomutt, rc, tmp_path, "smtp_url")
        assert got["smtp_url"].startswith(("smtp://", "smtps://")), rc.name


def test_no_value_reaches_neomutts_expansion_inside_backticks(neomutt: str, tmp_path: Path) -> None:
    """SPEC §11: inside backticks neomutt replaces ``$name`` with its own variables before the
    shell runs, even within the shell's single quotes. A display name that closes a quote plus a
    ``{file:}`` secret whose path says ``$realname`` once ran the name as shell code."""
    from tests.support.render import render_ok, write_config

    marker = tmp_path / "pwned"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "$realname").write_text("the-password\n", encoding="utf-8")
    name = f"Alice'; touch {marker}; echo '"
    config = write_config(tmp_path, f"""version: 1
accounts:
  - email: alice@lab.example.test
    name: "{name}"
    host: smtp.lab.example.test
    port: 587
    password: {{file: "{secrets}/$realname"}}
    incoming: {{host: imap.lab.example.test, port: 993, security: tls}}
""")
    render_ok(config, tmp_path / "out", "neomutt")
    rc = tmp_path / "out" / "neomutt" / "alice@lab.example.test.muttrc"
    values = query(neomutt, rc, tmp_path, "real_name", "smtp_pass", "imap_pass")
    assert not marker.exists()
    assert values == {"real_name": name, "smtp_pass": "the-password", "imap_pass": "the-password"}
