"""Real SMTP servers ("providers") for integration tests, on 127.0.0.1 only.

Everything here listens on loopback ports chosen by the kernel (bind to port 0), so tests can run
in parallel and never touch a public address (SPEC section 6).

* :class:`TestCA` -- a throw-away certificate authority (trustme) that issues server certificates,
  including expired, soon-expiring and wrong-name ones.
* :class:`Provider` -- an aiosmtpd server speaking STARTTLS, implicit TLS or plaintext, with
  AUTH PLAIN/LOGIN, recording every message and every AUTH attempt. Its switches also make the
  misbehaving servers the live checks must recognise (no STARTTLS, AUTH before TLS, no AUTH,
  slow greeting). With ``oauth=`` (a :class:`tests.support.idp.IdentityProvider`) it is an
  OAuth2 provider instead: AUTH XOAUTH2 (Google/Microsoft) and/or OAUTHBEARER (RFC 7628) only,
  checking bearer tokens against that IdP.
* :class:`Tarpit` -- accepts TCP connections and never says a word.
* :class:`DelayedGreetingFarm` -- many slow-greeting SMTP endpoints served by ONE event loop
  thread (cheap enough for benchmarks with hundreds of endpoints).
* :func:`closed_port` -- a loopback port with nothing listening.

Every server is a context manager and also has ``start()``/``stop()``; ``stop()`` drops open client
connections so it never waits on a client a failing test forgot to close.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, overload

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

if TYPE_CHECKING:  # idp.py imports this module (RecordList): no import cycle at run time
    from tests.support.idp import IdentityProvider

LOOPBACK = "127.0.0.1"

Mode = Literal["starttls", "tls", "plain"]
OAuthMechanism = Literal["XOAUTH2", "OAUTHBEARER"]
OAuthErrorStyle = Literal["google", "microsoft"]
OAUTH_MECHANISMS: tuple[OAuthMechanism, ...] = ("XOAUTH2", "OAUTHBEARER")

# RFC 4954 §4: servers must accept AUTH command lines (and SASL responses) of up to 12288
# octets, far above SMTP's 512. OAuth tokens need it: Microsoft's are 1.5-3 KB before base64.
AUTH_LINE_LIMIT = 12288

# How long start()/stop() may take before we call the server broken. Generous: a loaded CI box.
_START_TIMEOUT = 10.0

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def _bind_loopback() -> socket.socket:
    """A TCP socket bound to an ephemeral loopback port (not yet listening).

    We bind *before* starting a server and hand the socket to asyncio: the port is known
    immediately and there is no "pick a free port, then bind it" race with other tests.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
    except BaseException:
        sock.close()
        raise
    return sock


# Sockets that reserve the ports handed out by closed_port(): kept for the life of the process so
# no later test server can be given the same port by the kernel.
_RESERVED: list[socket.socket] = []


def closed_port() -> int:
    """Return a loopback port on which nothing listens (connecting is refused at once).

    The port stays bound -- but not listening -- until the process exits: on Linux a SYN to a
    bound, non-listening socket is answered with RST, and no other server can take the port.
    """
    sock = _bind_loopback()
    _RESERVED.append(sock)
    return int(sock.getsockname()[1])


def _insecure_client_context() -> ssl.SSLContext:
    """A client context that completes a handshake with anything (readiness checks only)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RecordList(Sequence[T], Generic[T]):
    """A list that the server thread appends to and the test thread reads and waits on.

    Indexing, ``len()``, iteration and ``==`` against a list work on a consistent snapshot.
    """

    def __init__(self) -> None:
        self._items: list[T] = []
        self._cond = threading.Condition()

    def append(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()

    def snapshot(self) -> list[T]:
        with self._cond:
            return list(self._items)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[T]:
        """Block until at least ``n`` items exist; return them all. TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) >= n, timeout):
                raise TimeoutError(f"expected {n} record(s) within {timeout}s, got {len(self._items)}")
            return list(self._items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.snapshot()[index]

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.snapshot())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordList):
            other = other.snapshot()
        return isinstance(other, list) and self.snapshot() == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        return f"RecordList({self.snapshot()!r})"


# --------------------------------------------------------------------------------------------
# Test certificate authority
# --------------------------------------------------------------------------------------------


