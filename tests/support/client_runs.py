"""Render a smtpconf file with the real CLI (a subprocess, as a user runs it) for the integration
tests that then hand the rendered files to real mail clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.oauth_fixtures import CLIENT_ID
from tests.support.smtpserver import Provider, TestCA

# A message body the tests look for in what the provider received.
MARKER = "smtpconf-client-test-7f3a"
PATCH_SUBJECT = "Add the smtpconf client test file"  # the commit make_patch makes


def provider_yaml(provider: Provider, ca: TestCA, *, email: str, username: str, password: str,
                  name: str = "小明") -> str:
    """One account on ``provider`` (127.0.0.1), trusting the test CA. ``password`` is the YAML of
    a secret reference, e.g. ``{env: NAME}``."""
    security = "tls" if provider.mode == "tls" else "starttls"
    quoted = username.replace("'", "''")
    return (f"version: 1\naccounts:\n  - email: {email}\n    name: '{name}'\n    host: 127.0.0.1\n"
            f"    port: {provider.port}\n    security: {security}\n    ca_file: '{ca.ca_pem_path}'\n"
            f"    username: '{quoted}'\n    password: {password}\n")


def oauth2_yaml(provider: Provider, ca: TestCA, token_url: str, *, email: str, username: str, mechanism: str,
                relay: bool = False, name: str = "小明") -> str:
    """One OAuth2 login on ``provider`` (127.0.0.1, trusting the test CA) whose identity provider
    is at ``token_url``, the refresh token in ``refresh.token`` beside the file. ``relay``: the
    login is a relay's, and the account (no credential of its own) logs in with it."""
    security = "tls" if provider.mode == "tls" else "starttls"
    server = (f"host: 127.0.0.1\n    port: {provider.port}\n    security: {security}\n"
              f"    ca_file: '{ca.ca_pem_path}'\n")
    login = (f"    username: {username}\n    auth: oauth2\n    oauth2:\n      client_id: {CLIENT_ID}\n"
             f"      refresh_token: {{file: refresh.token}}\n      token_url: {token_url}\n"
             f"      mechanism: {mechanism}\n")
    if relay:
        return (f"version: 1\nrelays:\n  idp:\n    {server}{login}"
                f"accounts:\n  - email: {email}\n    name: '{name}'\n    relay: idp\n")
    return f"version: 1\naccounts:\n  - email: {email}\n    name: '{name}'\n    {server}{login}"


def render_cli(directory: Path, yaml_text: str, only: str) -> tuple[Path, dict[str, Any]]:
    """Write ``smtpconf.yaml`` in ``directory`` and run ``smtpconf render`` on it."""
    config = directory / "smtpconf.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    out = directory / "out"
    done = subprocess.run([sys.executable, "-m", "smtpconf", "render", str(config), "-o", str(out),
                           "--only", only, "--format", "json"], capture_output=True, text=True, timeout=60,
                          cwd=directory, env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def git_env(home: Path, **extra: str) -> dict[str, str]:
    """Only the rendered snippet configures git: no system or user configuration. The committer (and
    default author) is someone else, so the From of the sent patch can only come from the rendered snippet (git
    send-email wants an identity even when sendemail.from is set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                  "GIT_COMMITTER_NAME": "Committer", "GIT_COMMITTER_EMAIL": "committer@example.org",
                  "GIT_AUTHOR_NAME": "Committer", "GIT_AUTHOR_EMAIL": "committer@example.org",
                  "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false", **extra}


def make_patch(git: list[str], repo: Path, home: Path) -> Path:
    """A repository with one commit (a file holding MARKER), and that commit as a patch file."""
    env = git_env(home)
    run = [*git, "-C", str(repo), "-c", "user.name=Test Author", "-c", "user.email=author@example.org"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True, env=env)
    (repo / "hello.txt").write_text(MARKER + "\n", encoding="utf-8")
    subprocess.run([*run, "add", "hello.txt"], check=True, env=env)
    subprocess.run([*run, "commit", "-q", "-m", PATCH_SUBJECT], check=True, env=env)
    done = subprocess.run([*run, "format-patch", "-1", "-o", str(repo.parent / "patches")], check=True,
                          capture_output=True, text=True, env=env)
    return Path(done.stdout.strip())
