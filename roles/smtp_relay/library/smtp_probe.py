#!/usr/bin/python
"""Ansible module: probe an SMTP relay from the managed host (Python standard library only).

Whether port 587 or 465 is reachable depends on where you stand: a probe from the control node
proves nothing about a web server behind another firewall. This module runs on each fleet host and
makes the same probe as ``smtpconf check`` (connect, greeting, EHLO, STARTTLS or implicit TLS,
certificate verification, AUTH offered), with the same rule ids and messages, never sending
credentials.

The dialogue itself is the role's ``module_utils/smtp_dialogue.py`` (Ansible ships it to the host
with this module), which ``smtpconf check`` and ``send-test`` use too (as
``smtpconf.probe.dialogue``): the same server gets the same diagnosis from all three, including a
mode mismatch both ways (a plaintext server on a ``tls`` port; a server silent on a ``starttls``/
``none`` port for half the time limit that completes a TLS handshake on a second connection).
What is this module's own: the module arguments, probing every address of the relay
(``every_address``, the role's preflight) and the messages' ``where``. Unlike ``check``,
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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.smtp_dialogue import Failed, Session, UnusableCA, auth_not_offered, mechanisms, \
    verifying_context


def shown(failed):
    """A failure as the module reports it: ``[rule-id] message``."""
    return f"[{failed.rule}] {failed.message}"


def probe(host, port, security, ca_pem, expect_auth, timeout, address=None, where=None):
    """One probe; ``address`` (default: whatever ``host`` resolves to first) is where to connect,
    ``host`` the name the certificate must carry."""
    where = where or "%s:%d" % (host, port)
    context = None
    if security != "none":  # a ca_pem given for a plaintext relay is never parsed
        try:
            context = verifying_context(ca_pem=ca_pem or None)
        except UnusableCA as exc:
            raise Failed("cert-untrusted", f"{where}: {exc}")
    session = Session(host, port, security, context, timeout, address=address, where=where)
    try:
        caps = session.open()
        result = {"greeting": session.greeting, "auth": list(mechanisms(caps))}
        if security != "none":
            result["tls_version"] = session.sock.version()
            result["cert_not_after"] = session.sock.getpeercert().get("notAfter")
        if expect_auth and not result["auth"]:
            raise Failed("auth-not-offered", auth_not_offered(where, security))
        session.close(quit=True)
        return result
    finally:
        session.close()


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
        raise Failed("probe-unreachable", f"from {source}: relay '{relay}': {host} has no IPv4"
                                           f"{' or IPv6' if params['ipv6'] else ''} address (DNS?)")
    results, failures = [], []
    for address, family in found:
        shown = "[%s]" % address if ":" in address else address
        where = f"from {source}: relay '{relay}' {host} {family} {shown} port {port}"
        try:
            result = probe(host, port, params["security"], params["ca_pem"], params["expect_auth"],
                           params["timeout"], address, where)
        except Failed as failed:
            failures.append(failed)
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
        except Failed as failed:
            module.fail_json(msg=shown(failed), rule=failed.rule)
        if failures:
            module.fail_json(msg="; ".join(shown(f) for f in failures), rules=[f.rule for f in failures],
                             addresses=results)
        module.exit_json(changed=False, addresses=results)
    try:
        result = probe(p["host"], p["port"], p["security"], p["ca_pem"], p["expect_auth"], p["timeout"])
    except Failed as failed:
        module.fail_json(msg=shown(failed), rule=failed.rule)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
