"""The stages do not know the command line: cli.py turns flags into frozen options objects and
calls one ``execute`` per stage (docs/architecture.md); a stage runs from Python without it."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smtpconf.oauth2.command import LoginOptions, TokenOptions
from smtpconf.probe.check import CheckOptions
from smtpconf.probe.sendtest import SendTestOptions
from smtpconf.render.command import RenderOptions

ROOT = Path(__file__).resolve().parent.parent


def test_only_the_cli_imports_argparse() -> None:
    importers = []
    for path in sorted((ROOT / "smtpconf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "argparse" for name in names):
                importers.append(str(path.relative_to(ROOT)))
    assert importers == ["smtpconf/cli.py"]


@pytest.mark.parametrize("options", [
    RenderOptions("f.yaml", "out"),
    SendTestOptions("f.yaml", "b@example.com", account="a@example.com"),
    CheckOptions(("f.yaml",)),
    TokenOptions("f.yaml", account="a@example.com"),
    LoginOptions("f.yaml", relay="r"),
])
def test_options_are_frozen(options: object) -> None:
    with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
        options.file = "other.yaml"  # type: ignore[attr-defined]


def test_render_runs_from_python_with_options_built_by_hand(tmp_path: Path) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\naccounts:\n  - {email: a@example.com, host: smtp.example.com, port: 465}\n")
    out = tmp_path / "out"
    code = ("import sys; from smtpconf.render.command import RenderOptions, execute\n"
            f"rc = execute(RenderOptions(file={str(config)!r}, output={str(out)!r}, only='msmtp', format='json'))\n"
            "print('cli imported' if 'smtpconf.cli' in sys.modules else 'cli not imported', rc, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ})
    assert done.stderr.splitlines()[-1] == "cli not imported 0", done.stderr
    assert '"path": "msmtp/a@example.com.msmtprc"' in done.stdout
    assert (out / "msmtp" / "a@example.com.msmtprc").is_file()
