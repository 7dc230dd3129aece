"""What a mail client needs to know about an account's servers, shared by the discovery formats
(Thunderbird autoconfig, Outlook autodiscover, Apple mobileconfig).

Each format spells the same facts differently (``SSL`` / ``STARTTLS``, ``Encryption TLS``,
``UseSSL``); the spelling is the template's business. Here are only the facts, taken from the
model in one place so the three formats cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

from smtpconf.model import Account, MailProtocol, OAuth2, Security


class ServerSettings(NamedTuple):
    protocol: MailProtocol
    host: str  # as DNS sees it: IDN labels as punycode A-labels
    port: int
    security: Security  # "tls": implicit TLS, "SSL" to the clients
    username: str
    authenticates: bool
    oauth2: OAuth2 | None = None  # the login's identity provider, when it logs in with OAuth2

    @property
    def key(self) -> tuple[str, str, int, str]:
        """Identity of the server itself, whoever logs in to it."""
        return (self.protocol, self.host.lower(), self.port, self.security)


def _oauth2(account: Account) -> OAuth2 | None:
    return account.login.oauth2 if account.login.auth == "oauth2" else None


def outgoing(account: Account) -> ServerSettings:
    # Who logs in, and whether at all, is the model's answer (Login): an account without a
    # credential of its own logs in as its relay does.
    return ServerSettings("smtp", account.smtp.host_ascii, account.smtp.port, account.smtp.security,
                          account.username, account.login.authenticates, _oauth2(account))


def incoming(account: Account) -> ServerSettings | None:
    if account.incoming is None:
        return None
    endpoint = account.incoming.endpoint
    # A mailbox is always logged in to, with the account's login (the model has no second one).
    return ServerSettings(account.incoming.protocol, endpoint.host_ascii, endpoint.port, endpoint.security,
                          account.incoming.username, True, _oauth2(account))


def display_name(account: Account) -> str:
    """The name shown for the account: the person's name, else the address."""
    return account.name or account.email


def local_part(email: str) -> str:
    return email.rsplit("@", 1)[0]
