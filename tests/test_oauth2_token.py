"""smtpconf.oauth2.access_token against the loopback identity provider (real HTTP, no mocks):
the cache, refresh, refresh-token rotation written back or kept, and every refusal as one clear
message that never carries a token or a secret."""

from __future__ import annotations

import base64
import socket
import ssl
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from smtpconf.lint import lint_path
from smtpconf.model import Login
from smtpconf.oauth2 import InvalidGrant, OAuth2Error, access_token
from smtpconf.oauth2.cache import Entry, cache_dir
from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER, idp, test_ca  # noqa: F401  (fixtures)
from tests.support.smtpserver import TestCA

SECRET = "client-s3cret-CANARY"


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def write_config(tmp_path: Path, idp: IdentityProvider, refresh: str = "{file: refresh.token}",
                 extra: str = "") -> Path:
    path = tmp_path / "smtpconf.yaml"
    path.write_text(
        "version: 1\naccounts:\n"
        f"  - email: {OAUTH_USER}\n    provider: office365\n    auth: oauth2\n    oauth2:\n"
        f"      client_id: {CLIENT_ID}\n      refresh_token: {refresh}\n"
        f"      token_url: '{idp.token_url}'\n{extra}", encoding="utf-8")
    return path


def login_of(path: Path) -> Login:
    result = lint_path(path)
    assert result.config is not None, result.findings
    assert not [f for f in result.findings if f.level == "error"], result.findings
    return result.config.accounts[0].login


def seed_file(tmp_path: Path, idp: IdentityProvider) -> tuple[Path, str]:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    path = tmp_path / "refresh.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path, token


def token_requests(idp: IdentityProvider) -> int:
    return len(idp.token_grants())


def test_a_refreshed_token_is_cached_privately_and_reused_without_a_request(tmp_path: Path, idp: IdentityProvider,
                                                                            cache_home: Path) -> None:
    seed_file(tmp_path, idp)
    login = login_of(write_config(tmp_path, idp))
    first = access_token(login, tmp_path, timeout=10)
    assert idp.valid_access_token(first) == OAUTH_USER
    assert idp.token_grants() == ["refresh_token"]
    (grant,) = [r for r in idp.requests if r.path == "/token"]
    assert grant.form["client_id"] == CLIENT_ID and "SMTP.Send" in grant.form["scope"]

    directory = cache_home / "smtpconf" / "oauth2"
    assert directory == cache_dir()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    entries = list(directory.glob("*.json"))
    assert len(entries) == 1 and stat.S_IMODE(entries[0].stat().st_mode) == 0o600

    requests = len(idp.requests)
    assert access_token(login, tmp_path, timeout=10) == first
    assert len(idp.requests) == requests  # no network request at all


def test_reuse_stops_shortly_before_expiry_the_smaller_of_5_minutes_and_a_tenth() -> None:
    hour = Entry("t", 1000.0, 1000.0 + 3600)
    assert hour.fresh(1000.0 + 3600 - 301) and not hour.fresh(1000.0 + 3600 - 299)
    minute = Entry("t", 1000.0, 1000.0 + 60)
    assert minute.fresh(1000.0 + 53.9) and not minute.fresh(1000.0 + 54.1)
    assert not Entry("t", 1000.0, None).fresh(1000.0)  # no expires_in: never reused
    assert not hour.fresh(1000.0 - 120)  # the clock went back: not trusted


def test_an_expired_token_is_refreshed(tmp_path: Path, idp: IdentityProvider) -> None:
    idp.rotate = False
    seed_file(tmp_path, idp)
    login = login_of(write_config(tmp_path, idp))
    idp.access_ttl = 1.0
    first = access_token(login, tmp_path, timeout=10)
    time.sleep(1.2)
    assert idp.valid_access_token(first) is None
    second = access_token(login, tmp_path, timeout=10)
    assert second != first and idp.valid_access_token(second) == OAUTH_USER
    assert idp.token_grants() == ["refresh_token", "refresh_token"]


