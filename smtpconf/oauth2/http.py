"""One bounded HTTP POST to an identity provider, and its JSON answer (RFC 6749 §3.2, §5).

Bounded in total (SPEC §11): name resolution, connect, TLS, the request and every read share one
deadline. Socket timeouts are set from the time that is left before each step, and a timer shuts
the socket down at the deadline, so a server that trickles one byte a second cannot stretch the
call. The reply is capped at ``MAX_REPLY`` bytes.

Plain ``http://`` is allowed to loopback addresses only (a local test identity provider): a
refresh token or authorization code sent in the clear is a credential anyone on the path can use.
``https_proxy`` is honoured (``smtpconf.oauth2.proxy``), except for loopback hosts.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from smtpconf import __version__
from smtpconf.findings import printable
from smtpconf.oauth2 import OAuth2Error

MAX_REPLY = 1 << 20


class Deadline:
    """The end of an operation bounded by ``--timeout``, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def left(self, what: str) -> float:
        """The seconds left, or a timeout error naming ``what`` was not done in time."""
        left = self.remaining()
        if left <= 0:
            raise TimedOut(f"{what} did not finish within {self.seconds:g}s (--timeout)")
        return left


class TimedOut(OAuth2Error):
    """The deadline passed."""


class ProviderError(OAuth2Error):
    """An RFC 6749 §5.2 error answer: ``error`` is the code, ``description`` the provider's text,
    already made printable and free of the request's secrets."""

    def __init__(self, where: str, error: str, description: str) -> None:
        detail = f"{error}: {description}" if description else error
        super().__init__(f"{where} answered {detail}")
        self.where = where
        self.error = error
        self.description = description


def endpoint_name(url: str) -> str:
    """What messages call an endpoint: its scheme, host and path, printable (no query)."""
    parts = urlsplit(url)
    return printable(f"{parts.scheme}://{parts.netloc}{parts.path}", 120)


def post_form(url: str, form: dict[str, str], *, deadline: Deadline, scrub: tuple[str | None, ...] = (),
              name: str = "the URL") -> dict[str, Any]:
    """POST ``form`` (``application/x-www-form-urlencoded``) to ``url`` and return the JSON object
    of a 2xx answer. An OAuth2 error answer raises :class:`ProviderError`; anything else that is
    not a JSON object (a login page, a proxy's error, junk) raises :class:`OAuth2Error`.
    ``scrub`` are the secrets in the request: no message repeats them, whatever the server echoes.
    ``name`` is what the file calls the URL (``token_url``), for "is token_url right?".
    """
    where = endpoint_name(url)
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise OAuth2Error(f"{where} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(host):
        raise OAuth2Error(f"{where}: plain http would send the credentials in the clear; use https")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OAuth2Error(f"{where}: the port is not a number") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = urlencode(form).encode("ascii")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
               "User-Agent": f"smtpconf/{__version__}", "Connection": "close"}

    holder: list[socket.socket] = []
    # The deadline as a hard stop: shutting the socket down wakes any blocked read or write.
    timer = threading.Timer(max(deadline.remaining(), 0.0), _shutdown, (holder,))
    timer.daemon = True
    timer.start()
    try:
        proxy = None
        if parts.scheme == "https" and not _loopback(host):
            from smtpconf.oauth2.proxy import proxy_for

            proxy = proxy_for(host)
        if proxy is None:
            sock = _connect(host, port, deadline, where)
            holder.append(sock)
        else:
            from smtpconf.oauth2.proxy import tunnel

            sock = _connect(proxy.host, proxy.port, deadline, f"the proxy {proxy.name} (https_proxy)")
            holder.append(sock)
            tunnel(sock, host, port, proxy, deadline, where)
        if parts.scheme == "https":
            sock.settimeout(deadline.left(f"TLS with {where}"))
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            holder[:] = [sock]
        conn = http.client.HTTPConnection(host, port)
        conn.sock = sock
        sock.settimeout(deadline.left(f"the request to {where}"))
        conn.request("POST", target, body, headers)
        sock.settimeout(deadline.left(f"the answer of {where}"))
        reply = conn.getresponse()
        status = reply.status
        content_type = (reply.getheader("Content-Type") or "no content type").split(";")[0].strip().lower()
        data = _read_capped(reply, sock, deadline, where, name)
    except OAuth2Error:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise OAuth2Error(f"{where}: TLS certificate not trusted ({printable(exc.verify_message or str(exc), 120)})") \
            from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.expired or isinstance(exc, TimeoutError):
            raise TimedOut(f"{where} did not answer within {deadline.seconds:g}s (--timeout)") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise OAuth2Error(f"{where}: {printable(str(reason), 120)}") from None
    finally:
        timer.cancel()
        for sock in holder:
            sock.close()
    return _json_answer(where, status, content_type, data, scrub, name)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shutdown(holder: list[socket.socket]) -> None:
    for sock in holder:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _connect(host: str, port: int, deadline: Deadline, where: str) -> socket.socket:
    """A TCP connection, with the name resolved inside the deadline (getaddrinfo has no timeout
    of its own: it runs in a thread we stop waiting for)."""
    try:
        ipaddress.ip_address(host)
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError:
        addresses = _resolve(host, port, deadline, where)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left(f"connecting to {where}"))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if last is not None and deadline.expired:
        raise TimedOut(f"{where} did not answer within {deadline.seconds:g}s (--timeout)")
    reason = last.strerror if last is not None and last.strerror else "no address"
    raise OAuth2Error(f"{where}: cannot connect: {reason}")


def _resolve(host: str, port: int, deadline: Deadline, where: str) -> list[Any]:
    found: list[Any] = []
    failed: list[str] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc.strerror or str(exc))

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(deadline.left(f"resolving {where}"))
    if thread.is_alive():
        raise TimedOut(f"resolving {where} did not finish within {deadline.seconds:g}s (--timeout)")
    if failed or not found:
        raise OAuth2Error(f"{where}: cannot resolve the host: {printable(failed[0] if failed else 'no address', 120)}")
    return found


def _read_capped(reply: http.client.HTTPResponse, sock: socket.socket, deadline: Deadline, where: str,
                 name: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(deadline.left(f"the answer of {where}"))
        chunk = reply.read1(65536) if size < MAX_REPLY else reply.read(1)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REPLY:
            raise OAuth2Error(f"{where} answered more than {MAX_REPLY // 1024} KiB: is {name} right?")
        chunks.append(chunk)


def _json_answer(where: str, status: int, content_type: str, data: bytes,
                 scrub: tuple[str | None, ...], name: str) -> dict[str, Any]:
    try:
        answer = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        if content_type in ("application/json",) or content_type.endswith("+json"):
            raise OAuth2Error(f"{where} answered HTTP {status} with {printable(content_type)} that is not a JSON "
                              f"object: is {name} right?")
        raise OAuth2Error(f"{where} answered {printable(content_type)} (HTTP {status}), not JSON: is {name} right?")
    error = answer.get("error")
    if error is not None or not 200 <= status < 300:
        code = _clean(str(error) if error is not None else f"HTTP {status}", scrub, 60)
        description = answer.get("error_description")
        text = _clean(str(description), scrub, 300) if description else ""
        raise ProviderError(where, code, text)
    return answer


def _clean(text: str, scrub: tuple[str | None, ...], limit: int) -> str:
    for secret in scrub:
        if secret:
            text = text.replace(secret, "…")
    # Microsoft's descriptions run over lines ("AADSTS70008: ...\r\nTrace ID: ..."): one line.
    return printable(" ".join(text.split()), limit)
