"""References between parts of the file: relay names, provider presets, IDN host names.

This runs on the schema-valid data, before the model is built, because the model follows these
references (an account's relay, a relay's preset).
"""

from __future__ import annotations

from typing import Any, Iterator

from smtpconf.findings import Finding
from smtpconf.load import Document, JsonPath
from smtpconf.rules import declare

declare("unknown-reference", "error", """
A name refers to something that is not defined.

An account's `relay`, a fleet group's `relay` or `sender_relays` target, or a domain's `relays`
entry names a relay that is not under `relays:`; or a `provider` is not a built-in preset
(`smtpconf providers` lists them), or has no server for the requested incoming protocol. The
message suggests the closest defined name.
""")


def check_references(doc: Document) -> list[Finding]:
    from smtpconf.model import presets

    data: dict[str, Any] = doc.data
    relay_names = set(data.get("relays") or {})
    findings: list[Finding] = []

    def refer(name: str, path: JsonPath, what: str, known: set[str] | Any, *, key: bool = False) -> None:
        if name not in known:
            findings.append(doc.finding(path, "error", "unknown-reference",
                                        f"{what} '{name}' is not defined{_suggest(name, known)}", key=key))

    providers = presets()
    for name, relay in (data.get("relays") or {}).items():
        if "provider" in relay:
            refer(relay["provider"], ("relays", name, "provider"), "provider", providers)
    for index, account in enumerate(data.get("accounts") or []):
        path: JsonPath = ("accounts", index)
        if "relay" in account:
            refer(account["relay"], path + ("relay",), "relay", relay_names)
        if "provider" in account:
            refer(account["provider"], path + ("provider",), "provider", providers)
        incoming = account.get("incoming") or {}
        provider = incoming.get("provider")
        if provider is not None:
            refer(provider, path + ("incoming", "provider"), "provider", providers)
            protocol = incoming.get("protocol", "imap")
            if provider in providers and protocol not in providers[provider].incoming and "host" not in incoming:
                findings.append(doc.finding(path + ("incoming", "provider"), "error", "unknown-reference",
                                            f"provider '{provider}' has no {protocol} server; set `host`"))
    for group, raw in (data.get("fleet") or {}).items():
        refer(raw["relay"], ("fleet", group, "relay"), "relay", relay_names)
        for sender, relay in (raw.get("sender_relays") or {}).items():
            refer(relay, ("fleet", group, "sender_relays", sender), "relay", relay_names)
    for domain, raw in (data.get("domains") or {}).items():
        for index, relay in enumerate(raw.get("relays") or []):
            refer(relay, ("domains", domain, "relays", index), "relay", relay_names)

    for path, host in _hosts(data):
        problem = host_problem(host)
        if problem:
            findings.append(doc.finding(path, "error", "schema", f"`{path[-1]}`: {problem}"))
    return findings


def host_problem(host: str) -> str | None:
    """What the schema's pattern cannot say about a host name or address: whether an IP address is
    one, and whether IDN and punycode labels convert (IDNA)."""
    import ipaddress

    from smtpconf.model import to_ascii_host

    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "not a valid IPv6 address"
        return None
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "not a valid IPv4 address"
        return None
    try:
        for label in to_ascii_host(host).rstrip(".").split("."):
            if label[:4].lower() == "xn--":
                label.encode("ascii").decode("idna")  # punycode that does not decode is no name
    except UnicodeError:
        return "not a valid internationalized host name (IDNA): check each label"
    return None


def _hosts(data: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    for name, relay in (data.get("relays") or {}).items():
        if "host" in relay:
            yield ("relays", name, "host"), relay["host"]
    for index, account in enumerate(data.get("accounts") or []):
        if "host" in account:
            yield ("accounts", index, "host"), account["host"]
        domain = account["email"].rsplit("@", 1)[1]
        yield ("accounts", index, "email"), domain
        if "host" in (account.get("incoming") or {}):
            yield ("accounts", index, "incoming", "host"), account["incoming"]["host"]
    for domain in data.get("domains") or {}:
        yield ("domains", domain), domain


def _suggest(name: str, known: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; defined: {', '.join(sorted(known))}" if known else "; none are defined"
