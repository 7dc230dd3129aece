"""The real ``smtpconf oauth2 login`` and ``smtpconf oauth2 token`` processes against the loopback
identity provider: a browser login (the test plays the browser with urllib, following the
provider's redirect to smtpconf's loopback listener), a device login, tokens the provider
validates, the cache, refresh, rotation, and every failure as one clear line with no token or
secret in it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.idp import IdentityProvider
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER, idp  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "GOCSPX-client-secret-CANARY"
WHO = ("--account", OAUTH_USER)


def smtpconf_argv() -> list[str]:
    script = Path(sys.executable).parent / "smtpconf"  # the console script msmtp would run
    return [str(script)] if script.exists() else [sys.executable, "-m", "smtpconf"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


def run(tmp_path: Path, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*smtpconf_argv(), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env_for(tmp_path, **extra))


def write_config(tmp_path: Path, idp: IdentityProvider, *, provider: str = "office365",
                 refresh: str = "{file: refresh.token}", client_id: str | None = CLIENT_ID, extra: str = "",
                 device: bool = True) -> Path:
    lines = ["version: 1", "accounts:", f"  - email: {OAUTH_USER}", f"    provider: {provider}", "    auth: oauth2",
             "    oauth2:"]
    lines += [f"      client_id: {client_id}"] if client_id else []
    lines += [f"      refresh_token: {refresh}", f"      token_url: '{idp.token_url}'",
              f"      authorize_url: '{idp.authorize_url}'"]
    lines += [f"      device_url: '{idp.device_url}'"] if device else []
    path = tmp_path / "smtpconf.yaml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def seed(tmp_path: Path, idp: IdentityProvider) -> tuple[Path, str]:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    path = tmp_path / "refresh.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path, token


def token(tmp_path: Path, config: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(tmp_path, "oauth2", "token", str(config), *WHO, *extra, **env)


def no_secrets(done: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in done.stderr and secret not in done.stdout


def test_browser_login_with_pkce_and_a_loopback_redirect(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp)
    process = subprocess.Popen([*smtpconf_argv(), "oauth2", "login", str(config), *WHO, "--timeout", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                               env=env_for(tmp_path))
    assert process.stderr is not None
    seen: list[str] = []
    try:
        url = None
        while url is None:
            line = process.stderr.readline()
            assert line, f"login ended before printing a URL: {''.join(seen)}"
            seen.append(line)
            if line.strip().startswith(idp.authorize_url):
                url = line.strip()
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["code_challenge_method"] == "S256" and query["login_hint"] == OAUTH_USER
        # The model's scopes: offline_access for a refresh token, IMAP's because the account reads mail.
        assert query["scope"] == ("https://outlook.office.com/SMTP.Send offline_access "
                                  "https://outlook.office.com/IMAP.AccessAsUser.All")
        redirect = urlsplit(query["redirect_uri"])
        assert (redirect.scheme, redirect.hostname, redirect.path) == ("http", "127.0.0.1", "/")

        # A forged answer (another state) is refused and the login keeps waiting.
        with pytest.raises(urllib.error.HTTPError) as forged:
            _get(f"{query['redirect_uri']}?code=forged&state=not-the-state")
        assert forged.value.code == 400

        page = _get(url)  # the IdP approves at once and redirects the "browser" to smtpconf
        assert "You can close this window" in page
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    stderr = "".join(seen) + err
    assert process.returncode == 0, stderr
    refresh = (tmp_path / "refresh.token").read_text().strip()
    assert idp.refresh_token_valid(refresh)
    assert stat.S_IMODE((tmp_path / "refresh.token").stat().st_mode) == 0o600
    assert refresh not in stderr and refresh not in out
    assert idp.token_grants() == ["authorization_code"]
    (exchange,) = [r for r in idp.requests if r.path == "/token"]
    assert exchange.form["redirect_uri"] == query["redirect_uri"] and "code_verifier" in exchange.form

    # The login seeded the cache: the first token call asks the IdP nothing.
    requests = len(idp.requests)
    done = token(tmp_path, config)
    assert done.returncode == 0, done.stderr
    assert idp.valid_access_token(done.stdout.strip()) == OAUTH_USER
    assert len(idp.requests) == requests


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as reply:
        return str(reply.read().decode())


def test_device_login(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp, refresh="{file: tokens/o365.refresh}")
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert f"open {idp.verification_uri} on any device and enter the code " in done.stderr
    path = tmp_path / "tokens" / "o365.refresh"
    refresh = path.read_text().strip()
    assert idp.refresh_token_valid(refresh)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    no_secrets(done, refresh)
    assert idp.token_grants() == ["urn:ietf:params:oauth:grant-type:device_code"] * 2  # pending, then approved
    (asked,) = [r for r in idp.requests if r.path == "/devicecode"]
    assert asked.form["login_hint"] == OAUTH_USER and "offline_access" in asked.form["scope"]


def test_device_login_where_the_provider_has_none_is_a_clear_error(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp, provider="gmail", device=False)
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device")
    assert done.returncode == 2
    assert "has no device flow (Google allows none for mail scopes" in done.stderr
    assert "Traceback" not in done.stderr and idp.requests == []


def test_login_writes_to_out_when_the_refresh_token_is_not_a_file(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp, refresh="{env: O365_REFRESH}")
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device")
    assert done.returncode == 2 and "give --out PATH" in done.stderr and idp.requests == []
    out = tmp_path / "out.token"
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert idp.refresh_token_valid(out.read_text().strip()) and stat.S_IMODE(out.stat().st_mode) == 0o600
    # The configured env token is another value: the token command refreshes with it.
    done = token(tmp_path, config, O365_REFRESH=out.read_text().strip())
    assert done.returncode == 0 and idp.valid_access_token(done.stdout.strip()) == OAUTH_USER


def test_token_prints_one_line_and_the_second_call_asks_nobody(tmp_path: Path, idp: IdentityProvider) -> None:
    seed(tmp_path, idp)
    config = write_config(tmp_path, idp)
    done = token(tmp_path, config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.endswith("\n") and done.stderr == ""
    assert idp.valid_access_token(done.stdout[:-1]) == OAUTH_USER
    requests = len(idp.requests)
    again = token(tmp_path, config)
    assert again.returncode == 0 and again.stdout == done.stdout
    assert len(idp.requests) == requests
    # The same after an edit that changes nothing about the login (the full path, still cached).
    config.write_text(config.read_text() + "# a comment\n")
    edited = token(tmp_path, config)
    assert edited.stdout == done.stdout and len(idp.requests) == requests
    config.write_text(config.read_text() + "# another\n")
    assert token(tmp_path, config).stdout == done.stdout
    # One access-token entry and one index entry for this file and login, however often it changes.
    assert len(list((tmp_path / "cache" / "smtpconf" / "oauth2").glob("*.json"))) == 2


def test_relay_login_and_an_account_using_it(tmp_path: Path, idp: IdentityProvider) -> None:
    seed(tmp_path, idp)
    config = tmp_path / "smtpconf.yaml"
    config.write_text(
        "version: 1\nrelays:\n  o365:\n    provider: office365\n    username: app@corp.example\n"
        f"    oauth2: {{client_id: {CLIENT_ID}, refresh_token: {{file: refresh.token}},\n"
        f"             token_url: '{idp.token_url}'}}\n"
        "accounts:\n  - {email: dev@corp.example, relay: o365}\n")
    by_relay = run(tmp_path, "oauth2", "token", str(config), "--relay", "o365")
    by_account = run(tmp_path, "oauth2", "token", str(config), "--account", "dev@corp.example")
    assert by_relay.returncode == 0 and by_relay.stdout == by_account.stdout
    assert idp.token_grants() == ["refresh_token"]


def test_expiry_then_refresh_and_rotation_written_back(tmp_path: Path, idp: IdentityProvider) -> None:
    path, old = seed(tmp_path, idp)
    config = write_config(tmp_path, idp)
    idp.access_ttl = 1.0
    first = token(tmp_path, config)
    assert first.returncode == 0, first.stderr
    rotated = path.read_text().strip()
    assert rotated != old and not idp.refresh_token_valid(old) and idp.refresh_token_valid(rotated)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    time.sleep(1.2)
    second = token(tmp_path, config)
    assert second.returncode == 0 and second.stdout != first.stdout
    assert idp.valid_access_token(second.stdout.strip()) == OAUTH_USER
    assert idp.token_grants() == ["refresh_token", "refresh_token"]
    assert not idp.refresh_token_valid(rotated) and idp.refresh_token_valid(path.read_text().strip())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "refresh.token", "smtpconf.yaml"]


def test_invalid_grant_is_exit_1_with_the_login_command(tmp_path: Path, idp: IdentityProvider) -> None:
    path, refresh = seed(tmp_path, idp)
    idp.revoke(refresh)
    before = path.read_bytes(), path.stat().st_mtime_ns
    config = write_config(tmp_path, idp)
    done = token(tmp_path, config)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("smtpconf: error: the identity provider refused the refresh token (invalid_grant:")
    assert f"run: smtpconf oauth2 login {config} --account {OAUTH_USER}" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    no_secrets(done, refresh)


def test_a_slow_endpoint_is_bounded_by_timeout(tmp_path: Path, idp: IdentityProvider) -> None:
    _, refresh = seed(tmp_path, idp)
    idp.delay = 30
    started = time.monotonic()
    done = token(tmp_path, write_config(tmp_path, idp), "--timeout", "1")
    assert time.monotonic() - started < 20
    assert done.returncode == 2 and done.stdout == ""
    assert "did not answer within 1s (--timeout)" in done.stderr
    no_secrets(done, refresh)


@pytest.mark.parametrize("garbage", ["html", "junk"])
def test_html_or_junk_from_the_token_endpoint(tmp_path: Path, idp: IdentityProvider, garbage: str) -> None:
    path, refresh = seed(tmp_path, idp)
    idp.garbage = garbage  # type: ignore[assignment]
    done = token(tmp_path, write_config(tmp_path, idp))
    assert done.returncode == 2 and done.stdout == ""
    assert ("text/html (HTTP 200), not JSON" if garbage == "html" else "not a JSON object") in done.stderr
    assert "is token_url right?" in done.stderr
    assert path.read_text().strip() == refresh
    no_secrets(done, refresh)


def test_a_wrong_client_secret_never_shows(tmp_path: Path, idp: IdentityProvider) -> None:
    idp.client_secret = "the-real-one"
    _, refresh = seed(tmp_path, idp)
    config = write_config(tmp_path, idp, extra="")
    config.write_text(config.read_text().replace("      token_url", "      client_secret: {env: CS}\n      token_url"))
    done = token(tmp_path, config, CS=SECRET)
    assert done.returncode == 2 and "invalid_client" in done.stderr
    no_secrets(done, refresh, SECRET)


def test_missing_client_id_or_a_broken_login_is_refused_before_any_request(tmp_path: Path,
                                                                          idp: IdentityProvider) -> None:
    seed(tmp_path, idp)
    done = token(tmp_path, write_config(tmp_path, idp, client_id=None))
    assert done.returncode == 2 and done.stdout == ""
    assert "[oauth2-incomplete]" in done.stderr and "client_id" in done.stderr
    assert "this login has errors" in done.stderr

    inline = "1//0gINLINE-refresh-CANARY"
    done = token(tmp_path, write_config(tmp_path, idp, refresh=inline))
    assert done.returncode == 2 and "[inline-secret]" in done.stderr
    no_secrets(done, inline)

    (tmp_path / "smtpconf.yaml").write_text("version: 1\naccounts: [{email: 1}]\n")
    done = token(tmp_path, tmp_path / "smtpconf.yaml")
    assert done.returncode == 2 and "[schema]" in done.stderr and "no token" in done.stderr
    assert idp.requests == []


def test_usage_errors(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp)
    for args, expected in [
        (("--account", "nobody@corp.example"), "no account 'nobody@corp.example'"),
        (("--relay", "none"), "no relay 'none'"),
        ((*WHO, "--timeout", "0"), "positive, finite"),
        ((*WHO, "--timeout", "inf"), "positive, finite"),
    ]:
        done = run(tmp_path, "oauth2", "token", str(config), *args)
        assert done.returncode == 2 and expected in done.stderr, done.stderr


def test_providers_show_the_identity_provider(tmp_path: Path) -> None:
    import json

    done = run(tmp_path, "providers", "--format", "json")
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["gmail"]["oauth2"]["device_flow"] is False
    assert data["office365"]["oauth2"]["device_flow"] is True
    assert data["outlook"]["oauth2"]["scopes"] == ["https://outlook.office.com/SMTP.Send", "offline_access"]
    assert data["163"]["oauth2"] is None
    text = run(tmp_path, "providers").stdout
    assert "oauth2:   xoauth2 via accounts.google.com; device flow: no" in text


def imported_by_token(tmp_path: Path, config: Path) -> set[str]:
    code = ("import sys\nfrom smtpconf.cli import main\n"
            f"rc = main(['oauth2', 'token', {str(config)!r}, '--account', {OAUTH_USER!r}])\n"
            "print(rc, ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env_for(tmp_path))
    rc, modules = done.stderr.strip().splitlines()[-1].split(" ", 1)
    assert rc == "0", done.stderr
    return set(modules.split())


def test_a_cached_token_imports_nothing_heavy(tmp_path: Path, idp: IdentityProvider) -> None:
    seed(tmp_path, idp)
    config = write_config(tmp_path, idp)
    assert token(tmp_path, config).returncode == 0  # refreshed once; now cached
    heavy = {"jinja2", "dns", "dns.resolver", "jsonschema", "http.client", "urllib.request", "ssl", "hashlib",
             "tempfile", "smtpconf.oauth2.http", "smtpconf.render", "smtpconf.probe"}
    short = imported_by_token(tmp_path, config)
    assert not short & (heavy | {"yaml", "smtpconf.model", "smtpconf.load"})
    os.utime(config)  # the full path: the file is read again, still no network code
    full = imported_by_token(tmp_path, config)
    assert "smtpconf.model" in full and not full & heavy
    assert idp.token_grants() == ["refresh_token"]


def test_a_login_with_no_refresh_token_yet_writes_to_out(tmp_path: Path, idp: IdentityProvider) -> None:
    config = write_config(tmp_path, idp)
    config.write_text(config.read_text().replace("      refresh_token: {file: refresh.token}\n", ""))
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device")
    assert done.returncode == 2 and "has no refresh_token yet: give --out PATH" in done.stderr
    out = tmp_path / "new.token"
    done = run(tmp_path, "oauth2", "login", str(config), *WHO, "--device", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert idp.refresh_token_valid(out.read_text().strip())
