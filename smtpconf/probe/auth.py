"""send-test's AUTH step: a password with PLAIN or LOGIN (smtplib), an OAuth2 access token with
the login's mechanism (:mod:`smtpconf.probe.sasl`), and, when the server says no, what that means
and what to do: the provider's note (app password, authorization code, SMTP AUTH), Microsoft's
refusals (``535 5.7.3`` to a token, ``550 5.7.30`` to a password), a decoded OAuth2 error.

Nothing here prints a secret: a password or token goes only into the SASL exchange, and text a
server sends back passes through :func:`smtpconf.probe.sasl.scrub`.
"""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

from smtpconf.model import preset_of
from smtpconf.probe.sasl import authenticate, password_exchange, scrub
from smtpconf.probe.steps import fail, lost, step, text

if TYPE_CHECKING:
    from smtpconf.probe.sendtest import Target


def password_login(client: smtplib.SMTP, target: Target, password: str) -> None:
    user = target.login.username or ""
    if not client.has_extn("auth"):
        raise fail("AUTH", "the server does not offer AUTH here" + provider_hint(target))
    mechanisms = offered(client)
    usable = [m for m in ("PLAIN", "LOGIN") if m in mechanisms]
    if not usable:
        oauth2 = ": use auth: oauth2" if {"XOAUTH2", "OAUTHBEARER"} & set(mechanisms) else ""
        raise fail("AUTH", f"the server offers AUTH {' '.join(mechanisms) or 'nothing'}, no password mechanism "
                           f"(PLAIN, LOGIN){oauth2}.{provider_hint(target)}")
    try:
        code, reply = password_exchange(client, usable[0], user, password)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise fail("AUTH", lost(exc)) from None
    except smtplib.SMTPException as exc:
        raise fail("AUTH", f"{scrub(str(exc), password)}{provider_hint(target)}") from None
    said = scrub(text(reply), password)
    if code != 235:
        advice = password_refused_advice(code, said)
        raise fail("AUTH", f"{code} {said}: the server refused user '{user}' with the "
                           f"password from {target.login.password.describe() if target.login.password else '?'}."
                           + (f" {advice}" if advice else provider_hint(target)))
    step("AUTH", True, f"{code} {said} as {user}")


def offered(client: smtplib.SMTP) -> list[str]:
    return client.esmtp_features.get("auth", "").upper().split()


def oauth2_login(client: smtplib.SMTP, target: Target, token: str, login_command: str) -> None:
    oauth2, ep = target.login.oauth2, target.endpoint
    assert oauth2 is not None
    mechanism, user = oauth2.sasl_name, target.login.username or ""
    if not client.has_extn("auth"):
        raise fail("AUTH", "the server does not offer AUTH here" + provider_hint(target))
    mechanisms = offered(client)
    if mechanism not in mechanisms:
        takes = " (it takes passwords: auth: password)" if {"PLAIN", "LOGIN"} & set(mechanisms) else ""
        raise fail("AUTH", f"the server offers AUTH {' '.join(mechanisms) or 'nothing'}, not {mechanism}{takes}: "
                           f"check host and port, or the oauth2 mechanism")
    try:
        result = authenticate(client, mechanism, user, token, ep.host_ascii, ep.port)
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise fail("AUTH", scrub(lost(exc), token)) from None
    except smtplib.SMTPException as exc:
        raise fail("AUTH", scrub(str(exc), token)) from None
    if result.code != 235:
        said = f"; its error: {result.challenge}" if result.challenge else ""
        grant = ", ".join(s for s in oauth2.scopes if s != "offline_access") or "the mail scope"
        advice = refusal_advice(mechanism, result.reply, result.challenge, login_command, grant)
        raise fail("AUTH", f"{result.code} {result.reply}{said}: {advice}")
    step("AUTH", True, f"{result.code} {result.reply} as {user} ({mechanism})")


def provider_hint(target: Target) -> str:
    preset = preset_of(target.endpoint)
    if preset is None:
        return " Check the username and password (and that this is the submission port)."
    return f" {preset.title}: {preset.note} ({preset.docs})"


def refusal_advice(mechanism: str, reply: str, challenge: str | None, login_command: str, grant: str) -> str:
    """What to do about a refused token. ``grant`` names what the application must be allowed
    (the preset's scopes)."""
    invalid = challenge is not None and ("401" in challenge or "invalid_token" in challenge)
    status = " (the token is invalid or expired)" if invalid else ""
    if "5.7.3" in reply.split():
        return (f"Microsoft refused the token{status}: is the application granted {grant}, and is SMTP AUTH "
                f"enabled for the mailbox (Microsoft 365 admin center > user > Mail > Manage email apps)? "
                f"If the grant changed, get a new refresh token: {login_command}")
    return (f"the server refused the {mechanism} token{status}: is the application granted {grant}, and does "
            f"the token belong to this username? Get a new refresh token: {login_command}")


def password_refused_advice(code: int, reply: str) -> str | None:
    """Advice for a password Microsoft refused, where OAuth2 is the way on; else None (the
    provider's note says what it wants)."""
    if (code == 550 and "5.7.30" in reply) or "basic authentication is not supported" in reply.lower():
        return ("Microsoft refuses passwords here: use auth: oauth2 (Basic authentication for SMTP AUTH is "
                "switched off for this tenant or mailbox)")
    if code == 535 and "5.7.3" in reply.split():
        # Microsoft's one answer to a wrong password, SMTP AUTH off for the mailbox, and Basic
        # authentication off for the tenant (the default for existing tenants from the end of 2026).
        return ("Microsoft refused the password: check it, that SMTP AUTH is enabled for the mailbox, and that "
                "the tenant still allows Basic authentication for SMTP AUTH; better, log in with auth: oauth2")
    return None
