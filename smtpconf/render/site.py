"""The discovery site of each domain (SPEC §9): what a web server publishes so that mail clients,
and the people setting them up, find the domain's settings.

For each ``domains`` entry that has accounts, ``site/www/<domain>/`` is the web root (copy it to
``site.root`` on the server, default ``/var/www/smtpconf/<domain>``) and
``site/nginx/<domain>.conf`` the server blocks that serve it:

=========================================================  =====================================
URL                                                        file under ``site/www/<domain>/``
=========================================================  =====================================
``https://autoconfig.D/mail/config-v1.1.xml``              ``mail/config-v1.1.xml`` (Thunderbird)
``https://D/.well-known/autoconfig/mail/config-v1.1.xml``  the same file
``https://autodiscover.D/autodiscover/autodiscover.xml``   ``autodiscover/autodiscover.xml`` (POST)
``https://autoconfig.D/profiles/<email>.mobileconfig``     the Apple profile of each account
``https://mta-sts.D/.well-known/mta-sts.txt``              ``mta-sts.txt`` (with ``mta_sts:``)
``https://autoconfig.D/`` and ``/setup/<email>.html``      the setup pages
=========================================================  =====================================

The Thunderbird file, the profiles and the Autodiscover answer are the other targets' content,
produced by their own code. The Autodiscover answer is static: it cannot echo the address Outlook
POSTs, so it names no user and no ``LoginName`` (Outlook then logs in with the address), and a
note says so when some account logs in with another name.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator, NamedTuple
from urllib.parse import quote

from smtpconf.model import Account, Config, DomainPolicy, preset_of
from smtpconf.render import Note, RenderContext, RenderedFile, listed, safe_name
from smtpconf.render import autodiscover, mobileconfig, thunderbird
from smtpconf.render.client_settings import ServerSettings, display_name, incoming, outgoing
from smtpconf.render.mta_sts import policy_text

TARGET = "site"
DEFAULT_ROOT = "/var/www/smtpconf/{domain}"
# Where certbot puts a certificate whose first name is autoconfig.DOMAIN
# (`certbot certonly -d autoconfig.D -d autodiscover.D -d mta-sts.D -d D`).
PLACEHOLDER_CERTIFICATE = "/etc/letsencrypt/live/autoconfig.{domain}/fullchain.pem"
PLACEHOLDER_KEY = "/etc/letsencrypt/live/autoconfig.{domain}/privkey.pem"

THUNDERBIRD_FILE = "mail/config-v1.1.xml"
AUTODISCOVER_FILE = "autodiscover/autodiscover.xml"
MTA_STS_FILE = "mta-sts.txt"
PAGE = "site/page.html.j2"

# What a person must get before typing the password field, by kind (the page words each kind).
APP_PASSWORD = ("gmail", "yahoo", "icloud", "fastmail", "zoho", "outlook")
AUTHORIZATION_CODE = ("163", "126", "qq")


def web_root(domain: str) -> str:
    """The directory of a domain's site inside the target: ``site/www/<domain>``."""
    return f"{TARGET}/www/{safe_name(domain)}"


class Url(NamedTuple):
    """Where a client asks for a file of the site."""

    method: str  # GET, or POST (Outlook's Autodiscover request)
    host: str
    path: str
    media_type: str

    def __str__(self) -> str:
        return f"https://{self.host}{self.path}"


def published_urls(domain: str, path: str) -> list[Url]:
    """The URLs that serve a file of ``site/www/<domain>/`` (``path`` relative to it), as
    ``nginx/DOMAIN.conf`` serves them."""
    autoconfig = f"autoconfig.{domain}"
    if path == THUNDERBIRD_FILE:
        return [Url("GET", autoconfig, "/" + path, "text/xml"),
                Url("GET", domain, "/.well-known/autoconfig/" + path, "text/xml")]
    if path == AUTODISCOVER_FILE:
        return [Url("POST", f"autodiscover.{domain}", "/" + path, "text/xml")]
    if path == MTA_STS_FILE:
        return [Url("GET", f"mta-sts.{domain}", "/.well-known/mta-sts.txt", "text/plain")]
    if path == "index.html":
        return [Url("GET", autoconfig, "/", "text/html")]
    if path.startswith("profiles/"):
        return [Url("GET", autoconfig, "/" + quote(path), "application/x-apple-aspen-config")]
    return [Url("GET", autoconfig, "/" + quote(path), "text/html")]  # setup/<email>.html