class TestCA:
    """A trustme CA whose certificate is also written to a file (for msmtp, Postfix, swaks...).

    ``issue()`` returns a server-side :class:`ssl.SSLContext`; ``cert_pem_paths()`` writes the
    same kind of certificate to files for servers that read PEM files.
    """

    # The name starts with "Test": tell pytest this is not a test class to collect.
    __test__ = False

    EXPIRING_SOON_DAYS = 5

    def __init__(self, directory: Path | None = None) -> None:
        self.ca = trustme.CA()
        # Own the directory only if we created it; a caller's (e.g. tmp_path_factory) is theirs.
        self._owned_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="smtpconf-ca-")) if directory is None else directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_pem_path: Path = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self._serial = 0

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def _leaf(self, names: Sequence[str], expired: bool, expiring_soon: bool) -> trustme.LeafCert:
        if not names:
            raise ValueError("a certificate needs at least one name")
        if expired and expiring_soon:
            raise ValueError("expired and expiring_soon are exclusive")
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before: datetime.datetime | None = None
        not_after: datetime.datetime | None = None
        if expired:
            # Valid for a while in the past, so the only thing wrong with it is the expiry.
            not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        elif expiring_soon:
            not_before = now - datetime.timedelta(days=1)
            not_after = now + datetime.timedelta(days=self.EXPIRING_SOON_DAYS)
        return self.ca.issue_cert(*names, not_before=not_before, not_after=not_after)

    def issue(
        self, names: Sequence[str], *, expired: bool = False, expiring_soon: bool = False
    ) -> ssl.SSLContext:
        """A server context presenting a certificate for ``names`` (hostnames or IP addresses).

        ``expired``: notAfter is yesterday. ``expiring_soon``: notAfter is
        :attr:`EXPIRING_SOON_DAYS` days from now (still valid; for the ``cert-expiring`` rule).
        """
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf(names, expired, expiring_soon).configure_cert(ctx)
        return ctx

    def cert_pem_paths(
        self, names: Sequence[str], *, expired: bool = False, expiring_soon: bool = False
    ) -> tuple[Path, Path]:
        """Write a certificate for ``names`` to files; return ``(cert chain path, key path)``.

        The key file is mode 0600, as Postfix and friends expect of private keys.
        """
        leaf = self._leaf(names, expired, expiring_soon)
        self._serial += 1
        stem = f"{self._serial:03d}-{names[0].replace('*', '_star_')}"
        chain_path = self.directory / f"{stem}.chain.pem"
        key_path = self.directory / f"{stem}.key.pem"
        chain_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key_path.touch(mode=0o600)
        key_path.write_bytes(leaf.private_key_pem.bytes())
        return chain_path, key_path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA and checks hostnames (like a real client)."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    def close(self) -> None:
        """Remove the directory if we created it."""
        if self._owned_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> TestCA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Provider: aiosmtpd with recording
# --------------------------------------------------------------------------------------------


class Received(NamedTuple):
    """One message as the provider accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_user: str | None  # the AUTH identity of the session, None if it did not authenticate
    tls: bool  # whether the message travelled over TLS (STARTTLS or implicit)


class AuthAttempt(NamedTuple):
    """One AUTH attempt; compares equal to a ``(user, success)`` tuple.

    For PLAIN/LOGIN ``user`` is the login; for XOAUTH2 the ``user=`` value; for OAUTHBEARER the
    ``a=`` authzid (or the token's subject when there is none, "" if the token is unknown); ""
    for a client message that could not be parsed.
    """

    user: str
    success: bool


class _Handler:
    """aiosmtpd handler: AUTH policy, EHLO advertisement and recording."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        # aiosmtpd's built-in PLAIN and LOGIN both hand us a LoginPassword of bytes.
        assert isinstance(auth_data, LoginPassword)
        user = auth_data.login.decode("utf-8", "surrogateescape")
        password = auth_data.password.decode("utf-8", "surrogateescape")
        users = self.provider.users
        ok = user in users and users[user] == password
        self.provider.auth_attempts.append(AuthAttempt(user, ok))
        # handled=False with no message makes aiosmtpd answer
        # "535 5.7.8 Authentication credentials invalid" on failure.
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # With this 5-argument hook aiosmtpd no longer records the client name itself; without it
        # every MAIL would get "503 Error: send HELO first".
        session.host_name = hostname
        if not self.provider.users and self.provider.oauth is None:
            # No accounts: do not advertise AUTH at all (the "auth-not-offered" server).
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # We enforce "AUTH before MAIL" here instead of aiosmtpd's auth_required, because that
        # one warns whenever AUTH is allowed without TLS -- which implicit TLS always is to
        # aiosmtpd (see Provider._smtp_kwargs).
        if self.provider.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        # original_content: the bytes as received (after dot-unstuffing), whatever decode_data says.
        data = envelope.original_content or b""
        self.provider.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                auth_user=session.auth_data if session.authenticated else None,
                tls=tls,
            )
        )
        return "250 2.0.0 OK: queued"


# --------------------------------------------------------------------------------------------
# OAuth2 SASL mechanisms: XOAUTH2 and OAUTHBEARER
# --------------------------------------------------------------------------------------------

# What the providers answer when a bearer token is refused (kept verbatim from the real ones).
GOOGLE_XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
GOOGLE_535 = (
    "535 5.7.8 Username and Password not accepted. Learn more at "
    "https://support.google.com/mail/?p=BadCredentials"
)
MICROSOFT_535 = "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0001.namprd06.prod.outlook.com]"
OAUTHBEARER_535 = "535 5.7.8 Authentication credentials invalid"
_OAUTH_SCOPES: dict[str, str] = {
    "google": "https://mail.google.com/",
    "microsoft": "https://outlook.office.com/SMTP.Send",
}


class XOAuth2Message(NamedTuple):
    """A parsed XOAUTH2 client message (``user=U^Aauth=Bearer T^A^A``)."""

    user: str
    token: str


