"""Prove the OAuth2 stand-ins (tests/support/idp.py and the OAuth providers of smtpserver.py).

Clients are only the standard library (urllib/http.client, smtplib), and PKCE values are
computed here from the RFCs, so these tests check the servers' protocol, not our code.
"""

from __future__ import annotations

import base64
import email.message
import hashlib
import http.client
import json
import logging
import secrets
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.idp import DEVICE_GRANT, IdentityProvider, Request
from tests.support.oauth_fixtures import *  # noqa: F403  (fixtures: idp, *_provider, test_ca, ...)
from tests.support.oauth_fixtures import CLIENT_ID, OAUTH_USER, PROVIDER_CERT_NAMES, PROVIDER_HOSTNAME
from tests.support.smtpserver import AuthAttempt, Provider, TestCA, parse_oauthbearer, parse_xoauth2

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
MESSAGE = b"From: app@corp.example\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello oauth\r\n"
REDIRECT_URI = "http://127.0.0.1:8400/callback"
SCOPE = "https://outlook.office.com/SMTP.Send offline_access"
GOOGLE_535 = b"5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every server started in a test must be stopped (and its threads joined) by its end."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {leaked}"


# --------------------------------------------------------------------------------------------
# HTTP helpers (stdlib only)
# --------------------------------------------------------------------------------------------


class Reply:
    def __init__(self, status: int, headers: email.message.Message, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, err.headers, err.read())


def get(url: str) -> Reply:
    """GET without following redirects (we want to see the 302 itself)."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1/§4.2: a 64-character verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(idp: IdentityProvider, challenge: str, **extra: str) -> dict[str, str]:
    """Run GET /authorize and return the redirect's query parameters."""
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    reply = get(idp.authorize_url + "?" + urllib.parse.urlencode(params))
    assert reply.status == 302
    location = reply.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def refresh(idp: IdentityProvider, refresh_token: str, client_id: str = CLIENT_ID, **extra: str) -> Reply:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **extra}
    return post(idp.token_url, form)


def assert_oauth_error(reply: Reply, error: str, status: int = 400) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)


# --------------------------------------------------------------------------------------------
# Identity provider: authorization code + PKCE (RFC 6749 §4.1, RFC 7636)
# --------------------------------------------------------------------------------------------


def test_code_flow_with_pkce(idp: IdentityProvider) -> None:
    verifier, challenge = pkce_pair()
    params = authorize(idp, challenge, login_hint=OAUTH_USER)
    assert params["state"] == "st-123" and params["code"]

    reply = post(
        idp.token_url,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        },
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == SCOPE
    assert len(body["access_token"]) == 40
    assert set(body["access_token"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert idp.valid_access_token(body["access_token"]) == OAUTH_USER
    assert idp.refresh_token_valid(body["refresh_token"])

    # One use per code; and (RFC 6749 §4.1.2) a replayed code revokes what it produced.
    again = post(
        idp.token_url,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "code_verifier": verifier,
        },
    )
    assert_oauth_error(again, "invalid_grant")
    assert not idp.refresh_token_valid(body["refresh_token"])
    assert idp.token_grants() == ["authorization_code", "authorization_code"]


def test_code_flow_default_subject_and_redirect_without_state(idp: IdentityProvider) -> None:
    verifier, challenge = pkce_pair()
    query = urllib.parse.urlencode(
        {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "code_challenge": challenge,
         "code_challenge_method": "S256"}
    )
    reply = get(f"{idp.authorize_url}?{query}")
    assert reply.status == 302
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(reply.headers["Location"]).query))
    assert set(params) == {"code"}
    token = post(
        idp.token_url,
        {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI,
         "client_id": CLIENT_ID, "code_verifier": verifier},
    ).json()["access_token"]
    assert idp.valid_access_token(token) == "user@example.test"


