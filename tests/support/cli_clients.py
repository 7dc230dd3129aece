"""A smtpconf file for the command-line client targets (msmtp, neomutt, git-send-email, dns),
rendered once through the real CLI, with canary secrets that must never show up in the output.

The accounts cover: STARTTLS (Gmail, 587) and implicit TLS (163.com, 465); a Chinese display name;
IDN hosts and domains; a username full of characters each format quotes differently; a command
secret with quotes, a ``#``, a backtick and a backslash; a vault secret (no password line); a
relay's private CA; a plaintext lab server without a password.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.render import render_ok, tree

ENV_CANARY_NAME = "SMTPCONF_CANARY_ENV"
ENV_CANARY = "canary-env-Qw8"
FILE_CANARY = "canary-file-Lm4"
ODD_USERNAME = "o'neil\"#1$x`\\z"
ODD_COMMAND = "pass show 'mail/x y' | head -n1 # `tick` \\ $HOME"
IDN_SMTP = "smtp.xn--fsqu00a.xn--0zwm56d"  # smtp.例子.测试
IDN_IMAP = "imap.xn--fsqu00a.xn--0zwm56d"
IDN_DOMAIN = "xn--fsqu00a.xn--0zwm56d"  # 例子.测试

CLIENTS_YAML = f"""\
version: 1
relays:
  lab:
    host: smtp.lab.example.test
    port: 2587
    security: starttls
    ca_file: lab-ca.pem
    username: relayuser
    password: {{vault: vault_lab_password}}
  gmail-ops:
    provider: gmail
    username: ops@example.com
    password: {{env: {ENV_CANARY_NAME}}}
accounts:
  - email: xiaoming@example.com
    name: 小明
    provider: gmail
    password: {{command: "pass show mail/xiaoming"}}
  - email: alerts@163.com
    name: "Ops \\"Alerts\\", 163"
    provider: "163"
    password: {{env: {ENV_CANARY_NAME}}}
  - email: 用户@例子.测试
    name: 小明
    host: smtp.例子.测试
    port: 465
    security: tls
    username: '{ODD_USERNAME.replace("'", "''")}'
    password: {{command: '{ODD_COMMAND.replace("'", "''")}'}}
    incoming: {{host: imap.例子.测试, protocol: imap}}
  - email: dev@lab.example.test
    relay: lab
    password: {{vault: vault_dev_password}}
    incoming: {{host: pop.lab.example.test, protocol: pop3, port: 995}}
  - email: secretfile@example.com
    host: smtp.example.com
    port: 587
    security: starttls
    password: {{file: secret.txt}}
  - email: printer@office.example
    host: mail.office.example
    port: 25
    security: none
domains:
  example.com:
    relays: [gmail-ops]
    dkim_selectors: [google]
    dmarc_policy: quarantine
    srv: true
"""


@pytest.fixture(scope="session")
def clients_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The rendered output directory (targets msmtp, neomutt, git-send-email, dns), rendered with
    the canary secrets present in the environment and on disk."""
    base = tmp_path_factory.mktemp("cli-clients")
    (base / "secret.txt").write_text(FILE_CANARY + "\n", encoding="utf-8")
    (base / "lab-ca.pem").write_text("not read by render\n", encoding="utf-8")
    config = base / "smtpconf.yaml"
    config.write_text(CLIENTS_YAML, encoding="utf-8")
    old = os.environ.get(ENV_CANARY_NAME)
    os.environ[ENV_CANARY_NAME] = ENV_CANARY
    try:
        render_ok(config, base / "out", "msmtp,neomutt,git-send-email,dns")
    finally:
        if old is None:
            del os.environ[ENV_CANARY_NAME]
        else:
            os.environ[ENV_CANARY_NAME] = old
    yield base / "out"


def assert_no_secret_values(out: Path) -> None:
    """No canary, in any encoding a format might use, in any rendered file."""
    files = tree(out)
    assert files
    for path, (content, _mode) in files.items():
        for canary in (ENV_CANARY, FILE_CANARY):
            for form in (canary, canary.encode().hex(), base64.b64encode(canary.encode()).decode()):
                assert form.encode() not in content, f"{path} holds a secret value"


__all__ = [
    "CLIENTS_YAML", "ENV_CANARY", "ENV_CANARY_NAME", "FILE_CANARY", "IDN_DOMAIN", "IDN_IMAP", "IDN_SMTP",
    "ODD_COMMAND", "ODD_USERNAME", "assert_no_secret_values", "clients_out",
]