class OAuthBearerMessage(NamedTuple):
    """A parsed RFC 7628 OAUTHBEARER client response. ``authzid`` is None without ``a=``."""

    authzid: str | None
    token: str
    fields: dict[str, str]  # every key/value pair (host, port, auth, ...)


def _bearer(auth: str | None) -> str | None:
    """The token of an ``auth`` value ``Bearer <token>`` (RFC 6750 §2.1), else None."""
    if auth is None:
        return None
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _kvpairs(text: str) -> dict[str, str] | None:
    """``key=value`` pairs, each ended by ^A; None if any is malformed (RFC 7628 §3.1)."""
    if not text:
        return {}
    if not text.endswith("\x01"):
        return None
    pairs: dict[str, str] = {}
    for item in text[:-1].split("\x01"):
        key, sep, value = item.partition("=")
        if not sep or not key.isalpha() or not key.isascii():
            return None
        pairs[key] = value
    return pairs


def parse_xoauth2(blob: bytes) -> XOAuth2Message | None:
    """Parse Google's XOAUTH2 message: ``user={user}\\x01auth=Bearer {token}\\x01\\x01``.

    (https://developers.google.com/gmail/imap/xoauth2-protocol; Microsoft uses the same format.)
    None when it is not in that form.
    """
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    pairs = _kvpairs(text[:-1])
    if pairs is None or "user" not in pairs:
        return None
    token = _bearer(pairs.get("auth"))
    if token is None:
        return None
    return XOAuth2Message(pairs["user"], token)


def _unescape_saslname(value: str) -> str | None:
    """RFC 5801 §4 saslname: ``=2C`` is ``,`` and ``=3D`` is ``=``; any other ``=`` is invalid."""
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "=":
            escape = value[i : i + 3].upper()
            if escape == "=2C":
                out.append(",")
            elif escape == "=3D":
                out.append("=")
            else:
                return None
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_oauthbearer(blob: bytes) -> OAuthBearerMessage | None:
    """Parse an RFC 7628 §3.1 client response.

    ``client-resp = gs2-header kvsep *kvpair kvsep``, gs2-header ``n,[a=authzid],`` (channel
    binding ``p=`` is not supported by OAUTHBEARER, so it is refused here), kvsep ``%x01``,
    ``auth=Bearer <token>`` required. None when malformed.
    """
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.split(",", 2)
    if len(parts) != 3 or parts[0] not in ("n", "y"):
        return None
    _, authz, rest = parts
    authzid: str | None = None
    if authz:
        if not authz.startswith("a="):
            return None
        authzid = _unescape_saslname(authz[2:])
        if not authzid:
            return None
    if not rest.startswith("\x01") or not rest.endswith("\x01") or len(rest) < 2:
        return None
    pairs = _kvpairs(rest[1:-1])
    if pairs is None:
        return None
    token = _bearer(pairs.get("auth"))
    if token is None:
        return None
    return OAuthBearerMessage(authzid, token, pairs)


