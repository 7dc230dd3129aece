"""Render a smtpconf file through the real CLI and read back what it wrote."""

from __future__ import annotations

import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from smtpconf.cli import main
from smtpconf.render import TARGETS, RenderContext, RenderedFile

# Accounts that cover the cases every client format must get right: STARTTLS (Gmail on 587) and
# implicit TLS (163.com on 465), a Chinese display name, XML special characters in a name, and IDN
# domains (a Unicode local part and domain; a German IDN with a username that is not the address).
ACCOUNTS_YAML = """\
version: 1
accounts:
  - email: xiaoming@example.com
    name: 小明
    provider: gmail
    password: {command: "pass show mail/xiaoming"}
  - email: alerts@163.com
    name: "A & B <ops> \\"quoted\\" 'x'"
    provider: "163"
    password: {env: SMTPCONF_TEST_163_CODE}
  - email: 用户@例子.测试
    name: 小明
    host: smtp.例子.测试
    port: 465
    security: tls
    password: {file: secret.txt}
    incoming: {host: imap.例子.测试, protocol: imap}
  - email: ops@münchen.example
    host: mail.münchen.example
    port: 587
    security: starttls
    username: ops
    password: {env: SMTPCONF_TEST_OPS_PASSWORD}
    incoming: {host: pop.münchen.example, protocol: pop3}
"""
ALERTS_NAME = "A & B <ops> \"quoted\" 'x'"
IDN_SMTP = "smtp.xn--fsqu00a.xn--0zwm56d"  # smtp.例子.测试 as A-labels
IDN_DOMAIN = "xn--fsqu00a.xn--0zwm56d"
MUENCHEN = "xn--mnchen-3ya.example"
# Values of the secrets the file references: none may appear in any rendered file.
SECRET_VALUES = {"SMTPCONF_TEST_163_CODE": "auth-code-163-Zq9", "SMTPCONF_TEST_OPS_PASSWORD": "ops-pw-Xy7"}
FILE_SECRET = "file-secret-Kp3"


def write_config(directory: Path, text: str) -> Path:
    """Write a smtpconf file (and the secret file it may reference) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "secret.txt").write_text(FILE_SECRET + "\n", encoding="utf-8")
    path = directory / "smtpconf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def render_ok(config: Path, out: Path, only: str) -> dict[str, Any]:
    """Render with ``--format json``; assert success and return the printed manifest."""
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["render", str(config), "-o", str(out), "--only", only, "--format", "json"])
    assert code == 0, stdout.getvalue()
    manifest: dict[str, Any] = json.loads(stdout.getvalue())
    return manifest


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: relative path -> (bytes, permission bits)."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o7777)
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    """Staging or backup directories a render left beside its output."""
    return sorted(p.name for p in parent.iterdir() if ".smtpconf-" in p.name or ".old-" in p.name)


TargetRender = Callable[[RenderContext], Iterable[RenderedFile]]


@pytest.fixture
def plug_target(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, TargetRender], None]:
    """Register an extra target module, the way a real one is registered, for this test only."""

    def register(name: str, render: TargetRender) -> None:
        module = types.ModuleType(f"smtpconf.render.{name}")
        module.render = render  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(TARGETS, name, name)

    return register