def test_a_rotated_refresh_token_is_written_back_atomically_and_the_old_one_is_dead(tmp_path: Path,
                                                                                     idp: IdentityProvider) -> None:
    path, old = seed_file(tmp_path, idp)
    login = login_of(write_config(tmp_path, idp))
    access_token(login, tmp_path, timeout=10)
    new = path.read_text().strip()
    assert new != old and idp.refresh_token_valid(new) and not idp.refresh_token_valid(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refresh.token", "smtpconf.yaml", "xdg-cache"]  # no temp


def test_a_symlinked_refresh_token_file_stays_a_symlink(tmp_path: Path, idp: IdentityProvider) -> None:
    real, old = seed_file(tmp_path, idp)
    (tmp_path / "secrets").mkdir()
    moved = tmp_path / "secrets" / "real.token"
    real.rename(moved)
    (tmp_path / "refresh.token").symlink_to(moved)
    access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10)
    assert (tmp_path / "refresh.token").is_symlink()
    assert idp.refresh_token_valid(moved.read_text().strip())


def test_a_read_only_refresh_token_is_kept_rotated_in_the_cache_while_the_configured_one_is_unchanged(
        tmp_path: Path, idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch, cache_home: Path) -> None:
    configured = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    monkeypatch.setenv("O365_REFRESH", configured)
    login = login_of(write_config(tmp_path, idp, refresh="{env: O365_REFRESH}"))
    idp.access_ttl = 1.0
    access_token(login, tmp_path, timeout=10)
    assert not idp.refresh_token_valid(configured)  # rotated away at once
    (entry,) = (cache_home / "smtpconf" / "oauth2").glob("*.json")
    text = entry.read_text()
    assert configured not in text  # only its digest is kept
    time.sleep(1.2)
    second = access_token(login, tmp_path, timeout=10)  # the rotated token, not the dead configured one
    assert idp.valid_access_token(second) == OAUTH_USER

    # The user logs in again and configures a new token: it wins over what the cache holds.
    fresh = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    monkeypatch.setenv("O365_REFRESH", fresh)
    time.sleep(1.2)
    access_token(login, tmp_path, timeout=10)
    assert [r.form["refresh_token"] for r in idp.requests if r.path == "/token"][-1] == fresh


def test_invalid_grant_names_the_login_command_and_leaves_the_file_alone(tmp_path: Path,
                                                                         idp: IdentityProvider) -> None:
    path, token = seed_file(tmp_path, idp)
    idp.revoke(token)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(InvalidGrant) as caught:
        access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10,
                     login_command="smtpconf oauth2 login smtpconf.yaml --account app@corp.example")
    message = str(caught.value)
    assert message.startswith("the identity provider refused the refresh token (invalid_grant: ")
    assert message.endswith("; run: smtpconf oauth2 login smtpconf.yaml --account app@corp.example")
    assert token not in message
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_the_default_login_command_names_the_account(tmp_path: Path, idp: IdentityProvider) -> None:
    _, token = seed_file(tmp_path, idp)
    idp.revoke(token)
    with pytest.raises(InvalidGrant, match=r"run: smtpconf oauth2 login FILE --account app@corp\.example$"):
        access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10)


def test_a_slow_endpoint_is_bounded_by_the_timeout(tmp_path: Path, idp: IdentityProvider) -> None:
    path, token = seed_file(tmp_path, idp)
    idp.delay = 30
    started = time.monotonic()
    with pytest.raises(OAuth2Error, match=r"token did not answer within 0\.5s \(--timeout\)"):
        access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=0.5)
    assert time.monotonic() - started < 10
    assert path.read_text().strip() == token


