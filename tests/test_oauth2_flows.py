"""The login flows' answers that the loopback identity provider never gives (it approves every
login at once): RFC 8628 polling with ``slow_down``, ``access_denied`` and ``expired_token``
from a scripted token endpoint, and a browser sign-in the provider refuses (RFC 6749 §4.1.2.1)
or that never comes back. Real HTTP and real sockets throughout."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from smtpconf.errors import UsageError
from smtpconf.lint import lint_path
from smtpconf.model import OAuth2
from smtpconf.oauth2 import OAuth2Error
from smtpconf.oauth2.flows import code_flow, device_flow, pkce_pair
from smtpconf.oauth2.http import Deadline
from tests.support.idp import s256


class ScriptedIdP:
    """/devicecode grants a device code (interval 1 s); each /token poll gets the next scripted
    error code, or the tokens when the script says "ok". ``polls`` are the poll times."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.polls: list[float] = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/devicecode":
                    body: dict[str, Any] = {"device_code": "dc", "user_code": "ABCD-EFGH", "interval": 1,
                                            "verification_uri": "http://127.0.0.1/device", "expires_in": 60}
                    status = 200
                else:
                    idp.polls.append(time.monotonic())
                    step = idp.script.pop(0)
                    status, body = (200, {"access_token": "at", "token_type": "Bearer", "expires_in": 3600,
                                          "refresh_token": "rt"}) if step == "ok" else (400, {"error": step})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[ScriptedIdP]:
    server = ScriptedIdP(request.param)
    yield server
    server.close()


def oauth2_for(tmp_path: Path, base: str) -> OAuth2:
    path = tmp_path / "smtpconf.yaml"
    path.write_text("version: 1\nrelays:\n  o365:\n    provider: office365\n    username: app@corp.example\n"
                    f"    oauth2: {{client_id: c, refresh_token: {{file: rt}}, token_url: '{base}/token',\n"
                    f"             authorize_url: '{base}/authorize', device_url: '{base}/devicecode'}}\n")
    config = lint_path(path).config
    assert config is not None and config.relays["o365"].login.oauth2 is not None
    return config.relays["o365"].login.oauth2


def run_device(tmp_path: Path, server: ScriptedIdP) -> tuple[dict[str, Any], list[str]]:
    said: list[str] = []
    answer = device_flow(oauth2_for(tmp_path, server.base), "app@corp.example", None, deadline=Deadline(60),
                         say=said.append, what="relay 'o365'")
    return answer, said


@pytest.mark.parametrize("scripted", [["authorization_pending", "slow_down", "ok"]], indirect=True)
def test_device_polling_waits_while_pending_and_slows_down_when_told(tmp_path: Path, scripted: ScriptedIdP) -> None:
    answer, said = run_device(tmp_path, scripted)
    assert answer["refresh_token"] == "rt"
    assert any("enter the code ABCD-EFGH" in line for line in said)
    first, second, third = scripted.polls
    assert second - first >= 0.9  # the interval
    assert third - second >= 5.9  # RFC 8628 §3.5: slow_down adds 5 seconds


@pytest.mark.parametrize("scripted, expected", [
    (["authorization_pending", "access_denied"], "the sign-in was declined"),
    (["expired_token"], "the device code expired before the sign-in finished"),
], indirect=["scripted"])
def test_device_polling_stops_on_denial_or_expiry(tmp_path: Path, scripted: ScriptedIdP, expected: str) -> None:
    with pytest.raises(OAuth2Error, match=expected):
        run_device(tmp_path, scripted)


def test_pkce_is_s256_of_a_valid_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128 and challenge == s256(verifier)
    assert pkce_pair()[0] != verifier


def browser(url: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(url, timeout=10).read()
    except OSError:
        pass


def test_a_refused_browser_sign_in_is_a_clear_error(tmp_path: Path) -> None:
    oauth2 = oauth2_for(tmp_path, "http://127.0.0.1:9")  # never contacted: the "user" refuses first
    said: list[str] = []

    def refuse_when_the_url_is_printed(line: str) -> None:
        said.append(line)
        if "http://127.0.0.1:9/authorize?" in line:
            query = {k: v[0] for k, v in parse_qs(urlsplit(line.split()[-1]).query).items()}
            answer = f"{query['redirect_uri']}?error=access_denied&error_description=the+user+said+no&state={query['state']}"
            threading.Thread(target=browser, args=(answer,), daemon=True).start()

    with pytest.raises(OAuth2Error, match=r"did not sign you in \(access_denied: the user said no\)"):
        code_flow(oauth2, "app@corp.example", None, deadline=Deadline(30), say=refuse_when_the_url_is_printed,
                  browser=False)


def test_a_sign_in_that_never_comes_back_is_bounded(tmp_path: Path) -> None:
    oauth2 = oauth2_for(tmp_path, "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(OAuth2Error, match=r"no sign-in came back within 0\.5s \(--timeout\)"):
        code_flow(oauth2, "", None, deadline=Deadline(0.5), say=lambda line: None, browser=False)
    assert time.monotonic() - started < 10


def test_no_device_url_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "smtpconf.yaml"
    path.write_text("version: 1\nrelays:\n  g: {provider: gmail, username: a@example.com,\n"
                    "      oauth2: {client_id: c, refresh_token: {file: rt}}}\n")
    config = lint_path(path).config
    assert config is not None and config.relays["g"].login.oauth2 is not None
    with pytest.raises(UsageError, match="has no device flow"):
        device_flow(config.relays["g"].login.oauth2, "a@example.com", None, deadline=Deadline(5),
                    say=lambda line: None, what="relay 'g'")