class _OAuthHandler(_Handler):
    """The handler of an OAuth2 provider: aiosmtpd calls ``auth_<MECHANISM>(server, args)``.

    aiosmtpd collects every ``auth_*`` method of the handler as a SASL mechanism (the name after
    ``auth_``) and calls it with the SMTP protocol object and the AUTH arguments
    (``[mechanism]`` or ``[mechanism, initial-response]``). It returns an :class:`AuthResult`:
    ``success=True`` -> aiosmtpd answers ``235 2.7.0`` and stores ``auth_data`` as the session's
    identity; ``handled=False`` with ``message`` -> aiosmtpd sends that reply; ``handled=True``
    -> we already answered. Mechanisms not chosen for a provider are removed with aiosmtpd's
    ``auth_exclude_mechanism`` (see :meth:`Provider._smtp_kwargs`).
    """

    @staticmethod
    async def _client_message(server: SMTP, args: list[str]) -> bytes | None:
        """The SASL client message: the initial response, or the answer to an empty challenge.

        RFC 4954 §4: the initial response rides on the AUTH line (msmtp, smtplib); ``=`` means
        an empty one. Without it the server sends ``334 `` (empty challenge) and the client
        answers on its own line. None when we (or aiosmtpd) already replied with an error.
        """
        if len(args) == 1:
            reply = await server.challenge_auth("")
            return None if reply is MISSING else reply  # aiosmtpd answered 501 already
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            await server.push("501 5.5.2 Can't decode base64")
            return None

    def _subject(self, token: str) -> str | None:
        idp = self.provider.oauth
        assert idp is not None
        return idp.valid_access_token(token)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2 as Gmail and Exchange Online do it.

        Success: ``235``. Failure, Google style: a ``334`` challenge carrying the base64 JSON
        error ``{"status":"401","schemes":"bearer","scope":...}``, the client's (empty) reply,
        then ``535 5.7.8``. Microsoft style: ``535 5.7.3`` at once.
        """
        provider = self.provider
        blob = await self._client_message(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        message = parse_xoauth2(blob)
        if message is None:
            provider.auth_attempts.append(AuthAttempt("", False))
            await server.push("501 5.5.2 Malformed XOAUTH2 client message")
            return AuthResult(success=False, handled=True)
        subject = self._subject(message.token)
        ok = subject is not None and subject == message.user
        provider.auth_attempts.append(AuthAttempt(message.user, ok))
        if ok:
            return AuthResult(success=True, auth_data=message.user)
        if provider.oauth_error_style == "microsoft":
            return AuthResult(success=False, handled=False, message=MICROSOFT_535)
        error = json.dumps(GOOGLE_XOAUTH2_ERROR, separators=(",", ":"))
        if await server.challenge_auth(error) is MISSING:
            return AuthResult(success=False, handled=True)  # "*" or bad base64: 501 was sent
        return AuthResult(success=False, handled=False, message=GOOGLE_535)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """OAUTHBEARER, RFC 7628.

        Success: ``235`` (the session's user is the ``a=`` authzid, or the token's subject when
        the client sent none). Failure (§3.2.2, the SMTP example of §4.3): a ``334`` challenge
        with the base64 JSON ``{"status":"invalid_token","scope":...,"openid-configuration":...}``;
        the client must answer with a lone %x01 (``AQ==``) and then gets ``535 5.7.8``.
        """
        provider = self.provider
        blob = await self._client_message(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        message = parse_oauthbearer(blob)
        if message is None:
            provider.auth_attempts.append(AuthAttempt("", False))
            await server.push("501 5.5.2 Malformed OAUTHBEARER client response")
            return AuthResult(success=False, handled=True)
        subject = self._subject(message.token)
        ok = subject is not None and (message.authzid is None or message.authzid == subject)
        user = message.authzid if message.authzid is not None else (subject or "")
        provider.auth_attempts.append(AuthAttempt(user, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        idp = provider.oauth
        assert idp is not None
        error = {
            "status": "invalid_token",
            "scope": _OAUTH_SCOPES[provider.oauth_error_style],
            "openid-configuration": idp.openid_configuration_url,
        }
        if await server.challenge_auth(json.dumps(error, separators=(",", ":"))) is MISSING:
            return AuthResult(success=False, handled=True)
        # Whatever the client answered (it MUST be %x01), the exchange fails.
        return AuthResult(success=False, handled=False, message=OAUTHBEARER_535)


class _QuietSession(Session):
    """aiosmtpd 1.4 sets the deprecated ``login_data`` itself on every successful AUTH, and the
    setter logs a WARNING each time; this session keeps the value without the noise."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Connections:
    """The live SMTP sessions of one controller, and whether it is shutting down."""

    def __init__(self) -> None:
        self.live: set[_SMTP] = set()
        self.closing = False

    def abort_all(self) -> None:
        self.closing = True
        for smtp in list(self.live):
            smtp.abort()


class _SMTP(SMTP):
    """aiosmtpd's SMTP plus a greeting delay and a registry of live connections."""

    def __init__(
        self,
        handler: Any,
        *,
        conns: _Connections,
        greeting_delay: float,
        auth_line_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        if auth_line_limit is not None:
            # aiosmtpd keeps command_size_limits in a class attribute shared by every server;
            # an instance dict keeps this provider's larger AUTH limit to itself.
            self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, **kwargs)
        if auth_line_limit is not None:
            self._allow_long_auth_lines(auth_line_limit)
        self._conns = conns
        self._greeting_delay = greeting_delay
        self._started = False

    def _allow_long_auth_lines(self, limit: int) -> None:
        """Accept AUTH lines and SASL responses of up to ``limit`` octets (RFC 4954 §4).

        Two limits stand in the way in aiosmtpd 1.4: the per-command size (512 by default) and
        the StreamReader's buffer limit (line_length_limit, 1001), beyond which readline() fails
        the session. We raise the first for AUTH only and the second on the reader itself; DATA
        lines stay capped at 1001 by aiosmtpd's own explicit check of line_length_limit.
        """
        self.command_size_limits["AUTH"] = limit
        # StreamReaderProtocol's reader (created in SMTP.__init__; private, hence getattr).
        reader: Any = getattr(self, "_stream_reader", None)
        if reader is None or not isinstance(getattr(reader, "_limit", None), int):
            raise RuntimeError("aiosmtpd/asyncio internals changed: cannot raise the AUTH line limit")
        reader._limit = max(reader._limit, limit + 2)  # + CRLF

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._conns.closing and not self._started:
            # An implicit-TLS handshake that finished while stop() runs: refuse it here, or
            # aiosmtpd would start a session task that outlives the event loop.
            transport.abort()
            return
        # aiosmtpd calls this again after STARTTLS; registering twice is harmless (a set).
        self._started = True
        self._conns.live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._conns.live.discard(self)
        if self._started:
            super().connection_lost(error)

    async def _handle_client(self) -> None:
        # aiosmtpd sends the 220 greeting first thing in _handle_client (1.4.x internals); sleeping
        # before it is the least invasive way to make a slow greeter.
        if self._greeting_delay > 0:
            await asyncio.sleep(self._greeting_delay)
        provider = getattr(self.event_handler, "provider", None)
        if provider is not None and provider.greeting_reply:
            await self.push(provider.greeting_reply)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def abort(self) -> None:
        """Drop the connection now (used by stop(); must run in the server's loop)."""
        # After STARTTLS, self.transport is the TLS layer; abort the socket underneath.
        transport = self._original_transport or self.transport
        if transport is not None:
            transport.abort()


