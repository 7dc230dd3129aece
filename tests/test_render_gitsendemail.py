"""The git-send-email target: gitconfig snippets read back by git itself, and the credential
helper asked for a password the way git send-email asks (protocol smtp, host:port, username)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from tests.support.cli_clients import (  # noqa: F401  (clients_out, oauth2_out are fixtures)
    ENV_CANARY, ENV_CANARY_NAME, FILE_CANARY, IDN_DOMAIN, IDN_SMTP, ODD_USERNAME, OAuth2Render,
    assert_no_secret_values, clients_out, oauth2_out, token_command,
)
from tests.support.render import tree


def git_env(home: Path, **extra: str) -> dict[str, str]:
    """Only the rendered file counts: no system or user gitconfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, **extra}


def gitconfig(out: Path, email: str, home: Path) -> dict[str, str]:
    path = out / "git-send-email" / f"{email}.gitconfig"
    listed = subprocess.run(["git", "config", "-f", str(path), "--list", "-z"], capture_output=True, check=True,
                            env=git_env(home)).stdout.decode("utf-8")
    return dict(entry.split("\n", 1) for entry in listed.split("\0") if entry)


def credential_fill(out: Path, email: str, home: Path, host: str, username: str, **env: str) -> dict[str, str]:
    path = out / "git-send-email" / f"{email}.gitconfig"
    request = f"protocol=smtp\nhost={host}\nusername={username}\n\n"
    done = subprocess.run(["git", "-c", f"include.path={path}", "credential", "fill"], input=request.encode(),
                          capture_output=True, timeout=20,
                          env=git_env(home, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", **env))
    if done.returncode != 0:
        return {}
    return dict(line.split("=", 1) for line in done.stdout.decode("utf-8").splitlines() if "=" in line)


def test_starttls_is_encryption_tls(clients_out: Path, tmp_path: Path) -> None:
    cfg = gitconfig(clients_out, "xiaoming@example.com", tmp_path)
    assert {k: v for k, v in cfg.items() if k.startswith("sendemail.")} == {
        "sendemail.smtpserver": "smtp.gmail.com", "sendemail.smtpserverport": "587",
        "sendemail.smtpencryption": "tls", "sendemail.smtpuser": "xiaoming@example.com",
        "sendemail.from": "小明 <xiaoming@example.com>",
    }
    assert "credential.smtp://xiaoming%40example.com@smtp.gmail.com:587.helper" in cfg


def test_implicit_tls_is_encryption_ssl_and_the_helper_answers_get(clients_out: Path, tmp_path: Path) -> None:
    cfg = gitconfig(clients_out, "alerts@163.com", tmp_path)
    assert cfg["sendemail.smtpencryption"] == "ssl" and cfg["sendemail.smtpserverport"] == "465"
    assert cfg["sendemail.from"] == '"Ops \\"Alerts\\", 163" <alerts@163.com>'  # RFC 5322 quoted-string
    got = credential_fill(clients_out, "alerts@163.com", tmp_path, "smtp.163.com:465", "alerts@163.com",
                          **{ENV_CANARY_NAME: ENV_CANARY})
    assert got.get("password") == ENV_CANARY


def test_helper_is_scoped_to_the_account(clients_out: Path, tmp_path: Path) -> None:
    env = {ENV_CANARY_NAME: ENV_CANARY}
    for host, user in [("smtp.163.com:587", "alerts@163.com"), ("smtp.gmail.com:465", "alerts@163.com"),
                       ("smtp.163.com:465", "someone-else@163.com")]:
        assert credential_fill(clients_out, "alerts@163.com", tmp_path, host, user, **env).get("password") is None


def test_idn_host_and_odd_username(clients_out: Path, tmp_path: Path) -> None:
    cfg = gitconfig(clients_out, "用户@例子.测试", tmp_path)
    assert cfg["sendemail.smtpserver"] == IDN_SMTP and cfg["sendemail.smtpencryption"] == "ssl"
    assert cfg["sendemail.smtpuser"] == ODD_USERNAME
    assert cfg["sendemail.from"] == f"小明 <用户@{IDN_DOMAIN}>"
    # One helper, for this server and this (percent-encoded) user.
    helpers = [k for k in cfg if k.startswith("credential.") and k.endswith(".helper")]
    assert len(helpers) == 1 and f"@{IDN_SMTP}:465." in helpers[0]


def test_file_secret_through_the_helper(clients_out: Path, tmp_path: Path) -> None:
    got = credential_fill(clients_out, "secretfile@example.com", tmp_path, "smtp.example.com:587",
                          "secretfile@example.com")
    assert got.get("password") == FILE_CANARY


def test_vault_private_ca_and_none(clients_out: Path, tmp_path: Path) -> None:
    cfg = gitconfig(clients_out, "dev@lab.example.test", tmp_path)
    assert cfg["sendemail.smtpsslcertpath"].endswith("/lab-ca.pem")
    assert not [k for k in cfg if k.startswith("credential.")]  # vault: git send-email asks
    text = (clients_out / "git-send-email" / "dev@lab.example.test.gitconfig").read_text(encoding="utf-8")
    assert "vault_dev_password" in text
    plain = gitconfig(clients_out, "printer@office.example", tmp_path)
    assert "sendemail.smtpencryption" not in plain and "sendemail.smtpuser" not in plain


def test_files_are_private_and_hold_no_secret_value(clients_out: Path) -> None:
    files = tree(clients_out / "git-send-email")
    assert len(files) == 6 and {mode for _, mode in files.values()} == {0o600}
    assert_no_secret_values(clients_out / "git-send-email")


# --- OAuth2: msmtp sends ---------------------------------------------------------------------

def msmtp_words(cfg: dict[str, str]) -> dict[str, str]:
    """``sendemail.sendmailcmd`` as the shell splits it: msmtp's ``--name=value`` options."""
    words = shlex.split(cfg["sendemail.sendmailcmd"])
    assert words[0] == "msmtp" and all(w.startswith("--") and "=" in w for w in words[1:]), words
    return dict(word[2:].split("=", 1) for word in words[1:])


def test_oauth2_account_sends_through_msmtp_with_the_token_command(oauth2_out: OAuth2Render, tmp_path: Path) -> None:
    cfg = gitconfig(oauth2_out.out, "xiaohua@outlook.com", tmp_path)
    # git send-email's own SMTP settings would take the Net::SMTP path, which has no XOAUTH2 here.
    assert {k for k in cfg if k.startswith("sendemail.")} == {"sendemail.sendmailcmd", "sendemail.from"}
    assert not any(k.startswith("credential.") for k in cfg)
    options = msmtp_words(cfg)
    assert shlex.split(options.pop("passwordeval")) == token_command(oauth2_out.config.resolve(),
                                                                     "xiaohua@outlook.com")
    assert options == {"host": "smtp-mail.outlook.com", "port": "587", "tls": "on", "tls-starttls": "on",
                       "tls-trust-file": "system", "auth": "xoauth2", "user": "xiaohua@outlook.com",
                       "from": "xiaohua@outlook.com"}
    assert cfg["sendemail.from"] == "小华 <xiaohua@outlook.com>"


def test_oauth2_through_a_relay_and_oauthbearer(oauth2_out: OAuth2Render, tmp_path: Path) -> None:
    ops = msmtp_words(gitconfig(oauth2_out.out, "ops@corp.example", tmp_path))
    assert (ops["user"], ops["from"], ops["auth"]) == ("app@corp.example", "ops@corp.example", "xoauth2")
    assert shlex.split(ops["passwordeval"])[-1] == "ops@corp.example"
    assert msmtp_words(gitconfig(oauth2_out.out, "g@gmail.com", tmp_path))["auth"] == "oauthbearer"
    vault = msmtp_words(gitconfig(oauth2_out.out, "v@corp.example", tmp_path))
    assert "passwordeval" not in vault and vault["auth"] == "xoauth2"


def test_a_password_account_beside_oauth2_ones_keeps_the_credential_helper(oauth2_out: OAuth2Render,
                                                                          tmp_path: Path) -> None:
    cfg = gitconfig(oauth2_out.out, "pw@corp.example", tmp_path)
    assert "sendemail.sendmailcmd" not in cfg and cfg["sendemail.smtpserver"] == "smtp.office365.com"
    assert credential_fill(oauth2_out.out, "pw@corp.example", tmp_path, "smtp.office365.com:587",
                           "pw@corp.example", PW_CORP="pw-Zz1").get("password") == "pw-Zz1"
