"""HTTPS through a proxy: ``https_proxy`` / ``no_proxy`` as curl and Python's urllib read them,
and an HTTP CONNECT tunnel (RFC 9110 §9.3.6) inside the caller's deadline.

Only ``http://`` proxies (the CONNECT kind every corporate proxy speaks) are supported; a
``user:password@`` in the proxy URL becomes ``Proxy-Authorization: Basic`` and is never shown in
a message. Loopback identity providers are never proxied. ``no_proxy`` entries are host names
or domain suffixes (``example.com`` and ``.example.com`` both cover ``idp.example.com``), or ``*``.
"""

from __future__ import annotations

import base64
import os
import socket
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

from smtpconf.findings import printable
from smtpconf.oauth2 import OAuth2Error

if TYPE_CHECKING:
    from smtpconf.oauth2.http import Deadline

_MAX_HEAD = 16 * 1024


class Proxy(NamedTuple):
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization header value

    @property
    def name(self) -> str:
        """For messages: host and port, never the credentials."""
        return printable(f"{self.host}:{self.port}", 120)


def proxy_for(host: str) -> Proxy | None:
    """The proxy an https request to ``host`` goes through, or None."""
    value = os.environ.get("https_proxy") or os.environ.get("HTTPS_PROXY")
    if not value or _bypassed(host.lower()):
        return None
    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        port = parts.port or 80
    except ValueError:
        raise OAuth2Error("https_proxy: the port is not a number") from None
    if parts.scheme != "http" or not parts.hostname:
        raise OAuth2Error(f"https_proxy: only http://HOST:PORT proxies are supported (got {printable(parts.scheme)}://)")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def _bypassed(host: str) -> bool:
    for entry in (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def tunnel(sock: socket.socket, host: str, port: int, proxy: Proxy, deadline: Deadline, where: str) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``host:port``; returns when it is open."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization:
        request += f"Proxy-Authorization: {proxy.authorization}\r\n"
    sock.settimeout(deadline.left(f"the proxy {proxy.name} (https_proxy)"))
    sock.sendall((request + "\r\n").encode("ascii"))
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > _MAX_HEAD:
            raise OAuth2Error(f"the proxy {proxy.name} (https_proxy) answered CONNECT with an oversized header")
        sock.settimeout(deadline.left(f"the proxy {proxy.name} (https_proxy)"))
        chunk = sock.recv(4096)
        if not chunk:
            raise OAuth2Error(f"the proxy {proxy.name} (https_proxy) closed the connection instead of a tunnel "
                              f"to {where}")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or fields[1] != "200":
        raise OAuth2Error(f"the proxy {proxy.name} (https_proxy) refused the tunnel to {where}: "
                          f"{printable(status, 120)}")
