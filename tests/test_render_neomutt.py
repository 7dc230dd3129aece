"""The neomutt target: one muttrc per account; values read back with muttrc quoting rules."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.cli_clients import (  # noqa: F401  (clients_out, oauth2_out are fixtures)
    ENV_CANARY_NAME, IDN_DOMAIN, IDN_IMAP, IDN_SMTP, ODD_COMMAND, ODD_USERNAME, OAuth2Render,
    assert_no_secret_values, clients_out, oauth2_out, token_command,
)
from tests.support.render import tree

_BACKTICK = re.compile(r'^"`(?P<cmd>(?:[^`\\]|\\.)*)`"$')


def muttrc(out: Path, email: str) -> tuple[dict[str, str], str]:
    """``set NAME = VALUE`` lines -> {NAME: value}. Single-quoted values follow the shell's rule
    (muttrc's is the same); a password command is returned as the command the shell will run."""
    text = (out / "neomutt" / f"{email}.muttrc").read_text(encoding="utf-8")
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("set "):
            assert not line.strip() or line.startswith("#"), line
            continue
        name, _, value = line[4:].partition(" = ")
        backtick = _BACKTICK.match(value)
        if backtick:
            command = re.sub(r"\\(.)", r"\1", backtick["cmd"])
            # neomutt expands the one variable named there, once (the command's text is its value).
            command = settings.get(command[1:], command) if command.startswith("$my_") else command
            settings[name] = "`" + command + "`"
        else:
            [settings[name]] = shlex.split(value)
    return settings, text


def test_starttls_account(clients_out: Path) -> None:
    rc, _ = muttrc(clients_out, "xiaoming@example.com")
    assert rc["smtp_url"] == "smtp://xiaoming%40example.com@smtp.gmail.com:587/"
    assert (rc["ssl_starttls"], rc["ssl_force_tls"]) == ("yes", "yes")
    assert rc["smtp_pass"] == "`pass show mail/xiaoming`"
    assert rc["from"] == "xiaoming@example.com" and rc["realname"] == "小明"
    assert rc["folder"] == "imaps://xiaoming%40example.com@imap.gmail.com:993/"  # the Gmail preset's IMAP
    assert rc["spoolfile"] == "+INBOX" and rc["imap_pass"] == rc["smtp_pass"]


def test_implicit_tls_uses_smtps(clients_out: Path) -> None:
    rc, _ = muttrc(clients_out, "alerts@163.com")
    assert rc["smtp_url"] == "smtps://alerts%40163.com@smtp.163.com:465/"
    assert rc["ssl_force_tls"] == "yes" and rc["ssl_starttls"] == "no"
    assert rc["smtp_pass"] == f"`printenv {ENV_CANARY_NAME}`"
    assert rc["realname"] == 'Ops "Alerts", 163'


def test_idn_and_odd_characters(clients_out: Path) -> None:
    rc, _ = muttrc(clients_out, "用户@例子.测试")
    url = urlsplit(rc["smtp_url"])
    assert (url.scheme, url.hostname, url.port) == ("smtps", IDN_SMTP, 465)
    assert unquote(url.username or "") == ODD_USERNAME
    assert rc["smtp_pass"] == f"`{ODD_COMMAND}`"
    assert rc["from"] == f"用户@{IDN_DOMAIN}" and rc["realname"] == "小明"
    assert urlsplit(rc["folder"]).hostname == IDN_IMAP and rc["imap_user"] == ODD_USERNAME


def test_vault_secret_pop3_and_private_ca(clients_out: Path) -> None:
    rc, text = muttrc(clients_out, "dev@lab.example.test")
    assert "smtp_pass" not in rc and "pop_pass" not in rc and "vault_dev_password" in text
    assert rc["smtp_url"] == "smtp://dev%40lab.example.test@smtp.lab.example.test:2587/"
    assert rc["pop_host"] == "pops://dev%40lab.example.test@pop.lab.example.test:995/"
    assert rc["ssl_ca_certificates_file"].endswith("/lab-ca.pem")
    assert (rc["ssl_starttls"], rc["ssl_force_tls"]) == ("yes", "yes")


def test_security_none_cannot_force_tls(clients_out: Path) -> None:
    rc, _ = muttrc(clients_out, "printer@office.example")
    assert rc["smtp_url"] == "smtp://mail.office.example:25/"  # no login: no user in the URL
    assert (rc["ssl_force_tls"], rc["ssl_starttls"]) == ("no", "no")
    assert "smtp_pass" not in rc


def test_files_are_private_and_hold_no_secret_value(clients_out: Path) -> None:
    files = tree(clients_out / "neomutt")
    assert len(files) == 6 and {mode for _, mode in files.values()} == {0o600}
    assert_no_secret_values(clients_out / "neomutt")


MIXED_TLS = """\
version: 1
accounts:
  - email: {email}
    host: smtp.corp.example
    port: {smtp_port}
    security: {smtp_security}
    password: {{env: SMTPCONF_TEST_UNUSED}}
    incoming: {{host: mail.corp.example, port: {in_port}, security: {in_security}, protocol: imap}}
"""


def _render_one(tmp_path: Path, **fields: object) -> tuple[dict[str, str], str, list[str], Path]:
    from smtpconf.lint import lint_path
    from smtpconf.render import render

    email = "pat@corp.example"
    source = tmp_path / "smtpconf.yaml"
    source.write_text(MIXED_TLS.format(email=email, **fields), encoding="utf-8")
    lint = lint_path(source)
    assert lint.config is not None, lint.findings
    notes: list[str] = []
    (out,) = render(lint.config, ["neomutt"], {}, notes)
    path = tmp_path / "neomutt" / f"{email}.muttrc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.content)
    rc, text = muttrc(tmp_path, email)
    return rc, text, notes, path


def _neomutt_query(path: Path, home: Path, name: str) -> str:
    import os
    import shutil
    import subprocess

    import pytest

    program = shutil.which("neomutt")
    if program is None:
        pytest.skip("neomutt is not installed")
    done = subprocess.run([program, "-n", "-F", str(path), "-Q", name], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, env={"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb"})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().removeprefix(f"set {name} = ")


def test_starttls_smtp_with_plaintext_incoming_still_forces_tls(tmp_path: Path) -> None:
    # Not forcing TLS (globally, in neomutt) would let anyone who strips STARTTLS read the SMTP
    # password; forcing it makes the plaintext IMAP server unreachable, so that one is left out.
    rc, text, notes, path = _render_one(tmp_path, smtp_port=587, smtp_security="starttls", in_port=143,
                                        in_security="none")
    assert (rc["ssl_force_tls"], rc["ssl_starttls"]) == ("yes", "yes")
    assert rc["smtp_url"] == "smtp://pat%40corp.example@smtp.corp.example:587/"
    assert not {"folder", "spoolfile", "imap_user", "imap_pass"} & set(rc)
    assert "mail.corp.example:143 (imap, security none) is left out" in text and "global" in text
    assert len(notes) == 1 and "pat@corp.example" in notes[0] and "global" in notes[0]
    # What real neomutt makes of the file.
    assert _neomutt_query(path, tmp_path, "ssl_force_tls") == "yes"
    assert _neomutt_query(path, tmp_path, "ssl_starttls") == "yes"


def test_plaintext_smtp_with_starttls_incoming_leaves_the_incoming_server_out(tmp_path: Path) -> None:
    # The other way round: TLS cannot be forced (SMTP has none), so a STARTTLS IMAP server's
    # password would be exposed to a STARTTLS stripper: that server is left out too.
    rc, text, notes, _ = _render_one(tmp_path, smtp_port=25, smtp_security="none", in_port=143,
                                     in_security="starttls")
    assert (rc["ssl_force_tls"], rc["ssl_starttls"]) == ("no", "no")
    assert "folder" not in rc and "is left out" in text and len(notes) == 1


def test_implicit_tls_on_either_side_needs_nothing_left_out(tmp_path: Path) -> None:
    # smtps:// and imaps:// are TLS from the first byte: not forcing TLS cannot downgrade them.
    rc, _, notes, _ = _render_one(tmp_path, smtp_port=465, smtp_security="tls", in_port=143, in_security="none")
    assert rc["folder"] == "imap://pat%40corp.example@mail.corp.example:143/" and rc["ssl_force_tls"] == "no"
    assert rc["smtp_url"].startswith("smtps://") and notes == []


# --- OAuth2 ----------------------------------------------------------------------------------

PASSWORD_SETTINGS = {"smtp_pass", "imap_pass", "pop_pass"}


def test_oauth2_sending_and_imap_run_the_token_command(oauth2_out: OAuth2Render) -> None:
    rc, text = muttrc(oauth2_out.out, "xiaohua@outlook.com")
    command = token_command(oauth2_out.config.resolve(), "xiaohua@outlook.com")
    # Microsoft: XOAUTH2 (neomutt refuses OAUTHBEARER tokens over 512 bytes).
    assert rc["smtp_authenticators"] == rc["imap_authenticators"] == "xoauth2"
    assert shlex.split(rc["smtp_oauth_refresh_command"]) == command
    assert shlex.split(rc["imap_oauth_refresh_command"]) == command
    assert rc["smtp_url"] == "smtp://xiaohua%40outlook.com@smtp-mail.outlook.com:587/"
    assert rc["folder"].startswith("imaps://xiaohua%40outlook.com@outlook.office365.com:993/")
    assert not PASSWORD_SETTINGS & set(rc) and '"`' not in text  # no backtick command, no password


def test_oauthbearer_pop_and_a_relays_login(oauth2_out: OAuth2Render) -> None:
    gmail, _ = muttrc(oauth2_out.out, "g@gmail.com")
    assert gmail["smtp_authenticators"] == gmail["pop_authenticators"] == "oauthbearer"
    assert shlex.split(gmail["pop_oauth_refresh_command"]) == token_command(oauth2_out.config.resolve(), "g@gmail.com")
    ops, _ = muttrc(oauth2_out.out, "ops@corp.example")
    assert ops["smtp_url"] == "smtp://app%40corp.example@smtp.office365.com:587/"  # the relay's user logs in
    assert shlex.split(ops["smtp_oauth_refresh_command"]) == token_command(oauth2_out.config.resolve(),
                                                                           "ops@corp.example")


def test_xoauth2_pop_is_left_out_because_neomutt_pop_has_only_oauthbearer(oauth2_out: OAuth2Render) -> None:
    rc, text = muttrc(oauth2_out.out, "v@corp.example")
    assert rc["smtp_authenticators"] == "xoauth2" and "smtp_oauth_refresh_command" not in rc  # vault
    assert not {"pop_host", "pop_user", "pop_authenticators"} & set(rc)
    assert "outlook.office365.com:995 (pop3) is left out" in text and "vault_v_refresh" in text
    [note] = [n for n in oauth2_out.notes if n.startswith("neomutt")]
    assert "v@corp.example" in note and "OAUTHBEARER" in note


def test_neomutt_reads_the_refresh_command_literally(oauth2_out: OAuth2Render, tmp_path: Path) -> None:
    # The path holds a quote, $HOME, a backtick and %s: neomutt must keep each as written.
    path = oauth2_out.out / "neomutt" / "g@gmail.com.muttrc"
    shown = _neomutt_query(path, tmp_path, "pop_oauth_refresh_command")
    assert shown.startswith('"') and shown.endswith('"')
    value = shown[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    assert shlex.split(value) == token_command(oauth2_out.config.resolve(), "g@gmail.com")
    assert _neomutt_query(path, tmp_path, "pop_authenticators") == '"oauthbearer"'
