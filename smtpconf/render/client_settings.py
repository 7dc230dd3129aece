"""What a mail client needs to know about an account's servers, shared by the discovery formats
(Thunderbird autoconfig, Outlook autodiscover, Apple mobileconfig).

Each format spells the same facts differently (``SSL`` / ``STARTTLS``, ``Encryption TLS``,
``UseSSL``); the spelling is the template's business. Here are only the facts, taken from the
model in one place so the three formats cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

from smtpconf.model import Account, Endpoint


class ServerSettings(NamedTuple):
    protocol: str  # smtp | imap | pop3
    host: str  # as DNS sees it: IDN labels as punycode A-labels
    port: int
    security: str  # starttls | tls (implicit TLS, "SSL") | none
    username: str
    authenticates: bool

    @property
    def key(self) -> tuple[str, str, int, str]:
        """Identity of the server itself, whoever logs in to it."""
        return (self.protocol, self.host.lower(), self.port, self.security)


def _authenticates(account: Account, endpoint: Endpoint) -> bool:
    # Submission on 587/465 always wants AUTH (RFC 6409 §4.3 lets a server require it, and every
    # provider does), even when the file does not say where the password comes from: the client
    # then asks its user. Only a plaintext server with no password is an open relay on a trusted
    # network, like a lab smarthost.
    return account.password is not None or endpoint.security != "none"


def outgoing(account: Account) -> ServerSettings:
    return ServerSettings("smtp", account.smtp.host_ascii, account.smtp.port, account.smtp.security,
                          account.username, _authenticates(account, account.smtp))


def incoming(account: Account) -> ServerSettings | None:
    if account.incoming is None:
        return None
    endpoint = account.incoming.endpoint
    # A mailbox is always logged in to.
    return ServerSettings(account.incoming.protocol, endpoint.host_ascii, endpoint.port, endpoint.security,
                          account.incoming.username, True)


def display_name(account: Account) -> str:
    """The name shown for the account: the person's name, else the address."""
    return account.name or account.email


def local_part(email: str) -> str:
    return email.rsplit("@", 1)[0]
