"""A smtpconf file for the command-line client targets (msmtp, neomutt, git-send-email, dns),
rendered once through the real CLI, with canary secrets that must never show up in the output.

The accounts cover: STARTTLS (Gmail, 587) and implicit TLS (163.com, 465); a Chinese display name;
IDN hosts and domains; a username full of characters each format quotes differently; a command
secret with quotes, a ``#``, a backtick and a backslash; a vault secret (no password line); a
relay's private CA; a plaintext lab server without a password.

``oauth2_out`` renders a second file, OAuth2 logins beside password ones (a relay's login used by
an account, XOAUTH2 and OAUTHBEARER, IMAP and POP, a vault refresh token), from a directory whose
name every format must quote, with a canary refresh token and client secret.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.support.oauth_fixtures import ODD_DIRECTORY
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

# Lint reads a ca_file (ca-file-missing): it must be a file holding a PEM certificate block.
PEM = (Path(__file__).resolve().parents[2] / "examples" / "certs" / "lab-ca.pem").read_bytes()


# OAuth2 logins beside password ones, for every client target. The smtpconf file sits in a
# directory whose name each format must quote: the token commands name its absolute path.
REFRESH_CANARY = "refresh-canary-Rt7"
CLIENT_SECRET_CANARY = "client-secret-canary-Cs2"
OAUTH2_TARGETS = "thunderbird,autodiscover,mobileconfig,msmtp,neomutt,git-send-email"
OAUTH2_EMAILS = ["ops@corp.example", "xiaohua@outlook.com", "g@gmail.com", "v@corp.example"]
OAUTH2_YAML = """\
version: 1
relays:
  lab:
    host: smtp.lab.example.test
    port: 2587
    security: starttls
    username: relayuser
    password: {env: LAB_PW}
  o365:
    provider: office365
    username: app@corp.example
    auth: oauth2
    oauth2:
      client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753
      tenant: corp.example
      refresh_token: {file: o365.refresh}
accounts:
  - email: a@lab.example.test
    relay: lab
  - email: ops@corp.example
    relay: o365
  - email: xiaohua@outlook.com
    name: 小华
    provider: outlook
    oauth2: {client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753, refresh_token: {file: xiaohua.refresh}}
  - email: g@gmail.com
    provider: gmail
    oauth2:
      client_id: g-client.apps.googleusercontent.com
      client_secret: {env: G_CLIENT_SECRET}
      refresh_token: {command: "pass show g"}
      mechanism: oauthbearer
    incoming: {provider: gmail, protocol: pop3}
  - email: v@corp.example
    provider: office365
    oauth2: {client_id: 9e5f94bc-e8a4-4e73-b8be-63364c29d753, refresh_token: {vault: vault_v_refresh}}
    incoming: {provider: office365, protocol: pop3}
  - email: pw@corp.example
    provider: office365
    password: {env: PW_CORP}
"""


class OAuth2Render(NamedTuple):
    config: Path  # the smtpconf file, absolute
    out: Path
    notes: list[str]


@pytest.fixture(scope="session")
def oauth2_out(tmp_path_factory: pytest.TempPathFactory) -> OAuth2Render:
    """OAUTH2_YAML rendered (the client targets), with the canary refresh token on disk and the
    canary client secret in the environment."""
    from smtpconf.lint import lint_path
    from smtpconf.render import parse_only, render_to_directory

    base = tmp_path_factory.mktemp("oauth2-clients") / ODD_DIRECTORY
    base.mkdir()
    for name in ("o365.refresh", "xiaohua.refresh"):
        (base / name).write_text(REFRESH_CANARY + "\n", encoding="utf-8")
    config = base / "smtpconf.yaml"
    config.write_text(OAUTH2_YAML, encoding="utf-8")
    result = lint_path(config)
    assert result.config is not None and not [f for f in result.findings if f.level == "error"], result.findings
    notes: list[str] = []
    old = os.environ.get("G_CLIENT_SECRET")
    os.environ["G_CLIENT_SECRET"] = CLIENT_SECRET_CANARY
    try:
        render_to_directory(result.config, parse_only(OAUTH2_TARGETS), base / "out", notes=notes)
    finally:
        if old is None:
            del os.environ["G_CLIENT_SECRET"]
        else:
            os.environ["G_CLIENT_SECRET"] = old
    return OAuth2Render(config, base / "out", notes)


def token_command(config: Path, email: str) -> list[str]:
    """The words of the command a client file runs for an OAuth2 login's access token."""
    return ["smtpconf", "oauth2", "token", str(config), "--account", email]


@pytest.fixture(scope="session")
def clients_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The rendered output directory (targets msmtp, neomutt, git-send-email, dns), rendered with
    the canary secrets present in the environment and on disk."""
    base = tmp_path_factory.mktemp("cli-clients")
    (base / "secret.txt").write_text(FILE_CANARY + "\n", encoding="utf-8")
    (base / "lab-ca.pem").write_bytes(PEM)
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
    "CLIENT_SECRET_CANARY", "CLIENTS_YAML", "ENV_CANARY", "ENV_CANARY_NAME", "FILE_CANARY", "IDN_DOMAIN", "IDN_IMAP",
    "IDN_SMTP", "OAUTH2_EMAILS", "OAUTH2_TARGETS", "OAUTH2_YAML", "ODD_COMMAND", "ODD_DIRECTORY", "ODD_USERNAME",
    "REFRESH_CANARY", "OAuth2Render", "assert_no_secret_values", "clients_out", "oauth2_out", "token_command",
]
