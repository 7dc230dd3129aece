"""``smtpconf check``: ``auth-mechanism-missing`` against real OAuth2-only and password-only
aiosmtpd providers, resolved through a real nsd. The probe reads the AUTH mechanisms after TLS and
never sends a credential; each relay is judged by its own login."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.idp import IdentityProvider
from tests.support.live import rules_by_key, run_check
from tests.support.nsd import NsdServer, zone_text
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER
from tests.support.smtpserver import Provider, TestCA

pytestmark = pytest.mark.integration

ZONE = "oauth.test"

# relay -> (server, login in the file, expected live rule ids)
EXPECTED: dict[str, tuple[str, str, list[str]]] = {
    "password-at-xoauth2": ("xoauth2", "password", ["auth-mechanism-missing"]),
    "xoauth2-at-xoauth2": ("xoauth2", "xoauth2", []),
    "oauthbearer-at-xoauth2": ("xoauth2", "oauthbearer", ["auth-mechanism-missing"]),
    "oauthbearer-at-oauthbearer": ("oauthbearer", "oauthbearer", []),
    "xoauth2-at-plain": ("plain", "xoauth2", ["auth-mechanism-missing"]),
    "password-at-plain": ("plain", "password", []),
    "xoauth2-at-no-auth": ("no-auth", "xoauth2", ["auth-not-offered"]),  # the other rule, not both
    "nothing-at-xoauth2": ("xoauth2", "none", []),
}


def _login(kind: str, idp: IdentityProvider) -> list[str]:
    if kind == "password":
        return ["    username: relayuser", "    password: {env: RELAY_PASSWORD}"]
    if kind == "none":
        return []
    return [f"    username: {OAUTH_USER}", "    auth: oauth2", "    oauth2:", f"      client_id: {CLIENT_ID}",
            "      refresh_token: {env: RELAY_REFRESH}", f"      token_url: {idp.token_url}",
            f"      mechanism: {kind}"]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, list[str]], Any, list[Provider]]]:
    tmp = tmp_path_factory.mktemp("oauth-probes")
    servers = sorted({server for server, _, _ in EXPECTED.values()})
    with contextlib.ExitStack() as stack:
        ca = TestCA(tmp / "ca")
        idp = stack.enter_context(IdentityProvider())

        def provider(server: str) -> Provider:
            name = f"{server}.{ZONE}"
            kwargs: dict[str, Any] = {"ssl_context": ca.issue([name]), "hostname": name}
            if server in ("xoauth2", "oauthbearer"):
                kwargs.update(oauth=idp, oauth_mechanisms=(server.upper(),))
            elif server == "plain":
                kwargs["users"] = {"relayuser": "relaypass"}
            return stack.enter_context(Provider("starttls", **kwargs))

        providers = {server: provider(server) for server in servers}
        dns = stack.enter_context(NsdServer({ZONE: zone_text(ZONE, [(s, "A", "127.0.0.1") for s in servers])}))
        lines = ["version: 1", "relays:"]
        for relay, (server, login, _) in EXPECTED.items():
            lines += [f"  {relay}:", f"    host: {server}.{ZONE}", f"    port: {providers[server].port}",
                      "    security: starttls", f"    ca_file: {ca.ca_pem_path}", *_login(login, idp)]
        text = "\n".join(lines) + "\n"
        config = tmp / "smtpconf.yaml"
        config.write_text(text)
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "5", "--no-dns")
        yield rules_by_key(text, run.findings), run, list(providers.values())


@pytest.mark.parametrize("relay", list(EXPECTED))
def test_each_login_gets_exactly_its_rule(relay: str, outcome: tuple[dict[str, list[str]], Any, Any]) -> None:
    by_relay, run, _ = outcome
    assert sorted(by_relay[relay]) == EXPECTED[relay][2], run.findings


def test_messages_name_what_the_server_offers(outcome: tuple[dict[str, list[str]], Any, Any]) -> None:
    _, run, _ = outcome
    messages = [f["message"] for f in run.findings if f["rule"] == "auth-mechanism-missing"]
    assert any("offers AUTH XOAUTH2 after TLS, neither PLAIN nor LOGIN" in m and "use auth: oauth2" in m
               for m in messages), messages
    assert any("plain.oauth.test" in m and "PLAIN" in m and "after TLS, not XOAUTH2" in m for m in messages), messages
    assert any("offers AUTH XOAUTH2 after TLS, not OAUTHBEARER" in m for m in messages), messages
    assert all(f["level"] == "error" for f in run.findings if f["rule"] == "auth-mechanism-missing")
    assert run.returncode == 1


def test_the_probe_sends_no_credential(outcome: tuple[dict[str, list[str]], Any, list[Provider]]) -> None:
    _, _, providers = outcome
    for provider in providers:
        assert list(provider.auth_attempts) == [] and list(provider.messages) == []
