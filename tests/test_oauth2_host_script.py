"""roles/smtp_relay/files/smtpconf-oauth2, offline: how ``deliver`` turns msmtp's exit status into
what Postfix's pipe(8) does (75 defers, anything else bounces), with a stand-in msmtp that prints
what the real one prints. The real msmtp, Postfix and IdP run in
tests/integration/test_postfix_oauth2.py."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "roles" / "smtp_relay" / "files" / "smtpconf-oauth2"


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("smtpconf_oauth2_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def fake_msmtp(tmp_path: Path, status: int, output: str) -> Path:
    (tmp_path / "said").write_text(output)
    path = tmp_path / "msmtp"
    path.write_text(f"#!/bin/sh\ncat '{tmp_path / 'said'}' >&2\nexit {status}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("status", "output", "expected"), [
    (0, "", 0),
    # A refused token (msmtp EX_NOPERM) or an unreadable token file (EX_CONFIG): pipe(8) would
    # bounce both; they wait in the queue for the refresher instead.
    (77, "msmtp: authentication failed (method XOAUTH2)\nmsmtp: server message: 535 5.7.8 no\n", 75),
    (78, "msmtp: cannot read output of '/bin/cat /x.access'\n", 75),
    (75, "msmtp: cannot connect to localhost, port 1: Connection refused\n", 75),
    (74, "msmtp: the server sent an empty reply\n", 75),  # EX_IOERR: pipe(8) would bounce it
    # The provider refused a recipient or the message: that is permanent, and bounces.
    (69, "msmtp: recipient address x@example.org not accepted by the server\n"
         "msmtp: server message: 550 5.1.1 no such user\n", 69),
    # EX_UNAVAILABLE without a 5xx reply (say no XOAUTH2 offered): a relay problem, deferred.
    (69, "msmtp: the server does not support authentication method XOAUTH2\n", 75),
])
def test_deliver_maps_msmtp_status_to_defer_or_bounce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], status: int, output: str,
                                                      expected: int) -> None:
    script = load_script()
    monkeypatch.setattr(script, "MSMTP", str(fake_msmtp(tmp_path, status, output)))
    assert script.main(["smtpconf-oauth2", "deliver", "/x/msmtp-r.conf", "a@example.test", "b@example.org"]) == expected
    assert capsys.readouterr().out == output  # msmtp's words become Postfix's reason


def test_refresh_failure_names_the_relay_not_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script()
    token = "refresh-CANARY-5c1"
    (tmp_path / "r.refresh").write_text(token + "\n")
    (tmp_path / "oauth2-r.json").write_text(json.dumps({
        "relay": "r", "token_url": "http://127.0.0.1:9/token", "client_id": "c", "scope": "",
        "refresh_token_file": str(tmp_path / "r.refresh"), "client_secret_file": "",
        "access_token_file": str(tmp_path / "r.access"), "access_group": "", "renew_before": 600}))
    assert script.main(["smtpconf-oauth2", "refresh", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "oauth2-r.json: token endpoint http://127.0.0.1:9/token" in captured.err
    assert token not in captured.err
    assert not (tmp_path / "r.access").exists()
    assert (tmp_path / "r.refresh").read_text() == token + "\n"


def test_usage_is_exit_64(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script().main(["smtpconf-oauth2", "nonsense"]) == 64
    assert "usage: smtpconf-oauth2 refresh" in capsys.readouterr().err
