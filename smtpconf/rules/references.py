"""References between parts of the file: relay names, provider presets, IDN host names.

This runs on the schema-valid data, before the model is built, because the model follows these
references (an account's relay, a relay's preset).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from smtpconf.findings import Finding, printable
from smtpconf.load import Document, JsonPath
from smtpconf.rules import declare

declare("unknown-reference", "error", family=__name__, doc="""
A name refers to something that is not defined.

An account's `relay`, a name in a fleet group's `relay`, `sender_relays` or `recipient_relays` (each
a name or a list of names), or a domain's `relays` entry names a relay that is not under `relays:`; or a `provider` is not a built-in preset
(`smtpconf providers` lists them), or has no server for the requested incoming protocol. The
message suggests the closest defined name.
""")


declare("relay-list-duplicate", "error", family=__name__, doc="""
A fleet group's relay list names one relay twice.

`relay`, a `sender_relays` value and a `recipient_relays` value may be a list of relays, tried in
order: Postfix moves to the next one when a relay refuses the connection or answers 4xx. The same
relay twice only repeats the failed attempt (and its wait) before the next relay is tried. Remove
the repeated name.
""")


def check_references(doc: Document) -> list[Finding]:
    from smtpconf.model import presets

    data: dict[str, Any] = doc.data
    relay_names = Names(data.get("relays") or {})
    findings: list[Finding] = []

    def refer(name: str, path: JsonPath, what: str, known: Names, *, key: bool = False) -> None:
        if name not in known:
            findings.append(doc.found(path, "unknown-reference",
                                      f"{what} '{printable(name)}' is not defined{known.hint(name)}", key=key))

    providers = Names(presets())
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
            if provider in providers and protocol not in presets()[provider].incoming and "host" not in incoming:
                findings.append(doc.found(path + ("incoming", "provider"), "unknown-reference",
                                          f"provider '{provider}' has no {protocol} server; set `host`"))
    for group, raw in (data.get("fleet") or {}).items():
        for path, value in _relay_lists(group, raw):
            if isinstance(value, str):
                refer(value, path, "relay", relay_names)
                continue
            if not value:  # the schema validator has no minItems
                findings.append(doc.found(path, "schema", "an empty relay list: name at least one relay"))
            for index, relay in enumerate(value):
                refer(relay, path + (index,), "relay", relay_names)
                if relay in value[:index]:
                    findings.append(doc.found(path + (index,), "relay-list-duplicate",
                                              f"relay '{printable(relay)}' is already item {value.index(relay) + 1} "
                                              "of this list; Postfix would try it twice"))
        for domain in raw.get("recipient_relays") or {}:
            labels = domain.removeprefix("@").rstrip(".").split(".")
            if all(label.isdigit() for label in labels):  # the schema's host name pattern lets 192.0.2.1 through
                findings.append(doc.found(("fleet", group, "recipient_relays", domain), "schema",
                                          f"recipient domain '{printable(domain)}' is an IP address, not a "
                                          "domain", key=True))
    for domain, raw in (data.get("domains") or {}).items():
        for index, relay in enumerate(raw.get("relays") or []):
            refer(relay, ("domains", domain, "relays", index), "relay", relay_names)

    for path, host in _hosts(data):
        problem = host_problem(host)
        if problem:
            label = path[-2] if isinstance(path[-1], int) else path[-1]  # `hosts`, not `0`
            findings.append(doc.found(path, "schema", f"`{label}`: {problem}"))
    return findings


def _relay_lists(group: str, raw: dict[str, Any]) -> Iterator[tuple[JsonPath, Any]]:
    """A fleet group's relay values (a name or a list of names) with their paths."""
    yield ("fleet", group, "relay"), raw["relay"]
    for key in ("sender_relays", "recipient_relays"):
        for entry, value in (raw.get(key) or {}).items():
            yield ("fleet", group, key, entry), value


def host_problem(host: str) -> str | None:
    """What the schema's pattern cannot say about a host name or address: whether an IP address is
    one, and whether IDN and punycode labels convert (IDNA)."""
    import ipaddress

    from smtpconf.model import to_ascii_host

    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            name, _, port = host.rpartition(":")
            if port.isdigit() and ":" not in name:  # an inventory reads it as host and SSH port
                return f"'{printable(host)}' is HOST:PORT, not a host; write the host only"
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
    for group, raw in (data.get("fleet") or {}).items():
        for domain in raw.get("recipient_relays") or {}:
            yield ("fleet", group, "recipient_relays", domain), domain.removeprefix("@")
    for group, raw in (data.get("fleet") or {}).items():  # Ansible inventory host names
        for index, host in enumerate(raw.get("hosts") or []):
            yield ("fleet", group, "hosts", index), host


class Names:
    """The defined names of one kind, and the closest of them to a name that is not one.

    A file may define thousands of relays and misspell every reference: comparing each unknown
    name with every defined one (difflib) is quadratic, minutes for a pull request. Up to
    ``FEW`` names that is still what happens; beyond, the candidates come from an index of each
    name's one-character deletions (lower-cased), which holds every name within one edit of the
    unknown name, and two edits when one is on each side (``numbr-1x`` for ``number-1``): a
    typical typo. Only those few candidates are compared. Names longer than ``INDEXED`` are
    indexed whole, which keeps the index linear in the file.
    """

    FEW = 100
    INDEXED = 40
    CANDIDATES = 50  # compared at most, in name order: a file of near-identical names stays linear

    def __init__(self, names: Iterable[str]) -> None:
        self._names = set(names)
        self._sorted: list[str] | None = None
        self._index: dict[str, list[str]] | None = None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def hint(self, name: str) -> str:
        """The end of an "is not defined" message: the closest name, or some of the defined ones."""
        if self._sorted is None:
            self._sorted = sorted(self._names)
        close = self._closest(name)
        if close is not None:
            return f"; did you mean '{printable(close)}'?"
        if not self._sorted:
            return "; none are defined"
        shown = ", ".join(printable(n) for n in self._sorted[:10])
        more = f" and {len(self._sorted) - 10} more" if len(self._sorted) > 10 else ""
        return f"; defined: {shown}{more}"

    def _closest(self, name: str) -> str | None:
        import difflib

        assert self._sorted is not None
        if len(self._sorted) <= self.FEW:
            close = difflib.get_close_matches(name, self._sorted, n=1)
            return close[0] if close else None
        if self._index is None:
            self._index = {}
            for known in self._sorted:
                for key in _deletions(known.lower(), self.INDEXED):
                    self._index.setdefault(key, []).append(known)
        found: set[str] = set()
        for key in _deletions(name.lower(), self.INDEXED):
            found.update(self._index.get(key, ()))
        candidates = sorted(found)[: self.CANDIDATES]
        close = difflib.get_close_matches(name, candidates, n=1)
        return close[0] if close else None


def _deletions(text: str, longest: int) -> set[str]:
    """``text`` and every string one character shorter; only ``text`` when it is longer than ``longest``."""
    if len(text) > longest:
        return {text}
    return {text, *(text[:i] + text[i + 1:] for i in range(len(text)))}
