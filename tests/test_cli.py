from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smtpconf import __version__
from smtpconf.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMTPCONF = str(Path(sys.executable).with_name("smtpconf"))


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMTPCONF, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_version_and_module_entry_point() -> None:
    assert run("--version").stdout.strip() == f"smtpconf {__version__}"
    done = subprocess.run([sys.executable, "-m", "smtpconf", "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == f"smtpconf {__version__}"


@pytest.mark.parametrize("args", [["lint", "does-not-exist.yaml"], ["lint", "--bogus", "x.yaml"], ["render", "x.yaml"],
                                  ["lint", "--explain", "no-such-rule"], ["lint"]])
def test_usage_errors_and_missing_files_are_exit_2_with_one_line(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("smtpconf: error: ") and "Traceback" not in done.stderr


def test_exit_codes_follow_findings_and_strict(tmp_path: Path) -> None:
    warn = tmp_path / "warn.yaml"
    warn.write_text("version: 1\nrelays: {a: {host: smtp.example.com, port: 25}}\n")
    assert run("lint", str(warn)).returncode == 0
    assert run("lint", "--strict", str(warn)).returncode == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrelays: {a: {host: smtp.example.com, port: 465, security: starttls}}\n")
    assert run("lint", str(bad)).returncode == 1


def test_broken_yaml_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nrelays: {a: [\n")
    done = run("lint", str(broken))
    assert done.returncode == 1 and "[yaml-syntax]" in done.stdout and "Traceback" not in done.stderr


def test_github_format_is_automatic_under_github_actions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrelays: {a: {host: x.example, password: inline}}\n")
    done = run("lint", str(bad), env={"GITHUB_ACTIONS": "true"})
    assert done.stdout.startswith("::error file=") and "inline-secret" in done.stdout
    assert run("lint", "--format", "json", str(bad), env={"GITHUB_ACTIONS": "true"}).stdout.startswith("{")


def test_explain_prints_the_rule_doc(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "--explain", "wrappermode-required"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrappermode-required (error, offline") and "smtp_tls_wrappermode" in out


def test_init_writes_a_commented_starter_that_lints_clean(tmp_path: Path) -> None:
    assert run("init", cwd=tmp_path).returncode == 0
    starter = tmp_path / "smtpconf.yaml"
    assert "# " in starter.read_text()
    done = run("lint", "--strict", str(starter))
    assert done.returncode == 0, done.stdout
    again = run("init", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_the_starters_commented_oauth2_relay_lints_clean_once_uncommented(tmp_path: Path) -> None:
    # The starter tells its reader to uncomment the o365 relay: what they get must be a valid
    # OAuth2 login (no oauth2-incomplete, no basic-auth-retired), not a schema error.
    lines = run("init", "-").stdout.splitlines()
    start = lines.index("  # o365:")
    block = [start]
    while lines[block[-1] + 1].startswith("  #   "):
        block.append(block[-1] + 1)
    for index in block:
        lines[index] = "  " + lines[index][len("  # "):]
    (tmp_path / "smtpconf.yaml").write_text("\n".join(lines) + "\n")
    done = run("lint", "--strict", "--format", "json", str(tmp_path / "smtpconf.yaml"))
    assert done.returncode == 0, done.stdout
    from smtpconf.lint import lint_path

    config = lint_path(tmp_path / "smtpconf.yaml").config
    assert config is not None
    login = config.relays["o365"].login
    assert login.auth == "oauth2" and login.oauth2 is not None and login.oauth2.complete
    assert login.oauth2.token_url == "https://login.microsoftonline.com/example.com/oauth2/v2.0/token"


def test_providers_lists_every_preset_with_its_note() -> None:
    out = run("providers").stdout
    for name in ("gmail", "163", "qq", "office365", "sendgrid", "ses"):
        assert f"\n{name} — " in "\n" + out
    assert "授权码" in out and "apikey" in out


def test_lint_does_not_import_heavy_modules() -> None:
    # lint runs on every commit: jinja2, dnspython, ansible and the render package (its output
    # directory machinery: fcntl, signal, threading) stay off its start-up path.
    code = ("import sys; from smtpconf.cli import main; main(['lint', 'examples']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'dns', 'ansible', 'jsonschema')"
            " or m.startswith('smtpconf.render')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_directory_is_linted_without_its_hidden_directories(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yaml").write_text("on: push\njobs: {}\n")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "smtpconf.yaml").write_text("version: 1\n")
    done = run("lint", str(tmp_path))
    assert done.returncode == 0, done.stdout


def test_the_bundled_example_lints_strictly_clean_and_shows_oauth2_logins() -> None:
    done = run("lint", "--strict", "examples")
    assert done.returncode == 0, done.stdout
    from smtpconf.lint import lint_path

    config = lint_path(ROOT / "examples" / "smtpconf.yaml").config
    assert config is not None
    relay_kinds = {r.login.secret.kind for r in config.relays.values() if r.login.auth == "oauth2" and r.login.secret}
    account_kinds = {a.login.secret.kind for a in config.accounts
                     if a.login.auth == "oauth2" and a.login.path == a.path and a.login.secret}
    assert "vault" in relay_kinds and "file" in account_kinds