class Trickle:
    """A server that answers one byte every ``pause`` seconds, forever: every single read is
    quick, so only a total deadline stops a client. Or, with ``body``, a big answer at once."""

    def __init__(self, pause: float = 0.1, body: bytes | None = None) -> None:
        self.pause, self.body = pause, body
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            try:
                request = b""
                while b"\r\n\r\n" not in request:  # the whole request, or closing would reset the connection
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                while len(body) < length:
                    body += conn.recv(65536)
                if self.body is not None:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + self.body)
                    return
                for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000:
                    if self.stop.wait(self.pause):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def trickle() -> Iterator[Trickle]:
    server = Trickle()
    yield server
    server.close()


def test_a_trickling_endpoint_is_bounded_in_total_not_per_read(tmp_path: Path, idp: IdentityProvider,
                                                              trickle: Trickle) -> None:
    seed_file(tmp_path, idp)
    config = write_config(tmp_path, idp)
    config.write_text(config.read_text().replace(idp.token_url, f"http://127.0.0.1:{trickle.port}/token"))
    started = time.monotonic()
    with pytest.raises(OAuth2Error, match=r"did not answer within 1s \(--timeout\)"):
        access_token(login_of(config), tmp_path, timeout=1)
    assert time.monotonic() - started < 10


def test_a_huge_answer_is_cut_off(tmp_path: Path, idp: IdentityProvider) -> None:
    server = Trickle(body=b'{"access_token": "' + b"a" * (3 << 20) + b'"}')
    try:
        seed_file(tmp_path, idp)
        config = write_config(tmp_path, idp)
        config.write_text(config.read_text().replace(idp.token_url, f"http://127.0.0.1:{server.port}/token"))
        with pytest.raises(OAuth2Error, match=r"answered more than 1024 KiB: is token_url right\?"):
            access_token(login_of(config), tmp_path, timeout=10)
    finally:
        server.close()


@pytest.mark.parametrize("garbage, expected", [
    ("html", r"answered text/html \(HTTP 200\), not JSON: is token_url right\?"),
    ("junk", r"answered HTTP 200 with application/json that is not a JSON object: is token_url right\?"),
])
def test_html_or_junk_answers_are_named(tmp_path: Path, idp: IdentityProvider, garbage: str, expected: str) -> None:
    path, token = seed_file(tmp_path, idp)
    idp.garbage = garbage  # type: ignore[assignment]
    with pytest.raises(OAuth2Error, match=expected):
        access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10)
    assert path.read_text().strip() == token


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path, idp: IdentityProvider) -> None:
    seed_file(tmp_path, idp)
    config = write_config(tmp_path, idp)
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    config.write_text(config.read_text().replace(idp.token_url, f"http://127.0.0.1:{port}/token"))
    with pytest.raises(OAuth2Error, match=r"cannot connect: Connection refused"):
        access_token(login_of(config), tmp_path, timeout=10)


def test_plain_http_is_refused_off_loopback(tmp_path: Path, idp: IdentityProvider) -> None:
    seed_file(tmp_path, idp)
    config = write_config(tmp_path, idp)
    config.write_text(config.read_text().replace(idp.token_url, "http://idp.example.test/token"))
    with pytest.raises(OAuth2Error, match=r"plain http would send the credentials in the clear; use https"):
        access_token(login_of(config), tmp_path, timeout=10)
    assert idp.requests == []