class _Controller(Controller):
    """aiosmtpd's threaded Controller, fixed up for tests.

    * Serves a socket we bound to port 0. Controller(port=0) would bind fine but then its
      readiness check (_trigger_server) connects to port 0 and start() fails.
    * Its own readiness check reads the greeting, which with a greeting delay takes up to its 1s
      socket timeout. Ours only connects (plus a TLS handshake for implicit TLS, so a broken
      server context fails start() instead of the first test client): aiosmtpd builds the SMTP
      object when asyncio *accepts* the connection, which is all start() waits for.
    * stop() first stops accepting and drops live client connections, then lets the loop settle
      before aiosmtpd cancels tasks and closes the loop. Otherwise a session whose TLS handshake
      completes during stop() leaves a pending task behind ("Task was destroyed but it is
      pending"), and from Python 3.12 on Server.wait_closed() (inside Controller.stop) waits for
      every open connection, so one forgotten client would hang stop().
    """

    def __init__(
        self,
        handler: Any,
        *,
        sock: socket.socket,
        greeting_delay: float,
        auth_line_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, hostname=LOOPBACK, port=int(sock.getsockname()[1]), **kwargs)
        self._sock = sock
        self._greeting_delay = greeting_delay
        self._auth_line_limit = auth_line_limit
        self._conns = _Connections()

    def factory(self) -> SMTP:
        return _SMTP(
            self.handler,
            conns=self._conns,
            greeting_delay=self._greeting_delay,
            auth_line_limit=self._auth_line_limit,
            **self.SMTP_kwargs,
        )

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def _trigger_server(self) -> None:
        with socket.create_connection((LOOPBACK, self.port), timeout=self.ready_timeout) as sock:
            if self.ssl_context is not None:
                with _insecure_client_context().wrap_socket(sock):
                    pass

    async def _quiesce(self) -> None:
        if self.server is not None:
            self.server.close()  # no new connections
        self._conns.abort_all()
        # Let connection_lost() callbacks and in-flight TLS handshakes (refused in
        # connection_made) run before aiosmtpd stops the loop.
        for _ in range(2):
            await asyncio.sleep(0.01)
            self._conns.abort_all()

    def stop(self, no_assert: bool = False) -> None:
        if self._thread is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._quiesce(), self.loop).result(_START_TIMEOUT)
        super().stop(no_assert=no_assert)


