"""`--timeout` and `--concurrency` must be positive and finite (SPEC §11): anything else is a usage
error (exit 2, one line) before any file is read or any probe is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtpconf.cli import main

COMMANDS = {
    "check": ["check", "FILE", "--no-dns", "--no-probe"],
    "send-test": ["send-test", "FILE", "--account", "a@example.com", "--to", "b@example.com"],
}


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "smtpconf.yaml"
    path.write_text("version: 1\naccounts:\n  - {email: a@example.com, host: smtp.example.com}\n")
    return str(path)


@pytest.mark.parametrize("value", ["-1", "0", "-0", "nan", "NaN", "inf", "-inf", "1e400", "ten", ""])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_timeout_that_is_not_positive_and_finite_is_a_usage_error(
        config: str, command: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [config if a == "FILE" else a for a in COMMANDS[command]]
    assert main([*argv, f"--timeout={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smtpconf: error: argument --timeout: ") and len(err.splitlines()) == 1, err
    assert "internal error" not in err


@pytest.mark.parametrize("value", ["-1", "0", "1.5", "many", "nan"])
def test_a_concurrency_that_is_not_a_positive_whole_number_is_a_usage_error(
        config: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", config, "--no-dns", "--no-probe", f"--concurrency={value}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smtpconf: error: argument --concurrency: ") and len(err.splitlines()) == 1, err


def test_a_positive_finite_timeout_and_concurrency_are_taken(config: str) -> None:
    assert main(["check", config, "--no-dns", "--no-probe", "--timeout=0.5", "--concurrency=1"]) == 0
