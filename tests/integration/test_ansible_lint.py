"""ansible-lint's production profile passes on the role in the repository and on a rendered
directory (offline: no galaxy, no collection installs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smtpconf.cli import main as smtpconf_main
from smtpconf.resources import resource_path
from tests.support import ansible_run

pytestmark = pytest.mark.integration


def lint(directory: Path, home: Path, *paths: str) -> ansible_run.Run:
    return ansible_run.run([ansible_run.program("ansible-lint"), "--offline", "--profile", "production",
                            "--nocolor", *paths], cwd=directory, home=home)


def test_role_passes_the_production_profile(tmp_path: Path) -> None:
    result = lint(resource_path("roles", "smtp_relay"), tmp_path / "home")
    assert result.returncode == 0, result.output
    assert "Profile 'production' was required, and it passed" in result.output


def test_rendered_directory_passes_the_production_profile(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert smtpconf_main(["render", str(resource_path("examples", "smtpconf.yaml")), "-o", str(out),
                          "--only", "ansible"]) == 0
    result = lint(out / "ansible", tmp_path / "home")
    assert result.returncode == 0, result.output
    assert "Profile 'production' was required, and it passed" in result.output
    # Every YAML file was linted (the playbook, both group_vars, the role), not just some of them.
    processed = re.search(r"in (\d+) files processed", result.output)
    assert processed and int(processed.group(1)) >= len(list((out / "ansible").rglob("*.yml"))), result.output
