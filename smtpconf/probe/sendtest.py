"""``smtpconf send-test``: send one real message through an account or relay, step by step.

After configuring a mail client the advice is always "send a test message", and when it fails,
"check host, port and security first". This command does both and says at which step it failed:
secret (or token), resolve, connect, TLS, greeting, EHLO, AUTH, MAIL FROM, RCPT TO, DATA. Up to
AUTH the steps are the probe's (:mod:`smtpconf.probe.client`, through the shared SMTP dialogue), so
a server that fails there gets the words ``smtpconf check`` and the role's probe give it. On an
authentication failure it says what the provider expects (an app password, an authorization code,
SMTP AUTH enabled, OAuth2).

A file with lint errors is refused before anything happens, by the same gate as ``render``.

The password, or with ``auth: oauth2`` the access token (from ``smtpconf.oauth2``), is obtained
only here, sent only over TLS (unless ``--allow-plaintext``), and never printed: the output names
where it came from (``env GMAIL_APP_PASSWORD``), not what it is. OAuth2 logins use the model's
mechanism, XOAUTH2 or OAUTHBEARER (:mod:`smtpconf.probe.sasl`), and a refusal is decoded.
"""

from __future__ import annotations

import asyncio
import shlex
import smtplib
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from dataclasses import dataclass
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Callable, NamedTuple, TypeVar
from urllib.parse import urlsplit

from smtpconf.errors import UsageError
from smtpconf.findings import printable
from smtpconf.lint import gate, lint_path
from smtpconf.model import Config, Endpoint, Login, to_ascii_host
from smtpconf.probe.auth import oauth2_login, password_login
from smtpconf.probe.client import connect
from smtpconf.probe.steps import Clock, SessionTimeout, StepFailed, fail, lost, shown, step, text, time_limit

T = TypeVar("T")
OVERTIME = 1.0  # seconds past --timeout before the session is cut off in the middle of a read


class Target(NamedTuple):
    what: str  # "relay 'lab'" / "account a@example.com"
    endpoint: Endpoint
    login: Login  # the model's: an account without a credential of its own has its relay's
    sender: str | None
    selector: tuple[str, str]  # ("--relay", "lab"): how the command line named it


@dataclass(frozen=True)
class SendTestOptions:
    """What ``smtpconf send-test`` was asked to do: one of ``account`` and ``relay``."""

    file: str
    to: str
    account: str | None = None
    relay: str | None = None
    sender: str | None = None  # --from; None: the account's address or the relay's username
    timeout: float = 20.0  # the whole session, secret or token included (the CLI checks it is positive)
    nameserver: str | None = None
    allow_plaintext: bool = False


def execute(args: SendTestOptions) -> int:
    result = lint_path(Path(args.file), args.file)
    config = gate(result, "send-test", "nothing was sent")
    if config is None:
        return 1
    target = _target(config, args)
    raw_sender = args.sender or target.sender
    if not raw_sender:
        raise UsageError(f"{target.what} has no address to send from: give --from ADDR")
    sender = _address(raw_sender, "--from" if args.sender else f"the address of {target.what}")
    to = _address(args.to, "--to")
    ep = target.endpoint
    print(shown(f"smtpconf send-test: {target.what} via {ep.host_ascii}:{ep.port} ({ep.security}) → {to.text}"))
    clock = Clock(args.timeout)
    try:
        # The steps' own limits (what is left of the clock) speak first; this catches the rest.
        with time_limit(args.timeout + OVERTIME):
            _send(target, sender, to, args, config.doc.path.parent, clock)
    except StepFailed:
        return 1
    except SessionTimeout:
        fail("timeout", f"the session took longer than --timeout {args.timeout:g}s in all (a server answering "
                        "very slowly, a few bytes at a time?)")
        return 1
    return 0


class Address(NamedTuple):
    """An envelope address with its domain in A-labels, which every server takes; ``utf8`` when
    the local part is not ASCII: that needs the server's SMTPUTF8 (RFC 6531)."""

    text: str
    utf8: bool


def _address(value: str, what: str) -> Address:
    local, at, domain = value.rpartition("@")
    if not (at and local and domain) or any(not ch.isprintable() or ch.isspace() or ch in "<>" for ch in value):
        raise UsageError(f"{what} '{printable(value)}' is not a mail address (LOCAL@DOMAIN)")
    try:
        domain = to_ascii_host(domain)
    except UnicodeError:
        raise UsageError(f"{what} '{printable(value)}': the domain is not a valid IDN") from None
    return Address(f"{local}@{domain}", not local.isascii())


def _target(config: Config, args: SendTestOptions) -> Target:
    if args.relay:
        relay = config.relays.get(args.relay)
        if relay is None:
            raise UsageError(f"no relay '{args.relay}' in {args.file} (relays: {', '.join(config.relays) or 'none'})")
        sender = relay.username if relay.username and "@" in relay.username else None
        return Target(f"relay '{relay.name}'", relay.endpoint, relay.login, sender, ("--relay", relay.name))
    assert args.account is not None
    wanted = args.account.lower()
    for account in config.accounts:
        if account.email.lower() == wanted:
            return Target(f"account {account.email}", account.smtp, account.login, account.email,
                          ("--account", account.email))
    known = ", ".join(a.email for a in config.accounts) or "none"
    raise UsageError(f"no account '{args.account}' in {args.file} (accounts: {known})")


