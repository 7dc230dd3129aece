"""Ports, security modes and certificates of relay and account endpoints."""

from __future__ import annotations

from typing import Iterator

from smtpconf.files import NotReadable, read_ca_file
from smtpconf.findings import printable
from smtpconf.model import Config, Endpoint, endpoint_uses, preset_of
from smtpconf.rules import Hit, rule

# RFC 8314 §3.3: 465 is implicit TLS; RFC 6409: 587 is submission with STARTTLS.
_IMPLICIT_TLS_PORTS = frozenset({465, 2465, 994, 993, 995})  # 994: NetEase's second SMTPS port
_STARTTLS_PORTS = frozenset({587, 2587, 143, 110})


@rule("tls-port-mismatch", "error")
def tls_port_mismatch(config: Config) -> Iterator[Hit]:
    """The port and the security mode disagree: 465 with `starttls`, or 587 with `tls`.

    Port 465 (and IMAPS 993, POP3S 995) speaks TLS from the first byte ("SSL", `security: tls`);
    port 587 starts in plaintext and upgrades with STARTTLS (`security: starttls`). A client set the
    wrong way round waits for a greeting that never comes, or sends STARTTLS into a TLS handshake:
    the most common cause of "connection timed out" reports. Change `security` (or the port).

    A pairing the server's provider documents is not reported (Spectrum/Charter serves implicit TLS
    on 587, `provider: spectrum`): written by hand for any other server, it is almost always the
    mistake above.
    """
    for use in endpoint_uses(config):
        ep = use.endpoint
        if not ep.explicit & {"port", "security"} or _documented(ep):
            continue  # preset values are consistent; a relay's are reported at the relay
        where = ep.path + (("security",) if "security" in ep.explicit else ("port",))
        if ep.port in _IMPLICIT_TLS_PORTS and ep.security == "starttls":
            yield Hit(where, f"{use.what}: port {ep.port} expects implicit TLS, but security is starttls")
        elif ep.port in _STARTTLS_PORTS and ep.security == "tls":
            yield Hit(where, f"{use.what}: port {ep.port} expects STARTTLS, but security is tls (implicit TLS)")


def _documented(ep: Endpoint) -> bool:
    """Whether the endpoint's provider publishes this host, port and security as one of its servers."""
    preset = preset_of(ep)
    servers = (*preset.smtp, *preset.incoming.values()) if preset is not None else ()
    return any((s.host, s.port, s.security) == (ep.host_ascii.rstrip(".").lower(), ep.port, ep.security)
               for s in servers)


@rule("plaintext-auth", "error")
def plaintext_auth(config: Config) -> Iterator[Hit]:
    """Credentials would be sent without encryption (`security: none` with a password).

    AUTH PLAIN and LOGIN send the password base64-encoded, which is plain text to anyone on the
    path. Use `starttls` (587) or `tls` (465); for a lab server without TLS, silence this rule on
    that line with `# smtpconf: ignore[plaintext-auth]`.
    """
    for use in endpoint_uses(config):
        if use.endpoint.security == "none" and use.login.auth == "password" and use.password is not None:
            where = use.endpoint.path + (("security",) if "security" in use.endpoint.explicit else ())
            yield Hit(where, f"{use.what}: security none would send the password in the clear; "
                             "use starttls (587) or tls (465)")


@rule("port-25-submission", "warning")
def port_25_submission(config: Config) -> Iterator[Hit]:
    """Port 25 is used to submit mail.

    Port 25 is for server-to-server transfer (MX). Most cloud providers and ISPs block outgoing
    connections to it, and providers do not offer authenticated submission there. Submit on 587
    (STARTTLS) or 465 (implicit TLS) and make sure the firewall allows that port.
    """
    for use in endpoint_uses(config):
        if use.smtp and use.endpoint.port == 25:
            yield Hit(use.endpoint.path + ("port",),
                      f"{use.what}: port 25 is for server-to-server mail and often blocked; "
                      "submit on 587 (starttls) or 465 (tls)")


@rule("ca-file-missing", "error")
def ca_file_missing(config: Config) -> Iterator[Hit]:
    """A `ca_file` does not exist, cannot be read, or is no PEM certificate file.

    `ca_file` names the CA certificate (PEM) used to verify a private relay's certificate; relative
    paths are relative to the smtpconf file. Without it, clients and Postfix refuse the server (or,
    worse, someone turns verification off). It must be a regular file (not a directory, a device
    or a FIFO) of at most 16 MiB holding at least one `-----BEGIN CERTIFICATE-----` block. Fix the
    path or add the file.
    """
    seen: set[tuple[object, ...]] = set()
    for use in endpoint_uses(config):
        ca_file = use.endpoint.ca_file
        if ca_file is None or "ca_file" not in use.endpoint.explicit or use.endpoint.path in seen:
            continue
        seen.add(use.endpoint.path)
        try:
            read_ca_file(ca_file)
        except NotReadable as exc:
            yield Hit(use.endpoint.path + ("ca_file",), f"{use.what}: ca_file {printable(ca_file)} {exc}")