def render(ctx: RenderContext) -> Iterator[RenderedFile | Note]:
    config = ctx.config
    placeholders: list[str] = []
    empty: list[str] = []
    for policy in config.domains.values():
        members = config.accounts_of(policy)
        if not members:
            if policy.site is not None:
                empty.append(policy.host)
            continue
        site = policy.site
        if site is None or not (site.certificate and site.key):
            placeholders.append(policy.host)
        yield from _domain_files(ctx, policy, members)
    if placeholders:
        names = listed(placeholders)
        yield Note(f"site: no certificate and key in `site:` of {names}: nginx/DOMAIN.conf names the "
                   f"placeholder {PLACEHOLDER_CERTIFICATE.format(domain='DOMAIN')} (one certificate for "
                   f"autoconfig.DOMAIN, autodiscover.DOMAIN, mta-sts.DOMAIN and DOMAIN)")
    if empty:
        yield Note(f"site: no site for {listed(empty)}: no account has an address there")


def _domain_files(ctx: RenderContext, policy: DomainPolicy, members: list[Account]) -> Iterator[RenderedFile | Note]:
    domain = policy.host
    base = web_root(domain)

    def file(path: str, content: bytes) -> RenderedFile:
        return RenderedFile(f"{base}/{path}", content, TARGET, "domain", domain)

    yield file(THUNDERBIRD_FILE, ctx.template(thunderbird.TEMPLATE, **thunderbird._domain_data(domain, members)))

    answer, outlook, notes = _autodiscover(ctx, domain, members)
    yield from notes
    if answer is not None:
        yield file(AUTODISCOVER_FILE, answer)

    profiles = {}
    for profile in _profiles(ctx.config, members):
        name = profile.path.rpartition("/")[2]
        profiles[profile.owner] = "profiles/" + name
        yield file(profiles[profile.owner], profile.content)

    sts = policy_text(policy.mta_sts) if policy.mta_sts is not None else None
    if sts is not None:
        yield file(MTA_STS_FILE, sts.encode("utf-8"))

    pages = [_account_page(account, profiles.get(account.email), account.email in outlook) for account in members]
    common = {"domain": domain, "lang": policy.lang}
    yield file("index.html", ctx.template(PAGE, kind="overview", accounts=pages, account=None, **common))
    for page in pages:
        yield file(page["file"], ctx.template(PAGE, kind="account", account=page, accounts=(), **common))

    site = policy.site
    root = (site.root if site and site.root else None) or DEFAULT_ROOT.format(domain=domain)
    certificate, key = (site.certificate, site.key) if site and site.certificate and site.key else (
        PLACEHOLDER_CERTIFICATE.format(domain=domain), PLACEHOLDER_KEY.format(domain=domain))
    yield RenderedFile(f"{TARGET}/nginx/{safe_name(domain)}.conf", ctx.template(
        "site/nginx.conf.j2", domain=domain, www=base.partition("/")[2], root=root.rstrip("/") or "/",
        certificate=certificate, key=key, placeholder=not (site and site.certificate and site.key),
        autodiscover=answer is not None, mta_sts=sts is not None,
        mta_sts_file=MTA_STS_FILE, thunderbird_file=THUNDERBIRD_FILE, autodiscover_file=AUTODISCOVER_FILE,
    ), TARGET, "domain", domain)


