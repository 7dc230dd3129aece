"""Thunderbird autoconfig (``config-v1.1.xml``, the ISPDB format).

Two kinds of file:

* per account, ``thunderbird/<email>.xml`` (serve it as config-v1.1.xml): the exact settings of one mailbox, with its
  real username, for handing to that person;
* per account domain, ``thunderbird/domains/<domain>/mail/config-v1.1.xml``: for hosting at
  ``https://autoconfig.<domain>/mail/config-v1.1.xml``, where Thunderbird looks first. It serves
  everyone in the domain, so usernames become the placeholders Thunderbird fills in
  (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``).

An OAuth2 login's servers say ``<authentication>OAuth2</authentication>``, and the file carries the
``<oAuth2>`` element the ISPDB's Google and Microsoft entries have (issuer, scope, authURL,
tokenURL; after ``</emailProvider>``). Thunderbird signs in with its own registered application
for the identity providers it knows (it matches the issuer), not with the file's ``client_id``;
an identity provider without a preset has no issuer here, and gets no ``<oAuth2>`` element. A
domain file whose accounts log in to one server differently lists both methods, OAuth2 first, as
the ISPDB's Google entry does.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, NamedTuple

from smtpconf.model import Account, OAuth2
from smtpconf.render import RenderContext, RenderedFile, account_files, safe_name
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, local_part, outgoing

TARGET = "thunderbird"
TEMPLATE = "thunderbird/config-v1.1.xml.j2"
EMAIL_ADDRESS = "%EMAILADDRESS%"
EMAIL_LOCAL_PART = "%EMAILLOCALPART%"


def render(ctx: RenderContext) -> Iterator[RenderedFile]:
    yield from account_files(ctx, TARGET, TEMPLATE, ".xml", _account_data)
    for domain, members in _by_domain(ctx.config.accounts).items():
        yield RenderedFile(f"{TARGET}/domains/{safe_name(domain)}/mail/config-v1.1.xml",
                           ctx.template(TEMPLATE, **_domain_data(domain, members)), TARGET, "domain", domain)


class TemplateServer(NamedTuple):
    """A server as the template writes it."""

    element: str  # incomingServer | outgoingServer
    protocol: str
    host: str
    port: int
    security: str
    username: str  # the real one, or a placeholder in a domain file
    methods: tuple[str, ...]  # "oauth2", "password" or "none", in the order Thunderbird should try them
    usernames_differ: bool  # domain file: no placeholder fits every account (a comment says so)


def _method(settings: ServerSettings) -> str:
    return "oauth2" if settings.oauth2 else "password" if settings.authenticates else "none"


def _server(settings: ServerSettings, username: str, usernames_differ: bool = False,
            methods: tuple[str, ...] | None = None) -> TemplateServer:
    element = "outgoingServer" if settings.protocol == "smtp" else "incomingServer"
    return TemplateServer(element, settings.protocol, settings.host, settings.port, settings.security, username,
                          methods or (_method(settings),), usernames_differ)


def _oauth2_element(logins: list[OAuth2]) -> tuple[dict[str, Any] | None, bool]:
    """The ``<oAuth2>`` values for a file whose servers these logins use: (values or None, whether
    some login has another identity provider, which the one element cannot express). Scopes are
    those of every login with the first one's provider, in order."""
    known = [login for login in logins if login.issuer]
    if not known:
        return None, False
    first = known[0]
    same = [login for login in known if (login.issuer, login.authorize_url, login.token_url) ==
            (first.issuer, first.authorize_url, first.token_url)]
    scopes = list(dict.fromkeys(scope for login in same for scope in login.scopes))
    element = {"issuer": first.issuer, "scope": " ".join(scopes), "auth_url": first.authorize_url,
               "token_url": first.token_url}
    return element, len(same) < len(logins)


def _account_data(account: Account) -> dict[str, Any]:
    inbound = incoming(account)
    smtp = outgoing(account)
    domain = account.domain_ascii.lower()
    oauth2, oauth2_differs = _oauth2_element([smtp.oauth2] if smtp.oauth2 else [])
    return {
        "provider_id": domain,
        "domains": [domain],
        "display_name": display_name(account),
        "short_name": account.domain,
        "servers": ([_server(inbound, inbound.username)] if inbound else []) + [_server(smtp, smtp.username)],
        "oauth2": oauth2,
        "oauth2_differs": oauth2_differs,
        "oauth2_unknown": bool(smtp.oauth2) and oauth2 is None,
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
        # One account that must authenticate makes the server ask for a credential: each method
        # some account uses, OAuth2 first; "none" only when no account logs in.
        used = {_method(s) for _, s in uses}
        methods = tuple(m for m in ("oauth2", "password") if m in used) or ("none",)
        rendered.append(_server(uses[0][1], username, differ, methods))
    logins = list({id(a.login): a.login.oauth2 for a in members if a.login.auth == "oauth2" and a.login.oauth2}.values())
    oauth2, oauth2_differs = _oauth2_element(logins)
    return {
        "provider_id": domain,
        "domains": [domain],
        "display_name": members[0].domain,
        "short_name": members[0].domain,
        # Incoming first, then outgoing; each in the order of the file.
        "servers": sorted(rendered, key=lambda server: server.protocol == "smtp"),
        "oauth2": oauth2,
        "oauth2_differs": oauth2_differs,
        "oauth2_unknown": bool(logins) and oauth2 is None,
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
