"""The msmtp target: one msmtprc per account, read back with msmtp's own argument rule."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.cli_clients import (  # noqa: F401  (clients_out, oauth2_out are fixtures)
    CLIENT_SECRET_CANARY, ENV_CANARY_NAME, PEM, FILE_CANARY, IDN_DOMAIN, IDN_SMTP, ODD_COMMAND, ODD_USERNAME,
    REFRESH_CANARY, OAuth2Render, assert_no_secret_values, clients_out, oauth2_out, token_command,
)
from tests.support.render import render_ok, tree, write_config


def msmtprc(out: Path, email: str) -> tuple[dict[str, str], str]:
    """(command -> argument, text) the way msmtp reads it: the rest of the line, one enclosing
    pair of double quotes stripped, whole-line comments."""
    text = (out / "msmtp" / f"{email}.msmtprc").read_text(encoding="utf-8")
    settings: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        command, _, argument = line.partition(" ")
        argument = argument.strip()
        if len(argument) >= 2 and argument[0] == argument[-1] == '"':
            argument = argument[1:-1]
        assert command not in settings or command == "account", f"{command} twice"
        settings[command if command != "account" or "account" not in settings else "account default"] = argument
    return settings, text


def test_starttls_account(clients_out: Path) -> None:
    rc, _ = msmtprc(clients_out, "xiaoming@example.com")
    assert rc == {
        "account": "xiaoming@example.com", "host": "smtp.gmail.com", "port": "587",
        "from": "xiaoming@example.com", "auth": "on", "user": "xiaoming@example.com",
        "passwordeval": "pass show mail/xiaoming", "tls": "on", "tls_starttls": "on",
        "tls_trust_file": "system", "account default": "default : xiaoming@example.com",
    }


def test_implicit_tls_account_reads_the_password_from_the_environment(clients_out: Path) -> None:
    rc, _ = msmtprc(clients_out, "alerts@163.com")
    assert (rc["host"], rc["port"], rc["tls"], rc["tls_starttls"]) == ("smtp.163.com", "465", "on", "off")
    assert rc["passwordeval"] == f"printenv {ENV_CANARY_NAME}"


def test_idn_host_and_odd_characters_survive_msmtp_quoting(clients_out: Path) -> None:
    rc, _ = msmtprc(clients_out, "用户@例子.测试")
    assert rc["host"] == IDN_SMTP
    assert rc["from"] == f"用户@{IDN_DOMAIN}"  # the envelope sender without SMTPUTF8
    assert rc["user"] == ODD_USERNAME
    assert rc["passwordeval"] == ODD_COMMAND
    assert rc["tls_starttls"] == "off"


def test_file_secret_becomes_a_command_that_prints_it(clients_out: Path) -> None:
    rc, _ = msmtprc(clients_out, "secretfile@example.com")
    command = shlex.split(rc["passwordeval"])
    assert command[0] == "cat" and Path(command[1]).is_absolute()
    done = subprocess.run(rc["passwordeval"], shell=True, capture_output=True, text=True, timeout=10)
    assert done.stdout.strip() == FILE_CANARY


def test_vault_secret_gets_no_password_line_and_the_relay_ca_is_trusted(clients_out: Path) -> None:
    rc, text = msmtprc(clients_out, "dev@lab.example.test")
    assert "passwordeval" not in rc and "password" not in rc
    assert "vault_dev_password" in text and "ask" in text
    assert (rc["host"], rc["port"], rc["tls_starttls"]) == ("smtp.lab.example.test", "2587", "on")
    assert rc["tls_trust_file"].endswith("/lab-ca.pem") and Path(rc["tls_trust_file"]).is_absolute()
    assert rc["auth"] == "on" and rc["user"] == "dev@lab.example.test"


def test_security_none_turns_tls_and_auth_off(clients_out: Path) -> None:
    rc, _ = msmtprc(clients_out, "printer@office.example")
    assert (rc["tls"], rc["auth"], rc["port"]) == ("off", "off", "25")
    assert "tls_starttls" not in rc and "user" not in rc and "passwordeval" not in rc


def test_files_are_private_and_hold_no_secret_value(clients_out: Path) -> None:
    files = tree(clients_out / "msmtp")
    assert len(files) == 6
    assert {mode for _, mode in files.values()} == {0o600}
    assert_no_secret_values(clients_out / "msmtp")


def test_a_silenced_inline_password_is_still_never_copied(tmp_path: Path) -> None:
    # `# smtpconf: ignore[inline-secret]` lets the file render; the clients must ask instead.
    config = write_config(tmp_path, """\
        version: 1
        accounts:
          - email: a@example.com
            provider: gmail
            password: "inline-canary-Zt5"  # smtpconf: ignore[inline-secret]
        """)
    render_ok(config, tmp_path / "out", "msmtp,neomutt,git-send-email,dns")
    files = tree(tmp_path / "out")
    assert len(files) == 5  # one per target, and the manifest
    for path, (content, _mode) in files.items():
        assert b"inline-canary-Zt5" not in content, path
    rc, text = msmtprc(tmp_path / "out", "a@example.com")
    assert "passwordeval" not in rc and "inline" in text


def test_a_secret_file_in_home_is_read_from_the_clients_home(tmp_path: Path) -> None:
    from smtpconf.lint import lint_path
    from smtpconf.render import render

    source = tmp_path / "smtpconf.yaml"
    source.write_text("version: 1\naccounts:\n  - {email: a@example.com, host: smtp.example.com, "
                      "password: {file: ~/.mail pw}}\n", encoding="utf-8")
    (rendered,) = render(lint_path(source).config, ["msmtp"])
    # msmtp strips the one pair of quotes around the argument: the shell gets cat "$HOME"/'.mail pw'
    assert "passwordeval \"cat \"$HOME\"/'.mail pw'\"" in rendered.content.decode()
    assert str(Path.home()) not in rendered.content.decode()


# --- who logs in, and OAuth2 ---------------------------------------------------------------------

def test_an_account_using_its_relays_login_logs_in_as_the_relay(tmp_path: Path) -> None:
    # The account has no credential of its own: it logs in with the relay's user and password
    # (it used to log in as itself, with no password at all).
    config = write_config(tmp_path, """\
        version: 1
        relays:
          lab: {host: smtp.lab.example.test, port: 2587, security: starttls, username: relayuser,
                password: {env: LAB_PW}}
        accounts:
          - {email: a@lab.example.test, relay: lab}
        """)
    render_ok(config, tmp_path / "out", "msmtp")
    rc, _ = msmtprc(tmp_path / "out", "a@lab.example.test")
    assert (rc["auth"], rc["user"], rc["passwordeval"]) == ("on", "relayuser", "printenv LAB_PW")
    assert rc["from"] == "a@lab.example.test" and rc["host"] == "smtp.lab.example.test"


def test_oauth2_account_runs_the_token_command(oauth2_out: OAuth2Render) -> None:
    rc, text = msmtprc(oauth2_out.out, "xiaohua@outlook.com")
    assert (rc["auth"], rc["user"], rc["host"], rc["tls_starttls"]) == (
        "xoauth2", "xiaohua@outlook.com", "smtp-mail.outlook.com", "on")
    assert shlex.split(rc["passwordeval"]) == token_command(oauth2_out.config.resolve(), "xiaohua@outlook.com")
    assert "smtpconf must be on PATH" in text and "xiaohua.refresh" in text


def test_oauthbearer_and_a_relays_oauth2_login(oauth2_out: OAuth2Render) -> None:
    gmail, _ = msmtprc(oauth2_out.out, "g@gmail.com")
    assert gmail["auth"] == "oauthbearer"
    # Through the relay: its user logs in; the token command names the account, whose login is
    # the relay's.
    ops, _ = msmtprc(oauth2_out.out, "ops@corp.example")
    assert (ops["auth"], ops["user"], ops["from"]) == ("xoauth2", "app@corp.example", "ops@corp.example")
    assert shlex.split(ops["passwordeval"]) == token_command(oauth2_out.config.resolve(), "ops@corp.example")


def test_a_vault_refresh_token_gets_no_token_command(oauth2_out: OAuth2Render) -> None:
    rc, text = msmtprc(oauth2_out.out, "v@corp.example")
    assert rc["auth"] == "xoauth2" and "passwordeval" not in rc
    assert "vault_v_refresh" in text


def test_a_password_account_beside_oauth2_ones_is_unchanged(oauth2_out: OAuth2Render) -> None:
    rc, _ = msmtprc(oauth2_out.out, "pw@corp.example")
    assert (rc["auth"], rc["user"], rc["passwordeval"]) == ("on", "pw@corp.example", "printenv PW_CORP")


def test_the_token_command_runs_from_a_path_with_shell_characters(oauth2_out: OAuth2Render, tmp_path: Path) -> None:
    # msmtp hands passwordeval to the shell: a fake smtpconf on PATH shows the words it gets.
    import os

    fake = tmp_path / "smtpconf"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    rc, _ = msmtprc(oauth2_out.out, "xiaohua@outlook.com")
    done = subprocess.run(rc["passwordeval"], shell=True, capture_output=True, text=True, timeout=10,
                          env=os.environ | {"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.stdout.splitlines() == token_command(oauth2_out.config.resolve(), "xiaohua@outlook.com")[1:]


def test_no_refresh_token_or_client_secret_in_any_client_file(oauth2_out: OAuth2Render) -> None:
    files = tree(oauth2_out.out)
    assert files
    for path, (content, _mode) in files.items():
        for canary in (REFRESH_CANARY, CLIENT_SECRET_CANARY):
            assert canary.encode() not in content, path


def test_the_token_command_names_the_file_absolutely_when_rendered_by_a_relative_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The client runs from anywhere: "smtpconf render smtpconf.yaml" must still write the full path.
    write_config(tmp_path, """\
        version: 1
        accounts:
          - email: a@outlook.com
            provider: outlook
            oauth2: {client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753, refresh_token: {file: secret.txt}}
        """)
    monkeypatch.chdir(tmp_path)
    render_ok(Path("smtpconf.yaml"), tmp_path / "out", "msmtp")
    rc, _ = msmtprc(tmp_path / "out", "a@outlook.com")
    assert shlex.split(rc["passwordeval"]) == token_command((tmp_path / "smtpconf.yaml").resolve(), "a@outlook.com")


LINE_BREAK_ACCOUNTS = {
    "file-secret": "{email: a@example.com, host: smtp.example.com, password: {file: secret.txt}}",
    "ca-file": "{email: a@example.com, host: smtp.example.com, ca_file: ca.pem, password: {env: PW}}",
    "oauth2": ("{email: b@outlook.com, provider: outlook, oauth2: {client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753,"
               " refresh_token: {env: RT}}}"),
}


@pytest.mark.parametrize("account", sorted(LINE_BREAK_ACCOUNTS))
@pytest.mark.parametrize("target", ["msmtp", "neomutt", "git-send-email"])
def test_a_directory_name_with_a_line_break_cannot_add_a_setting(tmp_path: Path, target: str, account: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # The file's own path reaches the client files (a {file:} secret, a ca_file, the OAuth2 token
    # command): a line break in it would start a setting of its own. The render refuses instead.
    from smtpconf.cli import main

    directory = tmp_path / "x\nhost evil.example"
    config = write_config(directory, f"version: 1\naccounts:\n  - {LINE_BREAK_ACCOUNTS[account]}\n")
    (directory / "ca.pem").write_bytes(PEM)
    assert main(["render", str(config), "-o", str(tmp_path / "out"), "--only", target]) == 2
    assert not (tmp_path / "out").exists()
    error = capsys.readouterr().err
    assert "nothing was written" in error and ("line break" in error or "control character" in error), error
