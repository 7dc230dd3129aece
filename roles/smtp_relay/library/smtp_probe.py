#!/usr/bin/python
"""Ansible module: probe an SMTP relay from the managed host (Python standard library only).

Whether port 587 or 465 is reachable depends on where you stand: a probe from the control node
proves nothing about a web server behind another firewall. This module runs on each fleet host and
makes the same probe as ``smtpconf check`` (connect, greeting, EHLO, STARTTLS or implicit TLS,
certificate verification, AUTH offered), with the same rule ids, never sending credentials.

Like ``smtpconf check`` (smtpconf/probe/smtp.py), it names a mode mismatch both ways: a plaintext
server on a ``tls`` port fails the handshake, and a server that stays silent on a ``starttls``/
``none`` port for half the time limit is tried with a TLS handshake on a second connection; if that
succeeds, it is an implicit-TLS server (``tls-handshake-failed``), not a tarpit. Unlike ``check``,
``timeout`` bounds each network step, not the whole probe, and ``cert-expiring`` is not reported
(``cert_not_after`` is returned instead).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: smtp_probe
short_description: Probe an SMTP submission server from the managed host
description:
  - Connects to the relay, waits for the greeting, sends EHLO, upgrades with STARTTLS or speaks
    implicit TLS, verifies the certificate (system CA store or O(ca_pem)) and checks that AUTH is
    offered after TLS. Never sends credentials or mail. Changes nothing.
  - A greeting other than 220 or a refused EHLO is C(probe-unreachable). A server that stays
    silent on a C(starttls)/C(none) port but completes a TLS handshake is C(tls-handshake-failed)
    (implicit TLS where STARTTLS was configured). An O(ca_pem) that is not a usable CA
    certificate is C(cert-untrusted).
  - Fails with the smtpconf rule id (C(probe-unreachable), C(probe-timeout),
    C(starttls-not-offered), C(tls-handshake-failed), C(cert-untrusted), C(cert-hostname-mismatch),
    C(cert-expired), C(auth-not-offered)) in the message.
options:
  host: {type: str, required: true, description: Relay host name or IP address.}
  port: {type: int, required: true, description: Relay port.}
  security: {type: str, required: true, choices: [starttls, tls, none], description: Security mode.}
  ca_pem: {type: str, description: PEM text of a private CA; default is the system store.}
  expect_auth: {type: bool, default: true, description: Fail when AUTH is not offered.}
  timeout: {type: float, default: 10, description: Seconds for each network step.}
  every_address:
    type: bool
    default: false
    description:
      - Probe every IPv4 address of O(host) and, with O(ipv6), every IPv6 address (AAAA), each on
        its own connection, and fail naming the source, relay, address and port of each failure
        (the role's C(preflight)). Without it, one connection to the first address.
  ipv6: {type: bool, default: true, description: With O(every_address), probe the IPv6 addresses too.}
  relay: {type: str, description: The relay's name, for the messages.}
  source: {type: str, description: The host probing (inventory name), for the messages.}
author: smtpconf
"""

EXAMPLES = r"""
- name: Probe the default relay from this host
  smtp_probe:
    host: "{{ smtp_relay_relays[smtp_relay_relay].host }}"
    port: "{{ smtp_relay_relays[smtp_relay_relay].port }}"
    security: "{{ smtp_relay_relays[smtp_relay_relay].security }}"
    ca_pem: "{{ smtp_relay_relays[smtp_relay_relay].ca_pem | default(omit) }}"
  tags: [verify]
"""

RETURN = r"""
greeting: {description: The server's 220 greeting line., returned: when connected, type: str}
auth: {description: AUTH mechanisms offered after TLS., returned: when connected, type: list}
tls_version: {description: Negotiated TLS version., returned: with TLS, type: str}
cert_not_after: {description: Certificate expiry (notAfter)., returned: with TLS, type: str}
addresses: {description: With every_address, the result of each address that passed (address, family and the keys above)., returned: with every_address, type: list}
"""

import socket
import ssl
import time

from ansible.module_utils.basic import AnsibleModule


class Problem(Exception):
    def __init__(self, rule, message):
        super().__init__(f"[{rule}] {message}")
        self.rule = rule