class Provider:
    """A real SMTP submission server on 127.0.0.1 (aiosmtpd in a background thread).

    ``mode``:
      * ``"starttls"`` -- plaintext greeting, STARTTLS offered and (by default) required before
        anything but EHLO/NOOP/QUIT; AUTH is advertised and accepted only after TLS.
      * ``"tls"`` -- implicit TLS from the first byte (port-465 style); AUTH advertised at once.
      * ``"plain"`` -- no TLS at all; AUTH (if ``users``) in the clear. Also serves as "a
        plaintext server where TLS is expected".

    ``users``: accounts for AUTH PLAIN and LOGIN. When given, AUTH is required before MAIL
    (``auth_required`` overrides). Without users AUTH is not advertised at all. Wrong
    credentials get ``535 5.7.8 Authentication credentials invalid``.

    Misbehaviour switches (for the live checks):
      * ``offer_starttls=False`` (starttls mode) -- never offers STARTTLS, AUTH offered in the
        clear: a server where STARTTLS was expected but is not offered.
      * ``auth_before_tls=True`` (starttls mode) -- offers STARTTLS *and* advertises/accepts AUTH
        before it; STARTTLS is then not required unless ``require_starttls=True``.
      * ``greeting_delay`` -- seconds to wait before the 220 greeting.
      * ``greeting_reply`` -- answer every connection with this line instead of the 220 greeting
        and hang up (``"421 4.7.0 Try again later"``: a relay over its sending limit). May be
        changed while running.
      * a wrong-name or expired certificate: pass ``ssl_context=ca.issue(["other.test"])`` or
        ``ca.issue([...], expired=True)``.

    Give either ``ssl_context`` (server side) or ``ca`` (then a certificate for ``hostname``,
    ``localhost`` and ``127.0.0.1`` is issued, so clients connecting to 127.0.0.1 verify).

    OAuth2 (``oauth=`` an :class:`~tests.support.idp.IdentityProvider`, instead of ``users``):
      * only ``oauth_mechanisms`` are advertised (``"XOAUTH2"`` and/or ``"OAUTHBEARER"``; after
        TLS in starttls mode, as for passwords); PLAIN and LOGIN get ``504 5.5.4 Unrecognized
        authentication type``. AUTH is required before MAIL.
      * a login succeeds only with a bearer token that ``oauth.valid_access_token`` accepts,
        for the user the SASL message names (XOAUTH2 ``user=``, OAUTHBEARER ``a=``; an
        OAUTHBEARER message without ``a=`` logs in as the token's subject).
      * ``oauth_error_style`` -- how XOAUTH2 refuses a token: ``"google"`` (334 + base64 JSON
        error, then ``535 5.7.8 Username and Password not accepted...``) or ``"microsoft"``
        (``535 5.7.3 Authentication unsuccessful [...]`` at once). OAUTHBEARER always fails as
        RFC 7628 §3.2.2 says (334 + JSON, client sends ``AQ==``, ``535 5.7.8``); the style only
        picks the scope named in that JSON. May be changed while running.
      * AUTH lines of up to :data:`AUTH_LINE_LIMIT` octets (RFC 4954 §4) are accepted, so
        Microsoft-sized tokens fit in the initial response.

    Records every accepted message in :attr:`messages` (:class:`Received`) and every AUTH attempt
    in :attr:`auth_attempts` (:class:`AuthAttempt`); both are thread-safe :class:`RecordList`.
    :attr:`received` is another name for :attr:`messages`.
    """

    host = LOOPBACK

    def __init__(
        self,
        mode: Mode = "starttls",
        *,
        users: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca: TestCA | None = None,
        hostname: str = "smtp.provider.test",
        auth_required: bool | None = None,
        require_starttls: bool | None = None,
        offer_starttls: bool = True,
        auth_before_tls: bool = False,
        greeting_delay: float = 0.0,
        greeting_reply: str | None = None,
        oauth: IdentityProvider | None = None,
        oauth_mechanisms: Sequence[str] = ("XOAUTH2",),
        oauth_error_style: OAuthErrorStyle = "google",
    ) -> None:
        if mode not in ("starttls", "tls", "plain"):
            raise ValueError(f"unknown mode {mode!r}")
        mechanisms = tuple(m.upper() for m in oauth_mechanisms)
        if oauth is not None:
            if users:
                raise ValueError("an OAuth provider takes no password users (oauth= or users=)")
            if not mechanisms or any(m not in OAUTH_MECHANISMS for m in mechanisms):
                raise ValueError(f"oauth_mechanisms must be a non-empty subset of {OAUTH_MECHANISMS}")
        if oauth_error_style not in ("google", "microsoft"):
            raise ValueError(f"unknown oauth_error_style {oauth_error_style!r}")
        self.mode: Mode = mode
        self.users: dict[str, str] = dict(users or {})
        self.oauth = oauth
        self.oauth_mechanisms: tuple[str, ...] = mechanisms if oauth is not None else ()
        self.oauth_error_style: OAuthErrorStyle = oauth_error_style
        self.hostname = hostname
        wants_auth = bool(self.users) or oauth is not None
        self.auth_required = wants_auth if auth_required is None else auth_required
        self.offer_starttls = offer_starttls
        self.auth_before_tls = auth_before_tls
        self.greeting_delay = greeting_delay
        self.greeting_reply = greeting_reply
        self.require_starttls = (not auth_before_tls) if require_starttls is None else require_starttls
        if ssl_context is None and ca is not None and self._uses_tls:
            ssl_context = ca.issue([hostname, "localhost", LOOPBACK])
        if self._uses_tls and ssl_context is None:
            raise ValueError(f"mode {mode!r} needs ssl_context= or ca=")
        self.ssl_context = ssl_context
        self.messages: RecordList[Received] = RecordList()
        self.auth_attempts: RecordList[AuthAttempt] = RecordList()
        self.port: int = 0  # set by start()
        self._handler: _Handler = _OAuthHandler(self) if oauth is not None else _Handler(self)
        self._controller: _Controller | None = None

    @property
    def _uses_tls(self) -> bool:
        return self.mode == "tls" or (self.mode == "starttls" and self.offer_starttls)

    def _smtp_kwargs(self) -> dict[str, Any]:
        handler = self._handler
        kwargs: dict[str, Any] = {
            "server_hostname": self.hostname,  # Controller's own "hostname" is the bind address
            "authenticator": handler.authenticate,
            # aiosmtpd only counts STARTTLS as TLS: with implicit TLS and the default
            # auth_require_tls=True it would hide AUTH and answer 538. So plaintext AUTH is
            # "allowed" everywhere except a proper STARTTLS server.
            "auth_require_tls": self.mode == "starttls" and self.offer_starttls and not self.auth_before_tls,
        }
        if self.oauth is not None:
            # OAuth only: passwords, and the OAuth mechanisms not asked for, are unknown (504).
            unwanted = [m for m in OAUTH_MECHANISMS if m not in self.oauth_mechanisms]
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN", *unwanted]
        elif not self.users:
            # No accounts: AUTH itself answers "504 Unrecognized authentication type".
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        if self.mode == "starttls" and self.offer_starttls:
            kwargs["tls_context"] = self.ssl_context
            kwargs["require_starttls"] = self.require_starttls
        elif self.mode == "tls":
            kwargs["ssl_context"] = self.ssl_context  # Controller wraps the listener: implicit TLS
        return kwargs

    def start(self) -> Provider:
        if self._controller is not None:
            raise RuntimeError("provider already running")
        sock = _bind_loopback()
        controller = _Controller(
            self._handler,
            sock=sock,
            greeting_delay=self.greeting_delay,
            auth_line_limit=AUTH_LINE_LIMIT if self.oauth is not None else None,
            ready_timeout=_START_TIMEOUT,
            **self._smtp_kwargs(),
        )
        try:
            controller.start()
        except BaseException:
            # A half-started controller may own a thread and the socket: release both.
            if controller._thread is not None:
                controller.stop(no_assert=True)
            sock.close()
            raise
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def received(self) -> RecordList[Received]:
        """The accepted messages (the same list as :attr:`messages`)."""
        return self.messages

    def wait_for_messages(self, n: int = 1, timeout: float = 5.0) -> list[Received]:
        """Block until ``n`` messages were received; return all messages so far."""
        return self.messages.wait_for(n, timeout)

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Provider {self.mode} {self.host}:{self.port} {self.hostname}>"


