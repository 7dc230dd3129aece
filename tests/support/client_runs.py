"""Render a smtpconf file with the real CLI (a subprocess, as a user runs it) for the integration
tests that then hand the rendered files to real mail clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.smtpserver import Provider, TestCA

# A message body the tests look for in what the provider received.
MARKER = "smtpconf-client-test-7f3a"


def provider_yaml(provider: Provider, ca: TestCA, *, email: str, username: str, password: str,
                  name: str = "小明") -> str:
    """One account on ``provider`` (127.0.0.1), trusting the test CA. ``password`` is the YAML of
    a secret reference, e.g. ``{env: NAME}``."""
    security = "tls" if provider.mode == "tls" else "starttls"
    quoted = username.replace("'", "''")
    return (f"version: 1\naccounts:\n  - email: {email}\n    name: '{name}'\n    host: 127.0.0.1\n"
            f"    port: {provider.port}\n    security: {security}\n    ca_file: '{ca.ca_pem_path}'\n"
            f"    username: '{quoted}'\n    password: {password}\n")


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