def test_the_client_secret_is_sent_and_never_repeated(tmp_path: Path, idp: IdentityProvider,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    idp.client_secret = SECRET
    _, token = seed_file(tmp_path, idp)
    monkeypatch.setenv("CLIENT_SECRET", SECRET)
    login = login_of(write_config(tmp_path, idp, extra="      client_secret: {env: CLIENT_SECRET}\n"))
    assert idp.valid_access_token(access_token(login, tmp_path, timeout=10)) == OAUTH_USER

    idp.client_secret = SECRET + "-rotated"
    for entry in (cache_dir()).glob("*.json"):
        entry.unlink()
    with pytest.raises(OAuth2Error) as caught:
        access_token(login, tmp_path, timeout=10)
    message = str(caught.value)
    assert "invalid_client" in message and "check client_id, and client_secret" in message
    assert SECRET not in message and token not in message


def test_missing_pieces_and_vault_tokens_are_clear_errors(tmp_path: Path, idp: IdentityProvider) -> None:
    path = tmp_path / "smtpconf.yaml"
    path.write_text(
        "version: 1\nrelays:\n"
        "  nocid: {provider: office365, username: a@corp.example, oauth2: {refresh_token: {env: R}}}\n"
        "  vault: {provider: office365, username: a@corp.example,\n"
        "          oauth2: {client_id: c, refresh_token: {vault: vault_o365_refresh}}}\n")
    config = lint_path(path).config
    assert config is not None
    with pytest.raises(OAuth2Error, match=r"relay 'nocid': auth oauth2 needs client_id in its oauth2 block"):
        access_token(config.relays["nocid"].login, tmp_path, timeout=10)
    with pytest.raises(OAuth2Error, match=r"the Ansible variable vault_o365_refresh, resolved on the host"):
        access_token(config.relays["vault"].login, tmp_path, timeout=10)


def test_a_cache_entry_that_is_not_private_is_not_trusted(tmp_path: Path, idp: IdentityProvider) -> None:
    idp.rotate = False
    seed_file(tmp_path, idp)
    login = login_of(write_config(tmp_path, idp))
    access_token(login, tmp_path, timeout=10)
    (entry,) = cache_dir().glob("*.json")
    entry.chmod(0o644)
    access_token(login, tmp_path, timeout=10)
    assert idp.token_grants() == ["refresh_token", "refresh_token"]


def test_concurrent_callers_spend_the_refresh_token_once(tmp_path: Path, idp: IdentityProvider) -> None:
    path, _ = seed_file(tmp_path, idp)
    login = login_of(write_config(tmp_path, idp))
    idp.delay = 0.3  # both are in flight together
    tokens: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            tokens.append(access_token(login, tmp_path, timeout=20))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(set(tokens)) == 1
    assert idp.token_grants() == ["refresh_token"]
    assert idp.refresh_token_valid(path.read_text().strip())


def test_an_empty_refresh_token_file_says_to_log_in(tmp_path: Path, idp: IdentityProvider) -> None:
    (tmp_path / "refresh.token").write_text("\n")
    with pytest.raises(OAuth2Error, match=r"is empty; run: smtpconf oauth2 login"):
        access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10)
    assert idp.requests == []


class TLSTokenEndpoint:
    """An HTTPS token endpoint (certificate from the session test CA) that answers every refresh
    with the same tokens: the https:// path of the client, certificate checks included."""

    def __init__(self, context: ssl.SSLContext) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = b'{"access_token": "tls-access", "token_type": "Bearer", "expires_in": 3600}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_endpoint(test_ca: TestCA) -> Iterator[TLSTokenEndpoint]:
    endpoint = TLSTokenEndpoint(test_ca.issue(["localhost"]))
    yield endpoint
    endpoint.close()


def test_https_endpoints_are_verified_against_the_system_trust(tmp_path: Path, idp: IdentityProvider,
                                                               tls_endpoint: TLSTokenEndpoint, test_ca: TestCA,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seed_file(tmp_path, idp)
    config = write_config(tmp_path, idp)
    config.write_text(config.read_text().replace(idp.token_url, tls_endpoint.url))
    login = login_of(config)
    with pytest.raises(OAuth2Error, match=r"https://localhost:\d+/token: TLS certificate not trusted"):
        access_token(login, tmp_path, timeout=10)
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.ca_pem_path))  # OpenSSL's default trust, as a system CA
    assert access_token(login, tmp_path, timeout=10) == "tls-access"