def _autodiscover(ctx: RenderContext, domain: str,
                  members: list[Account]) -> tuple[bytes | None, set[str], list[Note]]:
    """One static POX answer for the domain: the first account's servers, without the user block
    and ``LoginName`` a static file cannot know, and the accounts it sets up right (their servers,
    logging in with their address). OAuth2 accounts have no place in it (see the autodiscover
    target)."""
    usable = [a for a in members if a.login.auth != "oauth2"]
    if not usable:
        return None, set(), []
    notes = []
    first = usable[0]
    servers = [s._replace(username="") for s in (incoming(first), outgoing(first)) if s is not None]
    others = [a.email for a in usable[1:] if _server_keys(a) != _server_keys(first)]  # Outlook gets the wrong servers
    if others:
        notes.append(Note(f"site: the Autodiscover answer of {domain} gives the servers of {first.email}; "
                          f"{listed(others)} use other servers: Outlook needs them typed in (or the "
                          f"autodiscover target's own files)"))
    named = [a.email for a in usable if any(s.username.lower() != a.email.lower()
                                            for s in (incoming(a), outgoing(a)) if s is not None)]
    if named:
        notes.append(Note(f"site: the Autodiscover answer of {domain} has no LoginName (a static file cannot "
                          f"echo the address Outlook sends), so Outlook logs in with the address; "
                          f"{listed(named)} log in with another user name and must type it in Outlook"))
    right = {a.email for a in usable if a.email not in others and a.email not in named}
    return ctx.template(autodiscover.TEMPLATE, email="", display_name="", servers=servers), right, notes


def _server_keys(account: Account) -> tuple[Any, ...]:
    return tuple(s.key for s in (incoming(account), outgoing(account)) if s is not None)


def _profiles(config: Config, members: list[Account]) -> list[RenderedFile]:
    """The mobileconfig target's profiles of these accounts, by the target's own decisions (an
    account without an incoming server, or one the target leaves out, gets none); its notes are
    already said by the mobileconfig target."""
    sub = RenderContext(replace(config, accounts=tuple(members)))
    return [item for item in mobileconfig.render(sub) if isinstance(item, RenderedFile)]


def _server(settings: ServerSettings | None) -> dict[str, Any] | None:
    if settings is None:
        return None
    return {"protocol": settings.protocol, "host": settings.host, "port": settings.port,
            "security": settings.security, "username": settings.username,
            "auth": "oauth2" if settings.oauth2 else "password" if settings.authenticates else "none"}


def credential_kind(account: Account) -> str:
    """What the person types as the password: oauth2 (no password: sign in), app-password,
    authorization-code (163/126/QQ 授权码), smtp-auth (Microsoft 365), password or none."""
    if account.login.auth == "oauth2":
        return "oauth2"
    if not account.login.authenticates:
        return "none"
    preset = preset_of(account.smtp)
    name = preset.name if preset else ""
    if name in AUTHORIZATION_CODE:
        return "authorization-code"
    if name in APP_PASSWORD:
        return "app-password"
    if name == "office365":
        return "smtp-auth"
    return "password"


def _account_page(account: Account, profile: str | None, autodiscovered: bool) -> dict[str, Any]:
    preset = preset_of(account.smtp)
    file = f"setup/{safe_name(account.email)}.html"
    return {
        "email": account.email,
        "name": display_name(account),
        "file": file,
        "href": quote(file),  # relative, from the domain overview
        "smtp": _server(outgoing(account)),
        "incoming": _server(incoming(account)),
        "credential": credential_kind(account),
        "provider": preset.title if preset else None,
        "note": preset.note if preset else None,
        "docs": preset.docs if preset else None,
        "profile": quote("../" + profile) if profile else None,  # relative, from the account's page
        # Outlook: found by the domain's Autodiscover answer, typed in by hand, or signed in (OAuth2)
        "outlook": "oauth2" if account.login.auth == "oauth2" else "auto" if autodiscovered else "manual",
    }
