#!/usr/bin/python
"""Ansible module: probe an SMTP relay from the managed host (Python standard library only).

Whether port 587 or 465 is reachable depends on where you stand: a probe from the control node
proves nothing about a web server behind another firewall. This module runs on each fleet host and
makes the same probe as ``smtpconf check`` (connect, greeting, EHLO, STARTTLS or implicit TLS,
certificate verification, AUTH offered), with the same rule ids, never sending credentials.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: smtp_probe
short_description: Probe an SMTP submission server from the managed host
description:
  - Connects to the relay, waits for the greeting, sends EHLO, upgrades with STARTTLS or speaks
    implicit TLS, verifies the certificate (system CA store or O(ca_pem)) and checks that AUTH is
    offered after TLS. Never sends credentials or mail. Changes nothing.
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
"""

import socket
import ssl

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

    def ehlo(self):
        code, lines = self.command("EHLO [%s]" % self.sock.getsockname()[0])
        return {l.split(" ", 1)[0].upper(): (l.split(" ", 1) + [""])[1] for l in lines[1:]} if code == 250 else {}

    def upgrade(self, context, host):
        self.file.close()
        self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.file = self.sock.makefile("rb")


def context_for(ca_pem):
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


def cert_rule(exc):
    code = exc.verify_code
    if code in (9, 10):
        return "cert-expired"
    if code in (62, 64):
        return "cert-hostname-mismatch"
    return "cert-untrusted"


def probe(host, port, security, ca_pem, expect_auth, timeout):
    where = "%s:%d" % (host, port)
    result = {}
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise Problem("probe-timeout", f"{where}: no TCP connection within {timeout:g}s (firewall?)")
    except OSError as exc:
        raise Problem("probe-unreachable", f"{where}: {exc.strerror or exc} (check the firewall of this host)")
    session = Session(sock)
    try:
        context = context_for(ca_pem)
        if security == "tls":
            session.upgrade(context, host)
        code, lines = session.reply()
        result["greeting"] = "%d %s" % (code, " ".join(lines))
        caps = session.ehlo()
        if security == "starttls":
            if "STARTTLS" not in caps:
                raise Problem("starttls-not-offered", f"{where} does not offer STARTTLS")
            code, lines = session.command("STARTTLS")
            if code != 220:
                raise Problem("tls-handshake-failed", f"{where} refused STARTTLS: {code} {' '.join(lines)}")
            session.upgrade(context, host)
            caps = session.ehlo()
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            port=dict(type="int", required=True),
            security=dict(type="str", required=True, choices=["starttls", "tls", "none"]),
            ca_pem=dict(type="str", required=False, default=None),
            expect_auth=dict(type="bool", default=True),
            timeout=dict(type="float", default=10.0),
        ),
        supports_check_mode=True,  # it only reads: the probe is the same in check mode
    )
    p = module.params
    try:
        result = probe(p["host"], p["port"], p["security"], p["ca_pem"], p["expect_auth"], p["timeout"])
    except Problem as problem:
        module.fail_json(msg=str(problem), rule=problem.rule)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
