"""The neomutt target: one muttrc per account; values read back with muttrc quoting rules."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.cli_clients import (  # noqa: F401  (clients_out is a fixture)
    ENV_CANARY_NAME, IDN_DOMAIN, IDN_IMAP, IDN_SMTP, ODD_COMMAND, ODD_USERNAME, assert_no_secret_values,
    clients_out,
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
            settings[name] = "`" + re.sub(r"\\(.)", r"\1", backtick["cmd"]) + "`"
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