def test_without_a_usable_cache_the_token_still_comes_with_a_warning(tmp_path: Path, idp: IdentityProvider,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path, _ = seed_file(tmp_path, idp)
    token = access_token(login_of(write_config(tmp_path, idp)), tmp_path, timeout=10)
    assert idp.valid_access_token(token) == OAUTH_USER
    assert idp.refresh_token_valid(path.read_text().strip())  # the rotation was still written back
    err = capsys.readouterr().err
    assert "warning: refreshing without a lock" in err and "warning: access token not cached" in err
    assert token not in err


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback that sends every tunnel to ``upstream`` (so the target's
    name needs no DNS here), optionally demanding ``Proxy-Authorization``. ``connects`` records
    the request lines and authorization headers it saw."""

    def __init__(self, upstream: int, authorization: str | None = None) -> None:
        self.upstream, self.authorization = upstream, authorization
        self.connects: list[tuple[str, str | None]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    def handle(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.decode("latin-1").split("\r\n")
            given = next((line.split(":", 1)[1].strip() for line in lines
                          if line.lower().startswith("proxy-authorization:")), None)
            self.connects.append((lines[0], given))
            if self.authorization is not None and given != self.authorization:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection(("127.0.0.1", self.upstream)) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=self.pump, args=(upstream, client), daemon=True)
                pump.start()
                self.pump(client, upstream)
                pump.join(5)

    @staticmethod
    def pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does (Linux). A
        # thread left running would make every later render in this process fork-unsafe (1 worker).
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)


def test_https_goes_through_https_proxy_with_its_credentials_never_shown(
        tmp_path: Path, idp: IdentityProvider, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = TLSTokenEndpoint(test_ca.issue(["idp.corp.example"]))
    port = int(endpoint.url.rsplit(":", 1)[1].split("/")[0])
    proxy = ConnectProxy(port, authorization="Basic " + base64.b64encode(b"proxyuser:pw-CANARY").decode())
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(test_ca.ca_pem_path))
        seed_file(tmp_path, idp)
        config = write_config(tmp_path, idp)
        config.write_text(config.read_text().replace(idp.token_url, f"https://idp.corp.example:{port}/token"))
        login = login_of(config)

        monkeypatch.setenv("https_proxy", proxy.url.replace("http://", "http://proxyuser:wrong-CANARY@"))
        with pytest.raises(OAuth2Error) as refused:
            access_token(login, tmp_path, timeout=10)
        assert "refused the tunnel to https://idp.corp.example" in str(refused.value)
        assert "407 Proxy Authentication Required" in str(refused.value) and "CANARY" not in str(refused.value)

        monkeypatch.setenv("https_proxy", proxy.url.replace("http://", "http://proxyuser:pw-CANARY@"))
        assert access_token(login, tmp_path, timeout=10) == "tls-access"
        assert proxy.connects[-1][0] == f"CONNECT idp.corp.example:{port} HTTP/1.1"

    finally:
        proxy.close()
        endpoint.close()


def test_no_proxy_and_the_proxy_url_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    from smtpconf.oauth2.proxy import Proxy, proxy_for

    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("https_proxy", "proxy.corp.example:3128")
    monkeypatch.setenv("no_proxy", "localhost, .internal.example,login.example")
    assert proxy_for("login.microsoftonline.com") == Proxy("proxy.corp.example", 3128, None)
    assert proxy_for("idp.internal.example") is None and proxy_for("internal.example") is None
    assert proxy_for("login.example") is None and proxy_for("sub.login.example") is None
    assert proxy_for("notlogin.example") is not None
    monkeypatch.setenv("no_proxy", "*")
    assert proxy_for("oauth2.googleapis.com") is None
    monkeypatch.setenv("https_proxy", "socks5://proxy.corp.example:1080")
    monkeypatch.setenv("no_proxy", "")
    with pytest.raises(OAuth2Error, match=r"only http://HOST:PORT proxies are supported"):
        proxy_for("oauth2.googleapis.com")