def test_code_flow_wrong_verifier_redirect_or_client_is_invalid_grant(idp: IdentityProvider) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(idp, challenge)["code"]
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": CLIENT_ID}
    other_verifier, _ = pkce_pair()
    assert_oauth_error(post(idp.token_url, {**base, "code_verifier": other_verifier}), "invalid_grant")
    assert_oauth_error(post(idp.token_url, {**base, "code_verifier": "too-short"}), "invalid_grant")
    assert_oauth_error(
        post(idp.token_url, {**base, "code_verifier": verifier, "redirect_uri": REDIRECT_URI + "x"}), "invalid_grant"
    )
    assert_oauth_error(post(idp.token_url, {**base, "code_verifier": verifier, "client_id": "other"}), "invalid_grant")
    assert_oauth_error(post(idp.token_url, {**base, "code_verifier": verifier, "code": "nope"}), "invalid_grant")
    # Failed attempts do not use the code up.
    assert post(idp.token_url, {**base, "code_verifier": verifier}).status == 200


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": None},
        {"response_type": "token"},
        {"code_challenge": None},
        {"redirect_uri": None},
        {"code_challenge_method": "S512"},
    ],
)
def test_authorize_rejects_bad_requests_with_400_text(idp: IdentityProvider, change: dict[str, str | None]) -> None:
    _, challenge = pkce_pair()
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **change,
    }
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    reply = get(f"{idp.authorize_url}?{query}")
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "Location" not in reply.headers


# --------------------------------------------------------------------------------------------
# Identity provider: refresh tokens (RFC 6749 §6), revocation, expiry
# --------------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_token_dies_at_once(idp: IdentityProvider) -> None:
    old = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER, scope=SCOPE)
    reply = refresh(idp, old)
    assert reply.status == 200
    body = reply.json()
    new = body["refresh_token"]
    assert new != old and body["scope"] == SCOPE
    assert idp.valid_access_token(body["access_token"]) == OAUTH_USER
    assert not idp.refresh_token_valid(old) and idp.refresh_token_valid(new)

    assert_oauth_error(refresh(idp, old), "invalid_grant")  # right after: no grace period
    newer = refresh(idp, new, scope="https://outlook.office.com/SMTP.Send").json()
    assert newer["scope"] == "https://outlook.office.com/SMTP.Send"
    assert idp.token_grants() == ["refresh_token"] * 3


def test_refresh_without_rotation_keeps_the_token(idp: IdentityProvider) -> None:
    idp.rotate = False
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    for _ in range(2):
        body = refresh(idp, token).json()
        assert "refresh_token" not in body and body["access_token"]
    assert idp.refresh_token_valid(token)


def test_refresh_token_is_bound_to_its_client(idp: IdentityProvider) -> None:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    assert_oauth_error(refresh(idp, token, client_id="another-client"), "invalid_grant")
    assert_oauth_error(refresh(idp, "never-issued"), "invalid_grant")
    assert refresh(idp, token).status == 200  # an unknown client_id is no error by itself


def test_revoked_refresh_token_is_refused(idp: IdentityProvider) -> None:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    access = refresh(idp, token).json()
    idp.revoke(access["refresh_token"])
    assert not idp.refresh_token_valid(access["refresh_token"])
    assert_oauth_error(refresh(idp, access["refresh_token"]), "invalid_grant")
    # Access tokens already issued live on (Microsoft-style JWTs) unless asked otherwise.
    assert idp.valid_access_token(access["access_token"]) == OAUTH_USER
    token2 = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    at2 = refresh(idp, token2).json()
    idp.revoke(at2["refresh_token"], access_tokens=True)
    assert idp.valid_access_token(at2["access_token"]) is None
    idp.revoke("never-issued")  # ignored


def test_access_tokens_expire(idp: IdentityProvider) -> None:
    idp.access_ttl = 0.5
    body = refresh(idp, idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)).json()
    assert body["expires_in"] == 1  # ceil(0.5): RFC 6749 wants an integer
    assert idp.valid_access_token(body["access_token"]) == OAUTH_USER
    time.sleep(1.0)
    assert idp.valid_access_token(body["access_token"]) is None
    assert idp.valid_access_token("not-a-token") is None


def test_token_length_knob(idp: IdentityProvider) -> None:
    idp.token_length = 2000
    body = refresh(idp, idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)).json()
    assert len(body["access_token"]) == 2000


# --------------------------------------------------------------------------------------------
# Identity provider: device authorization grant (RFC 8628)
# --------------------------------------------------------------------------------------------