def _send(target: Target, sender: Address, to: Address, args: SendTestOptions, base_dir: Path,
          clock: Clock) -> None:
    ep = target.endpoint
    oauth2 = target.login.auth == "oauth2"
    # Refused before the secret is resolved: a `command:` secret (a password manager) must not
    # even run, nor a token be fetched, for a message that will not be sent.
    if (oauth2 or target.login.password is not None) and ep.security == "none" and not args.allow_plaintext:
        what = "the access token" if oauth2 else "the password"
        raise fail("TLS", f"refused: security is none, so {what} would cross the network in plaintext; "
                          "use starttls (587) or tls (465), or pass --allow-plaintext if you really mean it")
    secret = _token(target, args, base_dir, clock) if oauth2 else _secret(target, base_dir, clock)
    address = _resolve(ep, args, clock)
    client = connect(ep, address, clock)
    try:
        _dialogue(client, target, secret, sender, to, args)
    except SessionTimeout:
        client.close()  # a QUIT would wait for the server that ran the clock out
        raise
    finally:
        if client.sock is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError, SessionTimeout):
                client.close()


def _secret(target: Target, base_dir: Path, clock: Clock) -> str | None:
    from smtpconf.secrets import SecretError, resolve

    if target.login.password is None:
        step("secret", True, "no password in the file: sending without AUTH")
        return None
    try:
        value = resolve(target.login.password, base_dir, timeout=clock.left())
    except SecretError as exc:
        raise fail("secret", str(exc)) from None
    step("secret", True, f"password from {target.login.password.describe()}")
    return value


def _token(target: Target, args: SendTestOptions, base_dir: Path, clock: Clock) -> str:
    from smtpconf.oauth2 import OAuth2Error, access_token

    oauth2 = target.login.oauth2
    assert oauth2 is not None and oauth2.refresh_token is not None  # lint's oauth2-incomplete gates this
    try:
        # A refused refresh token (invalid_grant) names the login command to run: this one.
        token = access_token(target.login, base_dir, timeout=clock.left(),
                             login_command=_login_command(target, args))
    except OAuth2Error as exc:
        raise fail("token", str(exc)) from None
    step("token", True, f"access token from {urlsplit(oauth2.token_url or '').netloc} "
                        f"(refresh token from {oauth2.refresh_token.describe()})")
    return token


def _login_command(target: Target, args: SendTestOptions) -> str:
    return "smtpconf oauth2 login " + " ".join(shlex.quote(word) for word in (args.file, *target.selector))


def _resolve(ep: Endpoint, args: SendTestOptions, clock: Clock) -> str:
    from smtpconf.probe.resolver import Resolver

    async def lookup() -> Any:
        return await Resolver(args.nameserver, clock.left(), asyncio.Semaphore(4)).addresses(ep.host_ascii)

    answer = asyncio.run(lookup())
    if not answer.found:
        raise fail("resolve", f"{ep.host_ascii}: {answer.reason}"
                              + ("" if answer.status == "missing" else " (the resolver did not answer)"))
    step("resolve", True, f"{ep.host_ascii} → {', '.join(answer.records)}")
    return str(answer.records[0])


def _dialogue(client: smtplib.SMTP, target: Target, secret: str | None, sender: Address, to: Address,
              args: SendTestOptions) -> None:
    if secret is not None and target.login.auth == "oauth2":
        oauth2_login(client, target, secret, _login_command(target, args))
    elif secret is not None:
        password_login(client, target, secret)
    utf8 = sender.utf8 or to.utf8
    if utf8 and not client.has_extn("smtputf8"):
        raise fail("MAIL FROM", f"{sender.text if sender.utf8 else to.text} has a non-ASCII local part, which needs "
                                "SMTPUTF8 (RFC 6531), and the server does not offer it")
    message = _message(sender.text, to.text, target)
    options = ["SMTPUTF8"] if utf8 else []
    for name, call in (("MAIL FROM", lambda: client.mail(sender.text, options)),
                       ("RCPT TO", lambda: client.rcpt(to.text))):
        code, reply = _step(name, call)
        if code >= 400:
            raise fail(name, f"{code} {text(reply)}" + _why_refused(name, code, secret))
        step(name, True, f"{code} {text(reply)}")
    # With SMTPUTF8 the headers carry the addresses in UTF-8 (RFC 6532), not as encoded words.
    data = message.as_bytes(policy=SMTPUTF8 if utf8 else SMTP)
    code, reply = _step("DATA", lambda: client.data(data))
    if code >= 400:
        raise fail("DATA", f"{code} {text(reply)}")
    step("DATA", True, f"{code} {text(reply)}: delivered to the server; check {to.text}'s inbox (and spam folder)")


def _step(name: str, call: Callable[[], T]) -> T:
    """One SMTP command: smtplib raises for some refusals (a 554 to DATA) and for a server that
    hangs up or stops answering; each is that step's FAIL line, never a traceback."""
    try:
        return call()
    except smtplib.SMTPResponseException as exc:
        raise fail(name, f"{exc.smtp_code} {text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise fail(name, lost(exc)) from None


def _why_refused(name: str, code: int, secret: str | None) -> str:
    if code == 530 or (name == "MAIL FROM" and secret is None and code in (550, 553, 554)):
        return " (the server wants AUTH first: add username and password to the file)"
    if name == "MAIL FROM":
        return " (providers only let you send as your own address: check --from)"
    return ""


def _message(sender: str, to: str, target: Target) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = "smtpconf test message"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    ep = target.endpoint
    message.set_content(f"This test message was sent by `smtpconf send-test` through {target.what}\n"
                        f"({ep.host_ascii}:{ep.port}, {ep.security}). If you can read it, sending works.\n")
    return message
