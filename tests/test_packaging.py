"""A non-editable install (a wheel, as pre-commit builds for the hook) carries everything lint and
render read: the schema, the presets, the templates and the role."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True, cwd=work)
    (wheel,) = (work / "dist").glob("smtpconf-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(work / "site"),
                    str(wheel)], check=True, capture_output=True, cwd=work)
    return work


def run(installed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(installed / "site"), "GMAIL_APP_PASSWORD": "x"}
    # From a directory that is not the checkout, so nothing can come from the repository.
    return subprocess.run([sys.executable, "-m", "smtpconf", *args], capture_output=True, text=True,
                          env=env, cwd=installed)


def test_the_wheel_lints_and_renders_without_the_checkout(installed: Path) -> None:
    where = run(installed, "--version")
    assert where.returncode == 0, where.stderr
    origin = subprocess.run([sys.executable, "-c", "import smtpconf; print(smtpconf.__file__)"],
                            capture_output=True, text=True, cwd=installed,
                            env={**os.environ, "PYTHONPATH": str(installed / "site")}).stdout
    assert origin.startswith(str(installed / "site"))
    assert run(installed, "lint", str(ROOT / "examples")).returncode == 0
    assert '"$id"' in run(installed, "schema").stdout
    rendered = run(installed, "render", str(ROOT / "examples" / "smtpconf.yaml"), "-o", str(installed / "out"))
    assert rendered.returncode == 0, rendered.stderr
    assert (installed / "out" / "ansible" / "roles" / "smtp_relay" / "tasks" / "main.yml").is_file()
    assert (installed / "out" / "msmtp" / "xiaoming@example.com.msmtprc").is_file()
    # smtpconf.probe.dialogue is a link to the role's module_utils in the checkout: the wheel holds
    # it as a file, and the role it renders holds it too.
    dialogue = installed / "site" / "smtpconf" / "probe" / "dialogue.py"
    assert dialogue.is_file() and not dialogue.is_symlink() and b"class Session" in dialogue.read_bytes()
    assert (installed / "out" / "ansible" / "roles" / "smtp_relay" / "module_utils" / "smtp_dialogue.py").is_file()