def test_device_flow_pending_then_success(idp: IdentityProvider) -> None:
    reply = post(idp.device_url, {"client_id": CLIENT_ID, "scope": SCOPE})
    assert reply.status == 200
    device = reply.json()
    assert set(device) >= {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
    assert device["verification_uri"] == idp.verification_uri
    assert device["expires_in"] == 600 and device["interval"] == 1
    assert get(device["verification_uri"]).status == 200

    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": CLIENT_ID}
    assert_oauth_error(post(idp.token_url, poll), "authorization_pending")
    reply = post(idp.token_url, poll)
    assert reply.status == 200
    body = reply.json()
    assert body["scope"] == SCOPE and idp.refresh_token_valid(body["refresh_token"])
    assert idp.valid_access_token(body["access_token"]) == "user@example.test"
    assert_oauth_error(post(idp.token_url, poll), "invalid_grant")  # used
    assert_oauth_error(post(idp.token_url, {**poll, "device_code": "unknown"}), "invalid_grant")
    assert idp.token_grants() == [DEVICE_GRANT] * 4


def test_device_flow_interval_and_expiry(idp: IdentityProvider) -> None:
    idp.device_interval = 0
    idp.device_expires_in = 0.2
    device = post(idp.device_url, {"client_id": CLIENT_ID}).json()
    assert device["interval"] == 0
    time.sleep(0.4)
    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"], "client_id": CLIENT_ID}
    assert_oauth_error(post(idp.token_url, poll), "expired_token")
    assert_oauth_error(post(idp.device_url, {}), "invalid_request")


# --------------------------------------------------------------------------------------------
# Identity provider: errors, client authentication, knobs
# --------------------------------------------------------------------------------------------


def test_token_endpoint_errors(idp: IdentityProvider) -> None:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    assert_oauth_error(post(idp.token_url, {"refresh_token": token, "client_id": CLIENT_ID}), "invalid_request")
    assert_oauth_error(post(idp.token_url, {"grant_type": "refresh_token", "client_id": CLIENT_ID}), "invalid_request")
    assert_oauth_error(post(idp.token_url, {"grant_type": "refresh_token", "refresh_token": token}), "invalid_request")
    assert_oauth_error(post(idp.token_url, {"grant_type": "password", "client_id": CLIENT_ID}), "unsupported_grant_type")
    # Not form-encoded.
    req = urllib.request.Request(idp.token_url, data=b"{}", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=TIMEOUT)
    assert err.value.code == 400 and json.loads(err.value.read())["error"] == "invalid_request"
    err.value.close()
    assert idp.refresh_token_valid(token)  # nothing above consumed it


def test_client_secret_is_enforced() -> None:
    with IdentityProvider(client_secret="s3cret") as idp:
        token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
        for extra in ({}, {"client_secret": "wrong"}):
            reply = refresh(idp, token, **extra)
            assert_oauth_error(reply, "invalid_client", status=401)
            assert reply.headers["WWW-Authenticate"].startswith("Basic")
        assert idp.refresh_token_valid(token)
        body = refresh(idp, token, client_secret="s3cret").json()
        # RFC 6749 §2.3.1 HTTP Basic: form-urlencoded id and secret.
        basic = base64.b64encode(f"{CLIENT_ID}:s3cret".encode()).decode()
        reply = post(
            idp.token_url,
            {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert reply.status == 200, reply.body
        bad = base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
        reply = post(
            idp.token_url,
            {"grant_type": "refresh_token", "refresh_token": reply.json()["refresh_token"]},
            headers={"Authorization": f"Basic {bad}"},
        )
        assert_oauth_error(reply, "invalid_client", status=401)


@pytest.mark.parametrize(
    ("garbage", "content_type"), [("html", "text/html; charset=utf-8"), ("junk", "application/json")]
)
def test_garbage_knob(idp: IdentityProvider, garbage: str, content_type: str) -> None:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    idp.garbage = garbage  # type: ignore[assignment]
    reply = refresh(idp, token)
    assert reply.status == 200 and reply.headers["Content-Type"] == content_type
    with pytest.raises(ValueError):
        json.loads(reply.body)
    assert idp.refresh_token_valid(token)  # the grant was not processed
    idp.garbage = None
    assert refresh(idp, token).status == 200


def test_delay_knob(idp: IdentityProvider) -> None:
    idp.delay = 0.6
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    started = time.monotonic()
    assert refresh(idp, token).status == 200
    assert time.monotonic() - started >= 0.55


def test_stop_interrupts_a_delayed_request() -> None:
    idp = IdentityProvider().start()
    idp.delay = 30.0
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            refresh(idp, token)
        except Exception as exc:  # the server hangs up: that is the point
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    idp.requests.wait_for(1)
    started = time.monotonic()
    idp.stop()
    thread.join(TIMEOUT)
    assert time.monotonic() - started < 3.0 and not thread.is_alive()
    assert errors


def test_requests_are_recorded_and_nothing_is_logged(
    idp: IdentityProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    token = idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)
    body = refresh(idp, token).json()
    get(idp.base_url + "/nothing-here")
    assert idp.requests[0] == Request(
        "POST", "/token", {"grant_type": "refresh_token", "refresh_token": token, "client_id": CLIENT_ID}
    )
    assert idp.requests[1] == ("GET", "/nothing-here", {})
    out, err = capfd.readouterr()
    assert token not in out + err and body["access_token"] not in out + err
    assert err == ""


def test_openid_configuration(idp: IdentityProvider) -> None:
    doc = get(idp.openid_configuration_url).json()
    assert doc["token_endpoint"] == idp.token_url
    assert doc["device_authorization_endpoint"] == idp.device_url
    assert idp.base_url.startswith("http://127.0.0.1:")


# --------------------------------------------------------------------------------------------
# SMTP: XOAUTH2
# --------------------------------------------------------------------------------------------


def xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(authzid: str | None, token: str, port: int = 587) -> str:
    gs2 = "n,a=" + authzid.replace("=", "=3D").replace(",", "=2C") + "," if authzid is not None else "n,,"
    return f"{gs2}\x01host={PROVIDER_HOSTNAME}\x01port={port}\x01auth=Bearer {token}\x01\x01"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def starttls_session(provider: Provider, ctx: ssl.SSLContext) -> smtplib.SMTP:
    smtp = smtplib.SMTP(provider.host, provider.port, timeout=TIMEOUT)
    smtp.ehlo("client.test")
    smtp.starttls(context=ctx)
    smtp.ehlo("client.test")
    return smtp


def test_xoauth2_with_an_idp_token_delivers(
    xoauth2_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    p = xoauth2_provider
    # The real way: a refresh grant at the token endpoint.
    access = refresh(idp, idp.issue_refresh_token(CLIENT_ID, OAUTH_USER)).json()["access_token"]
    with smtplib.SMTP(p.host, p.port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.test")
        assert "auth" not in smtp.esmtp_features and "starttls" in smtp.esmtp_features
        smtp.starttls(context=client_tls_context)
        smtp.ehlo("client.test")
        assert smtp.esmtp_features["auth"].split() == ["XOAUTH2"]
        code, _ = smtp.mail("a@example.test")
        assert code == 530  # AUTH before MAIL
        smtp.rset()
        # smtplib sends the initial response on the AUTH line, like msmtp.
        code, text = smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(OAUTH_USER, access))
        assert code == 235
        smtp.sendmail(OAUTH_USER, ["b@example.test"], MESSAGE)
    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert p.received[0].auth_user == OAUTH_USER and msg.tls is True and msg.data == MESSAGE
    assert p.auth_attempts == [AuthAttempt(OAUTH_USER, True)]


def test_xoauth2_without_initial_response(
    xoauth2_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        assert smtp.docmd("AUTH", "XOAUTH2") == (334, b"")  # empty challenge: "334 "
        assert smtp.docmd(b64(xoauth2(OAUTH_USER, access)))[0] == 235


def test_xoauth2_wrong_token_gets_gmail_json_then_535(
    xoauth2_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    p = xoauth2_provider
    with starttls_session(p, client_tls_context) as smtp:
        code, challenge = smtp.docmd("AUTH", "XOAUTH2 " + b64(xoauth2(OAUTH_USER, "forged-token")))
        assert code == 334
        assert json.loads(base64.b64decode(challenge)) == {
            "status": "401",
            "schemes": "bearer",
            "scope": "https://mail.google.com/",
        }
        assert smtp.docmd("") == (535, GOOGLE_535)  # the client's empty reply
        # smtplib's own flow: the authobject answers the challenge with "".
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(OAUTH_USER, "forged") if challenge is None else "")
        assert err.value.smtp_code == 535
        # A valid token for someone else is no better.
        other = idp.issue_access_token(CLIENT_ID, "someone@corp.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(OAUTH_USER, other) if challenge is None else "")
        assert smtp.mail("a@example.test")[0] == 530
    assert p.auth_attempts == [(OAUTH_USER, False)] * 3
    assert len(p.messages) == 0


def test_xoauth2_expired_token_is_refused(
    xoauth2_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    idp.access_ttl = 0.3
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    time.sleep(0.5)
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(OAUTH_USER, access) if challenge is None else "")


def test_xoauth2_microsoft_error_style(
    xoauth2_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    xoauth2_provider.oauth_error_style = "microsoft"
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        code, text = smtp.docmd("AUTH", "XOAUTH2 " + b64(xoauth2(OAUTH_USER, "forged")))
        assert (code, text) == (535, b"5.7.3 Authentication unsuccessful [SN4PR0601CA0001.namprd06.prod.outlook.com]")


def test_xoauth2_malformed_message_and_abort(
    xoauth2_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        assert smtp.docmd("AUTH", "XOAUTH2 " + b64("user=x\x01pass=y\x01\x01"))[0] == 501
        assert smtp.docmd("AUTH", "XOAUTH2 not*base64")[0] == 501
        assert smtp.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert smtp.docmd("*")[0] == 501  # RFC 4954 §4: the client cancels
        assert smtp.noop()[0] == 250
    assert xoauth2_provider.auth_attempts == [("", False)]


def test_xoauth2_accepts_microsoft_sized_tokens(
    xoauth2_tls_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    idp.token_length = 3000  # AUTH line ~4 KB: beyond SMTP's 512, within RFC 4954's 12288
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    p = xoauth2_tls_provider
    with smtplib.SMTP_SSL(p.host, p.port, timeout=TIMEOUT, context=client_tls_context) as smtp:
        smtp.ehlo("client.test")
        assert smtp.esmtp_features["auth"].split() == ["XOAUTH2"]
        assert smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(OAUTH_USER, access))[0] == 235
        smtp.sendmail(OAUTH_USER, ["b@example.test"], MESSAGE)
        # Other commands keep SMTP's limits.
        assert smtp.docmd("NOOP", "x" * 600)[0] == 500
    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert msg.auth_user == OAUTH_USER and msg.tls is True


def test_passwords_are_refused_and_not_advertised(
    xoauth2_provider: Provider, client_tls_context: ssl.SSLContext
) -> None:
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        assert smtp.esmtp_features["auth"].split() == ["XOAUTH2"]
        for mechanism in ("PLAIN " + b64("\0app@corp.example\0password"), "LOGIN", "OAUTHBEARER"):
            assert smtp.docmd("AUTH", mechanism) == (504, b"5.5.4 Unrecognized authentication type")
        with pytest.raises(smtplib.SMTPException):
            smtp.login(OAUTH_USER, "password")  # smtplib finds no mechanism it can use
    assert len(xoauth2_provider.auth_attempts) == 0


def test_tokens_are_not_logged(
    xoauth2_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    caplog.set_level(logging.DEBUG)
    with starttls_session(xoauth2_provider, client_tls_context) as smtp:
        smtp.docmd("AUTH", "XOAUTH2 " + b64(xoauth2(OAUTH_USER, "forged-secret-token")))
        smtp.docmd("")
        smtp.docmd("AUTH", "XOAUTH2")
        smtp.docmd(b64(xoauth2(OAUTH_USER, access)))
    text = caplog.text
    for secret in (access, "forged-secret-token", b64(xoauth2(OAUTH_USER, access))):
        assert secret not in text


# --------------------------------------------------------------------------------------------
# SMTP: OAUTHBEARER (RFC 7628)
# --------------------------------------------------------------------------------------------


def test_oauthbearer_delivers(
    oauthbearer_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    p = oauthbearer_provider
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    with starttls_session(p, client_tls_context) as smtp:
        assert smtp.esmtp_features["auth"].split() == ["OAUTHBEARER"]
        assert smtp.docmd("AUTH", "XOAUTH2 " + b64(xoauth2(OAUTH_USER, access)))[0] == 504
        assert smtp.auth("OAUTHBEARER", lambda challenge=None: oauthbearer(OAUTH_USER, access, p.port))[0] == 235
        smtp.sendmail(OAUTH_USER, ["b@example.test"], MESSAGE)
    [msg] = p.wait_for_messages(1, timeout=TIMEOUT)
    assert msg.auth_user == OAUTH_USER
    assert p.auth_attempts == [(OAUTH_USER, True)]


def test_oauthbearer_without_authzid_and_without_initial_response(
    oauthbearer_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    p = oauthbearer_provider
    access = idp.issue_access_token(CLIENT_ID, OAUTH_USER)
    with starttls_session(p, client_tls_context) as smtp:
        assert smtp.docmd("AUTH", "OAUTHBEARER") == (334, b"")
        assert smtp.docmd(b64(oauthbearer(None, access)))[0] == 235
        smtp.sendmail(OAUTH_USER, ["b@example.test"], MESSAGE)
    assert p.wait_for_messages(1)[0].auth_user == OAUTH_USER  # the token's subject


def test_oauthbearer_failure_follows_rfc7628(
    oauthbearer_provider: Provider, idp: IdentityProvider, client_tls_context: ssl.SSLContext
) -> None:
    p = oauthbearer_provider
    with starttls_session(p, client_tls_context) as smtp:
        code, challenge = smtp.docmd("AUTH", "OAUTHBEARER " + b64(oauthbearer(OAUTH_USER, "forged")))
        assert code == 334
        error = json.loads(base64.b64decode(challenge))
        assert error["status"] == "invalid_token"
        assert error["scope"] and error["openid-configuration"] == idp.openid_configuration_url
        assert smtp.docmd("AQ==") == (535, b"5.7.8 Authentication credentials invalid")
        # smtplib's flow, with the %x01 reply from the authobject.
        other = idp.issue_access_token(CLIENT_ID, "someone@corp.example")
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.auth(
                "OAUTHBEARER",
                lambda challenge=None: oauthbearer(OAUTH_USER, other) if challenge is None else "\x01",
            )
        assert err.value.smtp_code == 535
        assert smtp.mail("a@example.test")[0] == 530
    assert p.auth_attempts == [(OAUTH_USER, False), (OAUTH_USER, False)]


def test_oauthbearer_authzid_escapes(idp: IdentityProvider, test_ca: TestCA, client_tls_context: ssl.SSLContext) -> None:
    subject = "odd,user=x@corp.example"
    access = idp.issue_access_token(CLIENT_ID, subject)
    with Provider(
        "starttls", oauth=idp, oauth_mechanisms=["OAUTHBEARER", "XOAUTH2"],
        ssl_context=test_ca.issue(PROVIDER_CERT_NAMES), hostname=PROVIDER_HOSTNAME,
    ) as p:
        with starttls_session(p, client_tls_context) as smtp:
            assert sorted(smtp.esmtp_features["auth"].split()) == ["OAUTHBEARER", "XOAUTH2"]
            message = oauthbearer(subject, access)
            assert "a=odd=2Cuser=3Dx@corp.example," in message
            assert smtp.auth("OAUTHBEARER", lambda challenge=None: message)[0] == 235
            smtp.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert p.wait_for_messages(1)[0].auth_user == subject


def test_sasl_parsers() -> None:
    assert parse_xoauth2(xoauth2("u@x", "tok").encode()) == ("u@x", "tok")
    assert parse_xoauth2(b"user=u@x\x01auth=Basic abc\x01\x01") is None
    assert parse_xoauth2(b"user=u@x\x01auth=Bearer tok\x01") is None
    msg = parse_oauthbearer(oauthbearer("u@x", "tok==", 465).encode())
    assert msg is not None and (msg.authzid, msg.token, msg.fields["port"]) == ("u@x", "tok==", "465")
    assert parse_oauthbearer(b"\x01") is None  # the failure acknowledgement is no login
    assert parse_oauthbearer(b"p=tls-unique,,\x01auth=Bearer t\x01\x01") is None  # no channel binding
    assert parse_oauthbearer(b"n,a=bad=escape,\x01auth=Bearer t\x01\x01") is None


def test_oauth_provider_argument_checks(idp: IdentityProvider, test_ca: TestCA) -> None:
    with pytest.raises(ValueError):
        Provider("tls", ca=test_ca, oauth=idp, users={"u": "p"})
    with pytest.raises(ValueError):
        Provider("tls", ca=test_ca, oauth=idp, oauth_mechanisms=["PLAIN"])
    with pytest.raises(ValueError):
        Provider("tls", ca=test_ca, oauth=idp, oauth_mechanisms=[])