# --------------------------------------------------------------------------------------------
# Raw asyncio servers: tarpit and slow-greeting farm (one loop thread for any number of ports)
# --------------------------------------------------------------------------------------------


class _LoopServers:
    """Serve ``count`` loopback ports from one asyncio event loop in one daemon thread.

    We accept connections ourselves (``add_reader`` + ``accept``) rather than using
    ``loop.create_server``: an asyncio Server that is closed while a just-accepted connection is
    still being wrapped in a transport leaks that socket (the client then hangs until garbage
    collection). Here every accepted socket is recorded synchronously, so stop() can close all of
    them. Subclasses provide ``_make_protocol()``; protocols call ``_track``/``_untrack`` with
    their transport so stop() can abort live connections cleanly.
    """

    host = LOOPBACK

    def __init__(self, count: int = 1, *, implicit_tls: ssl.SSLContext | None = None) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        self.count = count
        self._implicit_tls = implicit_tls
        self.ports: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listeners: list[socket.socket] = []
        self._conns: set[socket.socket] = set()  # every accepted socket, until stop()
        self._setups: set[asyncio.Task[Any]] = set()  # connections still being set up (TLS)
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def port(self) -> int:
        """The first port (convenient when count == 1)."""
        return self.ports[0]

    def _make_protocol(self) -> asyncio.Protocol:
        raise NotImplementedError

    def _track(self, transport: asyncio.BaseTransport) -> None:
        self._transports.add(transport)

    def _untrack(self, transport: asyncio.BaseTransport) -> None:
        self._transports.discard(transport)

    def start(self) -> _LoopServers:
        if self._thread is not None:
            raise RuntimeError("already running")
        self._listeners = [_bind_loopback() for _ in range(self.count)]
        self.ports = [int(s.getsockname()[1]) for s in self._listeners]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"{type(self).__name__}-loop", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            listener.listen(128)
            listener.setblocking(False)
            loop.add_reader(listener.fileno(), self._on_acceptable, listener)

    def _on_acceptable(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNABORTED: the client already gave up
            conn.setblocking(False)
            self._conns.add(conn)
            task = loop.create_task(self._connect(conn))
            self._setups.add(task)
            task.add_done_callback(self._setups.discard)

    async def _connect(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._implicit_tls is not None:
                await loop.connect_accepted_socket(
                    self._make_protocol, conn, ssl=self._implicit_tls, ssl_handshake_timeout=10
                )
            else:
                await loop.connect_accepted_socket(self._make_protocol, conn)
        except Exception:
            conn.close()  # e.g. the client rejected our certificate or hung up mid-handshake

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        # 1. Stop accepting (remove_reader also cancels an accept callback already queued).
        for listener in self._listeners:
            loop.remove_reader(listener.fileno())
            listener.close()
        # 2. Connections still in their TLS handshake: cancelling closes their transport.
        for task in list(self._setups):
            task.cancel()
        await asyncio.gather(*self._setups, return_exceptions=True)
        # 3. Established connections: abort, then let connection_lost() callbacks run.
        for transport in list(self._transports):
            transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        # 4. Anything left (closing an already-closed socket is a no-op).
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT)
            loop.close()
            for listener in self._listeners:
                listener.close()

    def __enter__(self) -> _LoopServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SilentProtocol(asyncio.Protocol):
    """Accept, read and discard; never write. Closed only by the client or Tarpit.stop()."""

    def __init__(self, owner: _LoopServers) -> None:
        self._owner = owner
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._owner._track(transport)

    def data_received(self, data: bytes) -> None:
        pass  # swallow whatever the client says

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._owner._untrack(self._transport)


class Tarpit(_LoopServers):
    """Accepts TCP connections and never sends a greeting; holds them open until stop().

    ``Tarpit()`` serves one port (``.port``); ``Tarpit(count=n)`` serves ``n`` (``.ports``).
    """

    def __init__(self, count: int = 1) -> None:
        super().__init__(count)

    def _make_protocol(self) -> asyncio.Protocol:
        return _SilentProtocol(self)

    def __enter__(self) -> Tarpit:
        self.start()
        return self


class _ProbeSMTP(asyncio.Protocol):
    """Just enough server-side SMTP for a probe: greeting after a delay, EHLO/HELO, STARTTLS,
    NOOP, RSET, QUIT. AUTH is advertised (after TLS in starttls mode) but always refused.
    """

    def __init__(self, farm: DelayedGreetingFarm) -> None:
        self._farm = farm
        self._transport: asyncio.Transport | None = None
        self._tracked: asyncio.BaseTransport | None = None
        self._buffer = b""
        self._greeted = False
        self._upgrading = False
        self._tls = farm.mode == "tls"
        self._timer: asyncio.TimerHandle | None = None

    # -- connection lifecycle --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._tracked = transport  # the outermost transport; abort() on it drops the socket
        self._farm._track(transport)
        # A timer, not a task per connection: hundreds of waiting connections cost almost nothing.
        self._timer = asyncio.get_running_loop().call_later(self._farm.delay, self._greet)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._tracked is not None:
            self._farm._untrack(self._tracked)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._process()

    # -- SMTP --

    def _write(self, *lines: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write("".join(line + "\r\n" for line in lines).encode("ascii"))

    def _greet(self) -> None:
        self._greeted = True
        self._write(f"220 {self._farm.hostname} ESMTP slow but ready")
        self._process()  # a client that spoke early gets its answers now

    def _process(self) -> None:
        # Nothing is answered before the greeting, nor while the TLS handshake is in progress.
        while self._greeted and not self._upgrading and b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            self._command(line.strip().decode("ascii", "replace"))

    def _command(self, line: str) -> None:
        verb, _, _arg = line.partition(" ")
        verb = verb.upper()
        farm = self._farm
        if verb == "EHLO":
            caps = [farm.hostname, "PIPELINING", "8BITMIME"]
            if farm.mode == "starttls" and not self._tls:
                caps.append("STARTTLS")
            if self._tls:
                caps.append("AUTH PLAIN LOGIN")
            self._write(*(f"250-{c}" for c in caps[:-1]), f"250 {caps[-1]}")
        elif verb == "HELO":
            self._write(f"250 {farm.hostname}")
        elif verb == "STARTTLS" and farm.mode == "starttls" and not self._tls:
            self._write("220 2.0.0 Ready to start TLS")
            # RFC 3207: forget anything pipelined after STARTTLS. Cleared now, not after the
            # handshake: with TLS 1.3 the client may send EHLO before our start_tls() returns.
            self._buffer = b""
            self._upgrading = True
            asyncio.get_running_loop().create_task(self._start_tls())
        elif verb in ("NOOP", "RSET"):
            self._write("250 2.0.0 OK")
        elif verb == "QUIT":
            self._write("221 2.0.0 Bye")
            if self._transport is not None:
                self._transport.close()
        elif verb == "AUTH":
            self._write("535 5.7.8 Authentication credentials invalid")
        else:
            self._write("502 5.5.2 Command not implemented")

    async def _start_tls(self) -> None:
        transport = self._transport
        assert transport is not None and self._farm.ssl_context is not None
        try:
            # loop.start_tls (not StreamWriter.start_tls) works on every Python >= 3.7.
            new = await asyncio.get_running_loop().start_tls(
                transport, self, self._farm.ssl_context, server_side=True, ssl_handshake_timeout=10
            )
        except Exception:
            transport.abort()  # the client gave up on or rejected the handshake
            return
        if new is None:  # the connection closed during the handshake
            return
        self._transport = new
        self._tls = True
        self._upgrading = False
        self._process()


class DelayedGreetingFarm(_LoopServers):
    """``count`` SMTP endpoints on loopback that greet ``delay`` seconds after connecting.

    All ports are served by ONE asyncio event loop thread, so a benchmark can run hundreds.
    ``mode``: ``"starttls"`` (STARTTLS offered, AUTH PLAIN LOGIN advertised after it), ``"tls"``
    (implicit TLS, AUTH advertised), ``"plain"`` (neither). TLS modes need ``ssl_context``.
    ``.ports`` lists the ports, ``.port`` is the first.
    """

    def __init__(
        self,
        count: int,
        delay: float,
        mode: Mode = "starttls",
        *,
        ssl_context: ssl.SSLContext | None = None,
        hostname: str = "slow.provider.test",
    ) -> None:
        if mode not in ("starttls", "tls", "plain"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode != "plain" and ssl_context is None:
            raise ValueError(f"mode {mode!r} needs ssl_context=")
        super().__init__(count, implicit_tls=ssl_context if mode == "tls" else None)
        self.delay = delay
        self.mode: Mode = mode
        self.ssl_context = ssl_context
        self.hostname = hostname

    def _make_protocol(self) -> asyncio.Protocol:
        return _ProbeSMTP(self)

    def __enter__(self) -> DelayedGreetingFarm:
        self.start()
        return self


def wait_for_port_closed(port: int, timeout: float = 2.0) -> bool:
    """True once connecting to ``port`` is refused (a stopped server really let go)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


__all__ = [
    "AUTH_LINE_LIMIT",
    "LOOPBACK",
    "OAUTH_MECHANISMS",
    "AuthAttempt",
    "DelayedGreetingFarm",
    "Mode",
    "OAuthBearerMessage",
    "OAuthErrorStyle",
    "OAuthMechanism",
    "Provider",
    "Received",
    "RecordList",
    "Tarpit",
    "TestCA",
    "XOAuth2Message",
    "closed_port",
    "parse_oauthbearer",
    "parse_xoauth2",
    "wait_for_port_closed",
]
