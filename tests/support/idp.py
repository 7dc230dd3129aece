"""A loopback OAuth2 identity provider: the allowed stand-in for Microsoft's and Google's IdPs.

:class:`IdentityProvider` is a real HTTP server (stdlib ``http.server``, one thread per request)
on ``127.0.0.1`` and a port the kernel picks. It speaks the wire protocol of:

* RFC 6749 (OAuth 2.0): the authorization endpoint (§4.1.1, code flow only), the token endpoint
  (§3.2) with the ``authorization_code`` (§4.1.3) and ``refresh_token`` (§6) grants, client
  authentication by ``client_secret`` in the form or HTTP Basic (§2.3.1), JSON success (§5.1)
  and error (§5.2) answers with ``Cache-Control: no-store``.
* RFC 7636 (PKCE): ``/authorize`` demands a ``code_challenge``; ``/token`` checks the
  ``code_verifier`` (S256: ``BASE64URL(SHA256(verifier))`` without padding, §4.2/§4.6).
* RFC 8628 (device authorization grant): ``/devicecode`` (§3.1/§3.2) and polling ``/token``
  with ``urn:ietf:params:oauth:grant-type:device_code`` (§3.4/§3.5).
* RFC 7662 (token introspection): ``POST /introspect`` with ``token=...``, for a mail server
  that checks the bearer token a client presents (Dovecot's ``oauth2`` passdb with
  ``introspection_mode = post``). The protected resource authenticates by HTTP Basic with
  ``resource_id``/``resource_secret`` (§2.1 demands some authorization, against token
  scanning); the answer is ``{"active": false}`` for a token that is unknown, expired or revoked
  (§2.2), else ``active``, ``username`` and ``sub`` (the subject), ``client_id``, ``scope``,
  ``token_type`` and ``exp``.

It is deliberately strict where real providers are strict (one use per code, refresh tokens
bound to their client, rotation kills the old refresh token at once) and it approves every login
at once -- there is no user. Knobs (attributes, flip them at run time): ``delay``, ``garbage``,
``access_ttl``, ``token_length``, ``rotate``, ``client_secret``, ``device_interval``,
``device_expires_in``, ``default_subject``.

Nothing here writes tokens to stderr: ``log_message`` is silenced and error messages never
contain a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, quote, unquote_plus, urlencode, urlsplit

from tests.support.smtpserver import LOOPBACK, RecordList

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SUBJECT = "user@example.test"

# RFC 6749 §4.1.2 recommends that authorization codes live at most 10 minutes.
_CODE_TTL = 600.0
# RFC 7636 §4.1: code_verifier = 43*128unreserved.
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# RFC 8628 §6.1: user codes from a base-20 alphabet without vowels (no accidental words).
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_MAX_BODY = 1 << 20
_STOP_TIMEOUT = 10.0

Garbage = Literal["html", "junk"]


class Request(NamedTuple):
    """One HTTP request as the IdP received it.

    ``path`` is the URL path without the query string; ``form`` is the query string for GET and
    the ``application/x-www-form-urlencoded`` body for POST (the last value of a repeated key).
    """

    method: str
    path: str
    form: dict[str, str]


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer: ``error`` code, human description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass
class _RefreshGrant:
    client_id: str
    subject: str
    scope: str
    alive: bool = True
    origin: str | None = None  # the authorization code it was issued from, if any


@dataclass
class _Access:
    client_id: str
    subject: str
    scope: str
    expires_at: float  # time.monotonic()
    origin: str | None = None
    alive: bool = True


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    method: str
    subject: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    subject: str
    expires_at: float
    polls: int = 0
    used: bool = False


def _random_token(length: int) -> str:
    """``length`` random URL-safe characters (``[A-Za-z0-9_-]``)."""
    if length < 1:
        raise ValueError("token_length must be >= 1")
    return secrets.token_urlsafe(length)[:length]


def s256(verifier: str) -> str:
    """The RFC 7636 §4.2 S256 code challenge: BASE64URL(SHA256(ASCII(verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _user_code() -> str:
    chars = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


class IdentityProvider:
    """A loopback OAuth2 authorization server (see the module docstring for the protocol).

    Use it as a context manager or call :meth:`start`/:meth:`stop`. ``requests`` records every
    HTTP request (:class:`Request`); ``token_grants()`` lists the grant types POSTed to /token.

    Knobs (plain attributes, read on every request):

    * ``delay`` -- seconds to sleep before answering /token (a slow endpoint). ``stop()`` cuts
      the sleep short.
    * ``garbage`` -- ``None``, ``"html"`` (200 ``text/html`` login page, as a captive portal or
      a wrong URL gives) or ``"junk"`` (200 ``application/json`` that is not JSON). Applies to
      /token; the grant is then not processed at all (no code used up, nothing rotated).
    * ``access_ttl`` -- lifetime of new access tokens in seconds, may be fractional. The JSON
      ``expires_in`` is ``ceil(access_ttl)`` (an integer, as RFC 6749 §5.1 demands), but
      :meth:`valid_access_token` enforces the exact fractional lifetime.
    * ``token_length`` -- length of new access tokens (Microsoft's are well over 512).
    * ``rotate`` -- refresh-token rotation: a successful refresh returns a new refresh token and
      the old one is dead immediately (no grace period). ``False``: the answer has no
      ``refresh_token`` and the old one stays valid.
    * ``client_secret`` -- when set, every /token request must authenticate the client with it,
      in the form (``client_secret``) or by HTTP Basic (RFC 6749 §2.3.1); otherwise 401
      ``invalid_client``. Any ``client_id`` is accepted (there is no client registry).
    * ``device_interval`` / ``device_expires_in`` -- the ``interval`` and ``expires_in`` of new
      device codes (RFC 8628 §3.2).
    * ``default_subject`` -- who logs in when the request names nobody (``login_hint``).
    """

    def __init__(
        self,
        *,
        access_ttl: float = 3600.0,
        token_length: int = 40,
        client_secret: str | None = None,
        rotate: bool = True,
    ) -> None:
        if token_length < 1:
            raise ValueError("token_length must be >= 1")
        self.access_ttl = access_ttl
        self.token_length = token_length
        self.client_secret = client_secret
        self.rotate = rotate
        self.delay: float = 0.0
        self.garbage: Garbage | None = None
        self.device_interval: int = 1
        self.device_expires_in: float = 600.0
        self.default_subject: str = DEFAULT_SUBJECT
        self.requests: RecordList[Request] = RecordList()
        self.base_url = ""
        self.authorize_url = ""
        self.token_url = ""
        self.device_url = ""
        self.verification_uri = ""
        self.introspection_url = ""
        self.resource_id = "imap-server"
        self.resource_secret = _random_token(24)
        self.port = 0
        self._lock = threading.RLock()
        self._refresh: dict[str, _RefreshGrant] = {}
        self._access: dict[str, _Access] = {}
        self._codes: dict[str, _Code] = {}
        self._devices: dict[str, _Device] = {}
        self._stopping = threading.Event()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> IdentityProvider:
        if self._server is not None:
            raise RuntimeError("identity provider already running")
        self._stopping.clear()
        server = _HTTPServer(self)
        self.port = int(server.server_address[1])
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.authorize_url = self.base_url + "/authorize"
        self.token_url = self.base_url + "/token"
        self.device_url = self.base_url + "/devicecode"
        self.verification_uri = self.base_url + "/device"
        self.introspection_url = self.base_url + "/introspect"
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="IdentityProvider", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes a request sleeping in `delay`
        server.shutdown()  # serve_forever returns
        server.drop_connections()  # unblocks handlers still reading from a client
        server.server_close()  # joins the handler threads
        thread.join(_STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def openid_configuration_url(self) -> str:
        """Discovery document (RFC 8414 / OpenID Connect Discovery) listing the endpoints."""
        return self.base_url + "/.well-known/openid-configuration"

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<IdentityProvider {self.base_url or 'stopped'}>"

    # -- test API ----------------------------------------------------------------------------

    def issue_refresh_token(self, client_id: str, subject: str, scope: str = "") -> str:
        """Seed a refresh token bound to ``client_id`` for ``subject``, as if a login happened."""
        token = _random_token(48)
        with self._lock:
            self._refresh[token] = _RefreshGrant(client_id, subject, scope)
        return token

    def issue_access_token(self, client_id: str, subject: str, scope: str = "") -> str:
        """Seed an access token directly (no HTTP), with the current ``access_ttl``."""
        with self._lock:
            return self._new_access(client_id, subject, scope, origin=None)

    def valid_access_token(self, token: str) -> str | None:
        """The subject if this IdP issued ``token`` and it has not expired, else None."""
        with self._lock:
            access = self._access.get(token)
            if access is None or not access.alive or time.monotonic() >= access.expires_at:
                return None
            return access.subject

    def introspections(self) -> list[str]:
        """The ``token`` of every POST /introspect so far, in order ("" when it had none)."""
        return [r.form.get("token", "") for r in self.requests if r.method == "POST" and r.path == "/introspect"]

    def revoke(self, refresh_token: str, *, access_tokens: bool = False) -> None:
        """Kill a refresh token (unknown tokens are ignored, like RFC 7009 §2.2).

        Access tokens already issued stay valid until they expire (as with Microsoft's
        self-contained JWTs) unless ``access_tokens=True`` (RFC 7009 §2.1's SHOULD; Google).
        """
        with self._lock:
            grant = self._refresh.get(refresh_token)
            if grant is None:
                return
            grant.alive = False
            if access_tokens:
                for access in self._access.values():
                    if access.client_id == grant.client_id and access.subject == grant.subject:
                        access.alive = False

    def refresh_token_valid(self, refresh_token: str) -> bool:
        with self._lock:
            grant = self._refresh.get(refresh_token)
            return grant is not None and grant.alive

    def token_grants(self) -> list[str]:
        """The ``grant_type`` of every POST /token so far, in order ("" when it had none)."""
        return [r.form.get("grant_type", "") for r in self.requests if r.method == "POST" and r.path == "/token"]

    # -- protocol ----------------------------------------------------------------------------

    def _new_access(self, client_id: str, subject: str, scope: str, origin: str | None) -> str:
        token = _random_token(self.token_length)
        self._access[token] = _Access(client_id, subject, scope, time.monotonic() + self.access_ttl, origin)
        return token

    def _token_response(
        self, client_id: str, subject: str, scope: str, *, refresh: str | None, origin: str | None
    ) -> dict[str, Any]:
        """RFC 6749 §5.1 success body; issues the access token (caller holds the lock)."""
        body: dict[str, Any] = {
            "access_token": self._new_access(client_id, subject, scope, origin),
            "token_type": "Bearer",
            "expires_in": int(math.ceil(self.access_ttl)),
            "scope": scope,
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body

    def authorize(self, query: dict[str, str]) -> str:
        """RFC 6749 §4.1.1 + RFC 7636 §4.3: approve at once, return the redirect Location.

        Raises ValueError (answered 400 text/plain) for requests we cannot redirect or that lack
        PKCE. We have no registered redirect URIs, so any absolute URI is accepted -- and the
        token request must repeat it exactly (§4.1.3).
        """
        if query.get("response_type") != "code":
            raise ValueError("unsupported response_type (only 'code' is supported)")
        client_id = query.get("client_id", "")
        if not client_id:
            raise ValueError("missing client_id")
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri or not urlsplit(redirect_uri).scheme or "#" in redirect_uri:
            # §3.1.2: an absolute URI without a fragment.
            raise ValueError("missing, relative or fragment-carrying redirect_uri")
        challenge = query.get("code_challenge", "")
        if not challenge:
            raise ValueError("missing code_challenge (PKCE, RFC 7636, is required)")
        method = query.get("code_challenge_method", "plain")  # RFC 7636 §4.3 default
        if method not in ("S256", "plain"):
            raise ValueError("unsupported code_challenge_method")
        code = _random_token(32)
        with self._lock:
            self._codes[code] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                challenge=challenge,
                method=method,
                subject=query.get("login_hint") or self.default_subject,
                scope=query.get("scope", ""),
                expires_at=time.monotonic() + _CODE_TTL,
            )
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        sep = "&" if urlsplit(redirect_uri).query else ("" if redirect_uri.endswith("?") else "?")
        return redirect_uri + sep + urlencode(params)

    def device_authorization(self, form: dict[str, str]) -> dict[str, Any]:
        """RFC 8628 §3.1/§3.2: a new device code. The user "approves" before the second poll."""
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError("invalid_request", "missing client_id")
        device_code = _random_token(43)
        user_code = _user_code()
        with self._lock:
            self._devices[device_code] = _Device(
                client_id=client_id,
                scope=form.get("scope", ""),
                subject=form.get("login_hint") or self.default_subject,
                expires_at=time.monotonic() + self.device_expires_in,
            )
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": f"{self.verification_uri}?user_code={quote(user_code)}",
            "expires_in": int(math.ceil(self.device_expires_in)),
            "interval": self.device_interval,
        }

    def _client_id(self, form: dict[str, str], authorization: str | None) -> str:
        """Authenticate the client (RFC 6749 §2.3.1) and return its client_id."""
        basic: tuple[str, str] | None = None
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise OAuthError("invalid_client", "unsupported client authentication scheme", 401)
            try:
                user, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from None
            if not sep:
                raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401)
            # §2.3.1: the id and secret are form-urlencoded before Basic encoding.
            basic = (unquote_plus(user), unquote_plus(password))
            if "client_secret" in form:
                raise OAuthError("invalid_request", "more than one client authentication method used")
            if form.get("client_id", basic[0]) != basic[0]:
                raise OAuthError("invalid_client", "client_id does not match the authenticated client", 401)
        client_id = basic[0] if basic is not None else form.get("client_id", "")
        if not client_id:
            raise OAuthError("invalid_request", "missing client_id")
        secret = self.client_secret
        if secret is not None:
            given = basic[1] if basic is not None else form.get("client_secret")
            if given is None or not secrets.compare_digest(given.encode(), secret.encode()):
                raise OAuthError("invalid_client", "client authentication failed", 401)
        return client_id

    def token(self, form: dict[str, str], authorization: str | None = None) -> dict[str, Any]:
        """The token endpoint proper (RFC 6749 §3.2); raises :class:`OAuthError`."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "missing grant_type")
        if grant_type not in ("authorization_code", "refresh_token", DEVICE_GRANT):
            raise OAuthError("unsupported_grant_type", "grant_type is not supported")
        client_id = self._client_id(form, authorization)
        if grant_type == "authorization_code":
            return self._grant_code(form, client_id)
        if grant_type == "refresh_token":
            return self._grant_refresh(form, client_id)
        return self._grant_device(form, client_id)

    @staticmethod
    def _require(form: dict[str, str], *names: str) -> None:
        for name in names:
            if not form.get(name):
                raise OAuthError("invalid_request", f"missing {name}")

    def _grant_code(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        """RFC 6749 §4.1.3 + RFC 7636 §4.5/§4.6."""
        self._require(form, "code", "redirect_uri", "code_verifier")
        with self._lock:
            code = self._codes.get(form["code"])
            if code is None or time.monotonic() >= code.expires_at:
                raise OAuthError("invalid_grant", "unknown or expired authorization code")
            if code.used:
                # §4.1.2: a code used twice -- revoke what was issued from it (SHOULD).
                for grant in self._refresh.values():
                    if grant.origin == form["code"]:
                        grant.alive = False
                for access in self._access.values():
                    if access.origin == form["code"]:
                        access.alive = False
                raise OAuthError("invalid_grant", "authorization code already used")
            if code.client_id != client_id:
                raise OAuthError("invalid_grant", "authorization code was issued to another client")
            if code.redirect_uri != form["redirect_uri"]:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            # A failed verification does not use the code up; only a successful exchange does.
            verifier = form["code_verifier"]
            if not _VERIFIER_RE.match(verifier):
                raise OAuthError("invalid_grant", "code_verifier must be 43-128 unreserved characters")
            expected = s256(verifier) if code.method == "S256" else verifier
            if not secrets.compare_digest(expected.encode(), code.challenge.encode()):
                raise OAuthError("invalid_grant", "PKCE verification failed")
            code.used = True
            refresh = _random_token(48)
            self._refresh[refresh] = _RefreshGrant(client_id, code.subject, code.scope, origin=form["code"])
            return self._token_response(client_id, code.subject, code.scope, refresh=refresh, origin=form["code"])

    def _grant_refresh(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        """RFC 6749 §6 (+ §10.4 rotation). Any requested scope is granted (no invalid_scope)."""
        self._require(form, "refresh_token")
        with self._lock:
            old = form["refresh_token"]
            grant = self._refresh.get(old)
            if grant is None or not grant.alive:
                raise OAuthError("invalid_grant", "refresh token is invalid, expired or revoked")
            if grant.client_id != client_id:
                raise OAuthError("invalid_grant", "refresh token was issued to another client")
            scope = form.get("scope") or grant.scope
            new: str | None = None
            if self.rotate:
                grant.alive = False  # dead at once: no grace period
                new = _random_token(48)
                # §6: the new refresh token has the scope of the old one.
                self._refresh[new] = _RefreshGrant(client_id, grant.subject, grant.scope, origin=grant.origin)
            return self._token_response(client_id, grant.subject, scope, refresh=new, origin=grant.origin)

    def _grant_device(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        """RFC 8628 §3.4/§3.5: first poll pending, second poll succeeds, then the code is used."""
        self._require(form, "device_code")
        with self._lock:
            device = self._devices.get(form["device_code"])
            if device is None or device.used or device.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown or already used device code")
            if time.monotonic() >= device.expires_at:
                raise OAuthError("expired_token", "the device code has expired")
            device.polls += 1
            if device.polls == 1:
                raise OAuthError("authorization_pending", "the user has not yet approved the request")
            device.used = True
            refresh = _random_token(48)
            self._refresh[refresh] = _RefreshGrant(client_id, device.subject, device.scope)
            return self._token_response(client_id, device.subject, device.scope, refresh=refresh, origin=None)

    def introspect(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """RFC 7662 §2.1/§2.2: what the IdP knows of ``form["token"]``; raises :class:`OAuthError`
        when the resource server does not authenticate (401) or names no token (400)."""
        scheme, _, credentials = (authorization or "").partition(" ")
        try:
            user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if (scheme.lower() != "basic"
                or not secrets.compare_digest(unquote_plus(user).encode(), self.resource_id.encode())
                or not secrets.compare_digest(unquote_plus(password).encode(), self.resource_secret.encode())):
            raise OAuthError("invalid_client", "the protected resource must authenticate (HTTP Basic)", 401)
        self._require(form, "token")
        with self._lock:
            access = self._access.get(form["token"])
            remaining = None if access is None else access.expires_at - time.monotonic()
            if access is None or remaining is None or not access.alive or remaining <= 0:
                return {"active": False}  # §2.2: nothing else about a token that is not active
            return {"active": True, "username": access.subject, "sub": access.subject,
                    "client_id": access.client_id, "scope": access.scope, "token_type": "Bearer",
                    "exp": int(time.time() + remaining)}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.base_url,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "device_authorization_endpoint": self.device_url,
            "introspection_endpoint": self.introspection_url,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
            "code_challenge_methods_supported": ["S256", "plain"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        }


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------

_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to your account</title></head>\n"
    b"<body><form method=\"post\" action=\"/login\"><input name=\"loginfmt\"></form></body></html>\n"
)
_JUNK = b"\x00\xff{\"access_token\": <<not json>>\x1b"


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1:0 whose ``server_close()`` joins its handler threads.

    Handler threads are non-daemon and tracked (``block_on_close``); ``drop_connections()``
    shuts down sockets a handler may still be reading from, so joining never waits on a client.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = False

    def __init__(self, idp: IdentityProvider) -> None:
        self.idp = idp
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        super().__init__((LOOPBACK, 0), _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve our address with socket.getfqdn(): no DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = LOOPBACK
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._live_lock:
            self._live.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (or stalled past the timeout) is normal; anything else is a bug
        in this stand-in and gets socketserver's traceback (which never includes tokens: our
        exception messages do not carry them)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "smtpconf-test-idp/1.0"
    timeout = 10  # socket timeout: a stalled client cannot pin a handler thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        """Silent: request lines carry codes and tokens, which must not reach stderr."""

    def version_string(self) -> str:
        return self.server_version

    # -- responses --

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        # RFC 6749 §5.1: token responses MUST NOT be cached.
        all_headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})}
        self._send(status, json.dumps(obj).encode(), "application/json", all_headers)

    def _error(self, err: OAuthError) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="token"'} if err.status == 401 else None
        self._json(err.status, {"error": err.error, "error_description": err.description}, headers)

    def _text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", headers)

    # -- parsing --

    @staticmethod
    def _parse(raw: str) -> tuple[dict[str, str], list[str]]:
        """(last value per key, keys given more than once)."""
        multi = parse_qs(raw, keep_blank_values=True)
        return {k: v[-1] for k, v in multi.items()}, [k for k, v in multi.items() if len(v) > 1]

    def _read_form(self) -> tuple[dict[str, str], list[str]] | None:
        """The form body; None after answering an error (no length, too big, not UTF-8)."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            if self.headers.get("Transfer-Encoding"):
                self._text(411, "Content-Length required")
                return None
            length_header = "0"
        try:
            length = int(length_header)
        except ValueError:
            self._text(400, "bad Content-Length")
            return None
        if length < 0 or length > _MAX_BODY:
            self._text(413, "request body too large")
            return None
        raw = self.rfile.read(length)
        try:
            return self._parse(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return {}, []

    # -- methods --

    def do_GET(self) -> None:
        idp = self.server.idp
        url = urlsplit(self.path)
        query, _ = self._parse(url.query)
        idp.requests.append(Request("GET", url.path, query))
        if url.path == "/authorize":
            try:
                location = idp.authorize(query)
            except ValueError as exc:
                self._text(400, f"invalid authorization request: {exc}\n")
                return
            self._send(302, b"", "text/plain; charset=utf-8", {"Location": location, "Cache-Control": "no-store"})
        elif url.path == "/device":
            self._send(200, b"<!DOCTYPE html><html><body>Enter the code</body></html>\n", "text/html; charset=utf-8")
        elif url.path == "/.well-known/openid-configuration":
            self._send(200, json.dumps(idp.openid_configuration()).encode(), "application/json")
        elif url.path in ("/token", "/devicecode", "/introspect"):
            self._text(405, "use POST\n", {"Allow": "POST"})
        else:
            self._text(404, "not found\n")

    def do_POST(self) -> None:
        idp = self.server.idp
        url = urlsplit(self.path)
        parsed = self._read_form()
        if parsed is None:
            idp.requests.append(Request("POST", url.path, {}))
            return
        form, repeated = parsed
        idp.requests.append(Request("POST", url.path, form))
        if url.path not in ("/token", "/devicecode", "/introspect"):
            self._text(404, "not found\n")
            return
        if url.path == "/token":
            if idp.delay > 0 and idp._stopping.wait(idp.delay):
                return  # stop() during the delay: just hang up
            garbage = idp.garbage
            if garbage == "html":
                self._send(200, _HTML_PAGE, "text/html; charset=utf-8")
                return
            if garbage == "junk":
                self._send(200, _JUNK, "application/json", {"Cache-Control": "no-store"})
                return
        try:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
            if repeated:
                # RFC 6749 §3.1/§3.2: parameters MUST NOT be included more than once.
                raise OAuthError("invalid_request", "repeated parameter: " + ", ".join(sorted(repeated)))
            if url.path == "/devicecode":
                self._json(200, idp.device_authorization(form))
            elif url.path == "/introspect":
                self._json(200, idp.introspect(form, self.headers.get("Authorization")))
            else:
                self._json(200, idp.token(form, self.headers.get("Authorization")))
        except OAuthError as err:
            self._error(err)

    def do_HEAD(self) -> None:
        self._text(405, "")


__all__ = [
    "DEFAULT_SUBJECT",
    "DEVICE_GRANT",
    "IdentityProvider",
    "OAuthError",
    "Request",
    "s256",
]
