"""Thunderbird autoconfig (``config-v1.1.xml``, the ISPDB format).

Two kinds of file:

* per account, ``thunderbird/<email>.xml`` (serve it as config-v1.1.xml): the exact settings of one mailbox, with its
  real username, for handing to that person;
* per account domain, ``thunderbird/domains/<domain>/mail/config-v1.1.xml``: for hosting at
  ``https://autoconfig.<domain>/mail/config-v1.1.xml``, where Thunderbird looks first. It serves
  everyone in the domain, so usernames become the placeholders Thunderbird fills in
  (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple

from smtpconf.model import Account
from smtpconf.render import RenderContext, RenderedFile, account_files, safe_name
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, local_part, outgoing

TARGET = "thunderbird"
TEMPLATE = "thunderbird/config-v1.1.xml.j2"
EMAIL_ADDRESS = "%EMAILADDRESS%"
EMAIL_LOCAL_PART = "%EMAILLOCALPART%"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    yield from account_files(ctx, TARGET, TEMPLATE, ".xml", _account_data)
    domains = _by_domain(ctx.config.accounts)
    data = [_domain_data(domain, members) for domain, members in domains.items()]
    for domain, content in zip(domains, ctx.template_many(TEMPLATE, data)):
        yield RenderedFile(f"{TARGET}/domains/{safe_name(domain)}/mail/config-v1.1.xml", content,
                           TARGET, "domain", domain)


class Server(NamedTuple):
    """A server as the template writes it."""

    element: str  # incomingServer | outgoingServer
    protocol: str
    host: str
    port: int
    security: str
    username: str  # the real one, or a placeholder in a domain file
    authenticates: bool
    usernames_differ: bool  # domain file: no placeholder fits every account (a comment says so)


def _server(settings: ServerSettings, username: str, usernames_differ: bool = False) -> Server:
    element = "outgoingServer" if settings.protocol == "smtp" else "incomingServer"
    return Server(element, settings.protocol, settings.host, settings.port, settings.security, username,
                  settings.authenticates, usernames_differ)


def _account_data(account: Account) -> dict[str, Any]:
    inbound = incoming(account)
    smtp = outgoing(account)
    domain = account.domain_ascii.lower()
    return {
        "provider_id": domain,
        "domains": [domain],
        "display_name": display_name(account),
        "short_name": account.domain,
        "servers": ([_server(inbound, inbound.username)] if inbound else []) + [_server(smtp, smtp.username)],
    }


def _by_domain(accounts: Iterable[Account]) -> dict[str, list[Account]]:
    """Accounts grouped by domain as DNS sees it (``例子.测试`` and its A-label are one domain),
    in the order of the file."""
    groups: dict[str, list[Account]] = {}
    for account in accounts:
        groups.setdefault(account.domain_ascii.lower(), []).append(account)
    return groups


def _domain_data(domain: str, members: list[Account]) -> dict[str, Any]:
    # Each distinct server once, in the order of the file: the first is Thunderbird's default.
    servers: dict[tuple[str, str, int, str], list[tuple[str, ServerSettings]]] = {}
    for account in members:
        for settings in (incoming(account), outgoing(account)):
            if settings is not None:
                servers.setdefault(settings.key, []).append((account.email, settings))
    rendered = []
    for uses in servers.values():
        username, differ = _username_placeholder([(email, s.username) for email, s in uses])
        first = uses[0][1]
        # One account that must authenticate makes the server ask for a password.
        rendered.append(_server(first._replace(authenticates=any(s.authenticates for _, s in uses)),
                                username, differ))
    return {
        "provider_id": domain,
        "domains": [domain],
        "display_name": members[0].domain,
        "short_name": members[0].domain,
        # Incoming first, then outgoing; each in the order of the file.
        "servers": sorted(rendered, key=lambda server: server.protocol == "smtp"),
    }


def _username_placeholder(logins: list[tuple[str, str]]) -> tuple[str, bool]:
    """The username a domain-wide file can give: (text, whether the accounts' usernames differ in a
    way no placeholder expresses)."""
    if all(username.lower() == email.lower() for email, username in logins):
        return EMAIL_ADDRESS, False
    if all(username.lower() == local_part(email).lower() for email, username in logins):
        return EMAIL_LOCAL_PART, False
    usernames = {username for _, username in logins}
    if len(usernames) == 1:  # a fixed login shared by the domain (SendGrid's "apikey")
        return usernames.pop(), False
    return EMAIL_ADDRESS, True
