"""The pre-commit hook's entry over the bundled examples (must pass) and over tests/cases/, a tree
of bad files each declaring the rule ids and lines it must produce (``# expect: LINE:RULE ...`` on
its first line, or a ``.expect`` file beside it for files that cannot carry a comment)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CASES = sorted((ROOT / "tests" / "cases").glob("*.yaml"))
FINDING = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<level>error|warning|info) \[(?P<rule>[a-z0-9-]+)\] ")


def hook_entry() -> list[str]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "smtpconf-lint"]
    entry = shlex.split(hook["entry"])
    # pre-commit runs the entry from the environment it installed; here that is this interpreter's.
    assert entry[0] == "smtpconf"
    return [str(Path(sys.executable).with_name("smtpconf")), *entry[1:]]


def expected(case: Path) -> list[tuple[int, str]]:
    sidecar = case.with_suffix(".expect")
    if sidecar.exists():
        text = sidecar.read_text()
    else:
        first = case.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# expect:"), f"{case.name} declares no expectation"
        text = first.removeprefix("# expect:")
    pairs = [item.split(":", 1) for item in text.split()]
    return sorted((int(line), rule) for line, rule in pairs)


def run_hook(*files: Path) -> subprocess.CompletedProcess[str]:
    # The timeout catches a hang (an alias bomb expanding); speed itself is measured in bench/.
    return subprocess.run([*hook_entry(), *map(str, files)], capture_output=True, text=True, timeout=20,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})


def test_hook_passes_on_the_bundled_examples() -> None:
    done = run_hook(ROOT / "examples")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "error" not in done.stdout


def test_every_case_declares_what_it_must_produce() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        assert expected(case), case.name


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_bad_file_gives_its_rule_ids_at_its_lines(case: Path) -> None:
    done = run_hook(case)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    found = sorted((int(m["line"]), m["rule"]) for m in map(FINDING.match, done.stdout.splitlines()) if m)
    assert found == expected(case), done.stdout
    assert len(found) == len(done.stdout.splitlines()), "every output line is a finding"


def test_the_hook_matches_smtpconf_files_only() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    pattern = re.compile(hooks[0]["files"])
    assert pattern.search("smtpconf.yaml") and pattern.search("mail/prod.smtpconf.yml")
    assert not pattern.search("docker-compose.yaml")


def test_inline_secret_message_never_repeats_the_password() -> None:
    done = run_hook(ROOT / "tests" / "cases" / "inline-password.yaml")
    assert "hunter2" not in done.stdout + done.stderr


def test_yaml_octal_message_never_repeats_the_password() -> None:
    done = run_hook(ROOT / "tests" / "cases" / "octal-password.yaml")
    assert "01234567" not in done.stdout + done.stderr and "342391" not in done.stdout + done.stderr
