"""What each provider expects as a credential."""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config, presets
from smtpconf.rules import Hit, rule


@rule("provider-credential-hint", "info")
def provider_credential_hint(config: Config) -> Iterator[Hit]:
    """What the provider expects as the password (info).

    The most common failure after host, port and security is the credential itself: Gmail wants an
    app password when 2-step verification is on, 163.com / 126.com / QQ Mail want an authorization
    code (授权码) rather than the login password, Office 365 wants SMTP AUTH enabled for the
    mailbox, SendGrid's username is the word `apikey`. Shown once per relay, and once per provider
    for accounts, so that a file with thousands of mailboxes does not repeat it thousands of times.
    """
    for relay in config.relays.values():
        provider = relay.endpoint.provider
        if provider and relay.password is not None:
            yield Hit(relay.path + ("provider",), f"relay '{relay.name}': {presets()[provider].note}")
    shown: set[str] = set()
    for account in config.accounts:
        provider = account.smtp.provider
        if provider and account.password is not None and provider not in shown and account.relay is None:
            shown.add(provider)
            yield Hit(account.path + ("provider",), f"accounts on {provider}: {presets()[provider].note}")