class Session:
    def __init__(self, sock):
        self.sock = sock
        self.file = sock.makefile("rb")

    def reply(self):
        lines = []
        while len(lines) < 100:
            line = self.file.readline(4096).decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                raise ConnectionResetError("the server closed the connection")
            if not line[:3].isdigit():
                raise Problem("probe-unreachable", f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines
        raise Problem("probe-unreachable", "reply longer than 100 lines")

    def command(self, text):
        self.sock.sendall(text.encode("ascii") + b"\r\n")
        return self.reply()

    def ehlo(self, where):
        # An address literal is always a valid EHLO argument; IPv6 ones need the tag
        # (RFC 5321 §4.1.3).
        host = self.sock.getsockname()[0]
        code, lines = self.command("EHLO [%s%s]" % ("IPv6:" if ":" in host else "", host))
        if code != 250:
            raise Problem("probe-unreachable", f"{where}: the server refused EHLO: {code} {' '.join(lines)}")
        return {l.split(" ", 1)[0].upper(): (l.split(" ", 1) + [""])[1] for l in lines[1:]}

    def upgrade(self, context, host):
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.file = self.sock.makefile("rb")


def context_for(ca_pem, where):
    try:
        return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    except (ssl.SSLError, ValueError, TypeError) as exc:
        raise Problem("cert-untrusted", f"{where}: ca_pem is not a usable PEM CA certificate "
                                        f"({getattr(exc, 'reason', None) or exc})")


def speaks_tls(host, port, timeout, address=None):
    """Only to learn *whether* a silent server speaks TLS (a mode mismatch), never to trust it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address or host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except (OSError, ssl.SSLError):
        return False


def greeting(session, host, port, security, timeout, where, address=None):
    """The greeting, waited for as long as ``timeout`` allows. On a plaintext port a server still
    silent at half time gets a TLS handshake on a second connection (as smtpconf check does)."""
    if security == "tls":
        return session.reply()
    deadline = time.monotonic() + timeout
    session.sock.settimeout(timeout / 2)
    try:
        return session.reply()
    except socket.timeout:
        # A socket file that timed out refuses every later read: nothing was buffered yet, so a
        # fresh one over the same socket is safe.
        session.file = session.sock.makefile("rb")
    if speaks_tls(host, port, max(0.1, deadline - time.monotonic()), address):
        raise Problem("tls-handshake-failed", f"{where} speaks implicit TLS (no plaintext greeting; a TLS "
                                              f"handshake succeeds), but security is {security}: use tls")
    session.sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        return session.reply()
    except socket.timeout:
        raise Problem("probe-timeout", f"{where}: connected, but no SMTP greeting within {timeout:g}s (a "
                                       "tarpit, a filtering firewall, or another security mode?)")
    finally:
        session.sock.settimeout(timeout)


def cert_rule(exc):
    code = exc.verify_code
    if code in (9, 10):
        return "cert-expired"
    if code in (62, 64):
        return "cert-hostname-mismatch"
    return "cert-untrusted"


def probe(host, port, security, ca_pem, expect_auth, timeout, address=None, where=None):
    """One probe; ``address`` (default: whatever ``host`` resolves to first) is where to connect,
    ``host`` the name the certificate must carry."""
    where = where or "%s:%d" % (host, port)
    result = {}
    try:
        sock = socket.create_connection((address or host, port), timeout=timeout)
    except socket.timeout:
        raise Problem("probe-timeout", f"{where}: no TCP connection within {timeout:g}s (firewall?)")
    except OSError as exc:
        raise Problem("probe-unreachable", f"{where}: {exc.strerror or exc} (check the firewall of this host)")
    session = Session(sock)
    try:
        # Built only when TLS is used: a ca_pem given for a plaintext relay is never parsed.
        context = context_for(ca_pem, where) if security != "none" else None
        if security == "tls":
            session.upgrade(context, host)
        code, lines = greeting(session, host, port, security, timeout, where, address)
        if code != 220:
            raise Problem("probe-unreachable", f"{where}: the server refuses service: {code} {' '.join(lines)}")
        result["greeting"] = "%d %s" % (code, " ".join(lines))
        caps = session.ehlo(where)
        if security == "starttls":
            if "STARTTLS" not in caps:
                raise Problem("starttls-not-offered", f"{where} does not offer STARTTLS")
            code, lines = session.command("STARTTLS")
            if code != 220:
                raise Problem("tls-handshake-failed", f"{where} refused STARTTLS: {code} {' '.join(lines)}")
            session.upgrade(context, host)
            caps = session.ehlo(where)
        if security != "none":
            result["tls_version"] = session.sock.version()
            result["cert_not_after"] = session.sock.getpeercert().get("notAfter")
        result["auth"] = caps.get("AUTH", "").split()
        if expect_auth and not result["auth"]:
            raise Problem("auth-not-offered", f"{where} does not offer AUTH")
        try:
            session.command("QUIT")
        except OSError:
            pass
        return result
    except ssl.SSLCertVerificationError as exc:
        raise Problem(cert_rule(exc), f"{where}: {exc.verify_message}")
    except ssl.SSLError as exc:
        raise Problem("tls-handshake-failed", f"{where}: TLS handshake failed ({exc.reason or exc}); "
                                              "does the security mode match the port (465 tls, 587 starttls)?")
    except socket.timeout:
        raise Problem("probe-timeout", f"{where}: the server stopped answering (limit {timeout:g}s)")
    except OSError as exc:
        raise Problem("probe-unreachable", f"{where}: {exc.strerror or exc}")
    finally:
        session.sock.close()


def addresses(host, port, ipv6):
    """Every address of ``host`` to probe: its IPv4 addresses and, when ``ipv6``, its IPv6 ones
    (an IP literal is its own one address), in the resolver's order, each once."""
    found = []
    families = [(socket.AF_INET, "IPv4")] + ([(socket.AF_INET6, "IPv6")] if ipv6 else [])
    for family, label in families:
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            continue  # no A (or AAAA) record: nothing of that family to probe
        for info in infos:
            address = info[4][0]
            if address not in [a for a, _ in found]:
                found.append((address, label))
    return found


def preflight(params):
    """Probe every address of the relay; the failures, each naming host, relay, address and port."""
    host, port, relay = params["host"], params["port"], params["relay"] or params["host"]
    source = params["source"] or "this host"
    found = addresses(host, port, params["ipv6"])
    if not found:
        raise Problem("probe-unreachable", f"from {source}: relay '{relay}': {host} has no IPv4"
                                           f"{' or IPv6' if params['ipv6'] else ''} address (DNS?)")
    results, failures = [], []
    for address, family in found:
        shown = "[%s]" % address if ":" in address else address
        where = f"from {source}: relay '{relay}' {host} {family} {shown} port {port}"
        try:
            result = probe(host, port, params["security"], params["ca_pem"], params["expect_auth"],
                           params["timeout"], address, where)
        except Problem as problem:
            failures.append(problem)
            continue
        results.append(dict(result, address=address, family=family))
    return results, failures


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", required=True),
            security=dict(type="str", required=True, choices=["starttls", "tls", "none"]),
            ca_pem=dict(type="str", required=False, default=None),
            expect_auth=dict(type="bool", default=True),
            timeout=dict(type="float", default=10.0),
            every_address=dict(type="bool", default=False),
            ipv6=dict(type="bool", default=True),
            relay=dict(type="str", default=None),
            source=dict(type="str", default=None),
        ),
        supports_check_mode=True,  # it only reads: the probe is the same in check mode
    )
    p = module.params
    if p["every_address"]:
        try:
            results, failures = preflight(p)
        except Problem as problem:
            module.fail_json(msg=str(problem), rule=problem.rule)
        if failures:
            module.fail_json(msg="; ".join(str(f) for f in failures), rules=[f.rule for f in failures],
                             addresses=results)
        module.exit_json(changed=False, addresses=results)
    try:
        result = probe(p["host"], p["port"], p["security"], p["ca_pem"], p["expect_auth"], p["timeout"])
    except Problem as problem:
        module.fail_json(msg=str(problem), rule=problem.rule)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
