"""OAuth2 logins, and the password logins that providers are retiring."""

from __future__ import annotations

from typing import Iterator

from smtpconf.model import Config, Endpoint, Login, endpoint_uses, preset_of
from smtpconf.rules import Hit, rule

# Microsoft 365 turns off Basic authentication for SMTP AUTH by default for existing tenants at
# the end of December 2026; Outlook.com has refused it since 2024-09-16.
_M365_DATE = "the end of December 2026"


def _logins(config: Config) -> Iterator[tuple[str, Login, str | None]]:
    """(who, login, provider) for each login the file writes."""
    for who, login, endpoint in config.written_logins():
        yield who, login, _provider(endpoint)


def _provider(endpoint: Endpoint) -> str | None:
    preset = preset_of(endpoint)
    return preset.name if preset else None


@rule("basic-auth-retired", "error")
def basic_auth_retired(config: Config) -> Iterator[Hit]:
    """A Microsoft login uses a password, which Microsoft no longer accepts for SMTP.

    Outlook.com (`outlook`) has refused passwords for SMTP AUTH since 16 September 2024: this is
    an error. Microsoft 365 (`office365`) turns off Basic authentication for SMTP AUTH by default
    for existing tenants at the end of December 2026, and announces its final removal for the
    second half of 2027, after which the server answers `550 5.7.30 Basic authentication is not
    supported for Client Submission`: a warning until then. Switch the login to `auth: oauth2`
    with an `oauth2:` block (`client_id`, `refresh_token`), and get the refresh token with
    `smtpconf oauth2 login` (docs/oauth2.md walks through registering the application).
    """
    for who, login, provider in _logins(config):
        if login.auth != "password" or provider not in ("outlook", "office365"):
            continue
        where = login.password.path if login.password is not None else login.path
        if provider == "outlook":
            yield Hit(where, f"{who}: Outlook.com refuses passwords for SMTP since 2024-09-16; use "
                             "auth: oauth2 (smtpconf oauth2 login)")
        else:
            yield Hit(where, f"{who}: Microsoft 365 turns off password SMTP AUTH by default at {_M365_DATE}; "
                             "use auth: oauth2 (smtpconf oauth2 login)", level="warning")


@rule("oauth2-incomplete", "error")
def oauth2_incomplete(config: Config) -> Iterator[Hit]:
    """An OAuth2 login lacks what getting a token needs.

    `auth: oauth2` needs the application's `client_id`, a `refresh_token` reference (`{file:}`
    is what `smtpconf oauth2 login` writes; `{env:}`, `{command:}` and `{vault:}` work too) and
    a `token_url`. The `gmail`, `outlook` and `office365` presets give the URLs; any other
    provider, or a private identity provider, needs `token_url` written in the `oauth2:` block.
    """
    for who, login, _ in _logins(config):
        oauth2 = login.oauth2
        if oauth2 is None or oauth2.complete:
            continue
        missing = [name for name, value in (("client_id", oauth2.client_id), ("refresh_token", oauth2.refresh_token),
                                            ("token_url", oauth2.token_url)) if not value]
        hint = "; no preset gives a token_url for this server" if not oauth2.token_url else ""
        yield Hit(oauth2.path, f"{who}: auth oauth2 needs {', '.join(missing)} in its oauth2 block{hint}",
                  at_key=True)


@rule("oauth2-plaintext", "error")
def oauth2_plaintext(config: Config) -> Iterator[Hit]:
    """An OAuth2 login would send its access token without encryption (`security: none`).

    A bearer token is as good as a password to whoever reads it, for as long as it lives (an
    hour at Microsoft and Google). XOAUTH2 and OAUTHBEARER only make sense over TLS: use
    `starttls` (587) or `tls` (465).
    """
    for use in endpoint_uses(config):
        if use.login.auth == "oauth2" and use.endpoint.security == "none":
            where = use.endpoint.path + (("security",) if "security" in use.endpoint.explicit else ())
            yield Hit(where, f"{use.what}: security none would send the OAuth2 access token in the clear; "
                             "use starttls (587) or tls (465)")
