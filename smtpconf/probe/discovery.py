"""``check`` for a domain with ``site:``: fetch what its discovery site publishes and compare it with
what the file renders (SPEC §9).

Every file of the ``site`` target is fetched from the URL a client asks (``site.published_urls``),
over HTTPS, with the name's address from the resolver clients use (``--nameserver`` when given),
trusting the system's CAs and ``--ca-file``, each fetch bounded in time by ``--timeout`` and in
size. A file that differs is ``discovery-drift`` naming the first setting that differs (a
server's host, port, security or user name), not only "the bytes differ"; a URL that cannot be
fetched is ``discovery-unreachable`` with why. The served MTA-STS policy must parse and its ``mx``
lines must cover the domain's MX records (``mta-sts-invalid``), and the ``_mta-sts`` record's id
must be the one of the policy the file renders.
"""

from __future__ import annotations

import asyncio
import plistlib
import ssl
import xml.etree.ElementTree as ElementTree
from functools import lru_cache
from typing import Any, NamedTuple

from smtpconf.model import Config, DomainPolicy, canonical_host
from smtpconf.probe.hit import LiveHit
from smtpconf.probe.observations import SiteSeen, UrlOutcome, UrlSeen
from smtpconf.probe.resolver import Resolver
from smtpconf.render.mta_sts import PolicyError, mx_matches, parse_policy, policy_id
from smtpconf.render.site import AUTODISCOVER_FILE, MTA_STS_FILE, THUNDERBIRD_FILE, Url, published_urls, web_root

MAX_REPLY = 4 * 1024 * 1024  # far above any file the site target writes
# What Outlook POSTs (MS-OXDSCLI §2.2.3): the address is the placeholder a static answer ignores.
OUTLOOK_REQUEST = (b'<?xml version="1.0" encoding="utf-8"?>\r\n'
                   b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
                   b'<Request><EMailAddress>smtpconf-check@invalid</EMailAddress><AcceptableResponseSchema>'
                   b'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'
                   b'</AcceptableResponseSchema></Request></Autodiscover>\r\n')


class SiteOptions(NamedTuple):
    timeout: float
    ca_file: str | None = None
    https_port: int = 443  # another port only for a test server


class Reply(NamedTuple):
    status: int
    media_type: str
    body: bytes


class FetchError(Exception):
    """Why a URL could not be fetched, in words for the finding."""


async def check_sites(config: Config, resolver: Resolver, limit: asyncio.Semaphore,
                      options: SiteOptions) -> tuple[list[LiveHit], tuple[SiteSeen, ...]]:
    """The findings, and what was fetched (for check's report of what it verified)."""
    policies = [p for p in config.domains.values() if p.site is not None and config.accounts_of(p)]
    if not policies:
        return [], ()
    from smtpconf.render import render

    # What the file renders now: the one answer to "what should be served" (the site target's own).
    rendered = render(config, ["site"], notes=[])
    context = _tls_context(options.ca_file)
    jobs = []
    for policy in policies:
        prefix = web_root(policy.host) + "/"
        files = {f.path[len(prefix):]: f.content for f in rendered if f.path.startswith(prefix)}
        jobs.append(_DomainSite(config, policy, files, resolver, limit, options, context).run())
    done = await asyncio.gather(*jobs)
    return [hit for hits, _ in done for hit in hits], tuple(seen for _, seen in done)


@lru_cache(maxsize=None)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _DomainSite:
    def __init__(self, config: Config, policy: DomainPolicy, files: dict[str, bytes], resolver: Resolver,
                 limit: asyncio.Semaphore, options: SiteOptions, context: ssl.SSLContext) -> None:
        self.config, self.policy, self.files = config, policy, files
        self.resolver, self.limit, self.options, self.context = resolver, limit, options, context
        self.hits: list[LiveHit] = []
        self.served_policy: bytes | None = None

    def hit(self, rule: str, message: str) -> None:
        assert self.policy.site is not None
        self.hits.append(LiveHit(self.policy.site.path, rule, message))

    async def run(self) -> tuple[list[LiveHit], SiteSeen]:
        urls = [(url, path, content) for path, content in self.files.items()
                for url in published_urls(self.policy.host, path)]
        outcomes = await asyncio.gather(*(self.compare(url, path, content) for url, path, content in urls))
        if MTA_STS_FILE in self.files:
            await self.mta_sts()
        seen = tuple(UrlSeen(url.method, str(url), outcome) for (url, _, _), outcome in zip(urls, outcomes))
        return self.hits, SiteSeen(self.policy.host, seen)

    async def compare(self, url: Url, path: str, expected: bytes) -> UrlOutcome:
        try:
            reply = await self.fetch(url)
        except FetchError as exc:
            self.hit("discovery-unreachable", f"{url}: {exc}")
            return "unreachable"
        if reply.status != 200:
            self.hit("discovery-unreachable", f"{url}: HTTP {reply.status}"
                                              + (" to Outlook's POST" if url.method == "POST" else ""))
            return "unreachable"
        if path == MTA_STS_FILE:
            self.served_policy = reply.body
        outcome: UrlOutcome = "same"
        if reply.media_type != url.media_type:
            self.hit("discovery-drift", f"{url}: served as {reply.media_type or 'no Content-Type'}; clients "
                                        f"expect {url.media_type}")
            outcome = "drift"
        if reply.body != expected:
            self.hit("discovery-drift", f"{url}: {difference(path, reply.body, expected)}")
            outcome = "drift"
        return outcome

    async def fetch(self, url: Url) -> Reply:
        return await fetch(url, self.resolver, self.limit, self.options, self.context)

    async def mta_sts(self) -> None:
        """The served policy parses and covers the MX records; the _mta-sts id is the file's."""
        expected_id = policy_id(self.files[MTA_STS_FILE].decode("utf-8"))
        name = f"_mta-sts.{self.policy.host}"
        record = await self.resolver.lookup(name, "TXT")
        if record.found:
            ids = [r.replace(" ", "").partition("id=")[2].partition(";")[0] for r in record.records
                   if r.replace(" ", "").startswith("v=STSv1")]
            if len(ids) == 1 and ids[0] != expected_id:
                self.hit("discovery-drift", f"{name} has id={ids[0]}, but the policy the file renders has "
                                            f"id={expected_id}: senders keep the old policy (render --only dns)")
        elif record.status == "missing":
            self.hit("discovery-drift", f"no {name} record: senders never fetch the MTA-STS policy "
                                        f"(render --only dns gives it)")
        if self.served_policy is None:
            return  # not fetched: reported as unreachable
        url = published_urls(self.policy.host, MTA_STS_FILE)[0]
        try:
            served = parse_policy(self.served_policy.decode("utf-8"))
        except (PolicyError, UnicodeDecodeError) as exc:
            return self.hit("mta-sts-invalid", f"{url} does not parse as an MTA-STS policy: {exc}")
        mx = await self.resolver.lookup(self.policy.host, "MX")
        if not mx.found:
            return
        hosts = [canonical_host(record.split()[-1]) for record in mx.records]
        uncovered = [h for h in hosts if not any(mx_matches(pattern, h) for pattern in served.mx)]
        if uncovered and served.mode != "none":
            self.hit("mta-sts-invalid", f"{url}: the mx lines ({', '.join(served.mx)}) do not cover the MX "
                                        f"host(s) {', '.join(uncovered)} of {self.policy.host}")
        unused = [pattern for pattern in served.mx if not any(mx_matches(pattern, h) for h in hosts)]
        if unused:
            self.hit("mta-sts-invalid", f"{url}: mx {', '.join(unused)} matches no MX record of "
                                        f"{self.policy.host} ({', '.join(hosts)})")


async def fetch(url: Url, resolver: Resolver, limit: asyncio.Semaphore, options: SiteOptions,
                context: ssl.SSLContext | None = None) -> Reply:
    """One request to a published URL, as a client makes it (also the MTA-STS policy of any domain
    with an ``_mta-sts`` record, for check's report: dns_checks.py)."""
    context = context or _tls_context(options.ca_file)
    answer = await resolver.client_addresses(url.host)
    if not answer.found:
        raise FetchError(f"{url.host} does not resolve ({answer.reason})")
    address = answer.records[0]
    async with limit:
        try:
            return await asyncio.wait_for(_exchange(address, url, options, context), options.timeout)
        except asyncio.TimeoutError:
            raise FetchError(f"no answer from {address} within {options.timeout:g}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(f"the certificate of {address} is refused for {url.host}: "
                             f"{exc.verify_message or exc.reason}") from None
        except ssl.SSLError as exc:
            raise FetchError(f"TLS with {address} failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise FetchError(f"cannot connect to {address} port {options.https_port}: "
                             f"{exc.strerror or exc}") from None


async def _exchange(address: str, url: Url, options: SiteOptions, context: ssl.SSLContext) -> Reply:
    reader, writer = await asyncio.open_connection(address, options.https_port, ssl=context,
                                                   server_hostname=url.host)
    try:
        body = OUTLOOK_REQUEST if url.method == "POST" else b""
        head = [f"{url.method} {url.path} HTTP/1.1", f"Host: {url.host}", "User-Agent: smtpconf-check",
                "Accept: */*", "Connection: close"]
        if url.method == "POST":
            head += ["Content-Type: text/xml", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body)
        await writer.drain()
        data = await reader.read(MAX_REPLY + 65536)
        while data and len(data) <= MAX_REPLY + 65536:
            more = await reader.read(65536)
            if not more:
                break
            data += more
    finally:
        writer.close()
    return parse_reply(data)


def parse_reply(data: bytes) -> Reply:
    """An HTTP/1.1 response read to its end (``Connection: close``): status, media type, body."""
    if len(data) > MAX_REPLY + 65536:
        raise FetchError(f"the answer is larger than {MAX_REPLY} bytes")
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise FetchError("the server's answer is not HTTP")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunk(body)
    elif headers.get("content-length", "").isdigit():
        body = body[:int(headers["content-length"])]
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return Reply(int(parts[1]), media_type, body)


def _unchunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise FetchError("the server's chunked answer is malformed") from None
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2:]
    return b"".join(out)


def difference(path: str, served: bytes, expected: bytes) -> str:
    """The first setting in which a served file differs from the rendered one, in words."""
    try:
        if path == THUNDERBIRD_FILE:
            found = _first_difference(_thunderbird(served), _thunderbird(expected))
        elif path == AUTODISCOVER_FILE:
            found = _first_difference(_autodiscover(served), _autodiscover(expected))
        elif path == MTA_STS_FILE:
            policy = parse_policy(served.decode("utf-8"))
            found = _first_difference(policy._asdict(), parse_policy(expected.decode("utf-8"))._asdict())
        elif path.startswith("profiles/"):
            found = _first_difference(_profile(served), _profile(expected))
        else:
            found = None
    except (ElementTree.ParseError, plistlib.InvalidFileException, PolicyError, UnicodeDecodeError, ValueError,
            KeyError, IndexError, TypeError):
        return "what is served does not parse; it is not the file smtpconf renders"
    if found:
        return found + " (render --only site, and publish it again)"
    served_lines, expected_lines = served.splitlines(), expected.splitlines()
    for number, (a, b) in enumerate(zip(served_lines, expected_lines), 1):
        if a != b:
            return (f"line {number} is {_line(a)}, the file renders {_line(b)} (render --only site, and publish "
                    f"it again)")
    return "differs from what the file renders in its length (render --only site, and publish it again)"


def _line(text: bytes) -> str:
    """A line of a served file for a message: decoded, stripped, at most 80 characters."""
    shown = text.decode("utf-8", "replace").strip()
    return repr(shown if len(shown) <= 80 else shown[:77] + "...")


def _first_difference(served: dict[str, Any], expected: dict[str, Any]) -> str | None:
    for key in list(expected) + [k for k in served if k not in expected]:
        if served.get(key) != expected.get(key):
            return f"{key} is {_shown(served.get(key))}, the file renders {_shown(expected.get(key))}"
    return None


def _shown(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, (tuple, list)):
        return "'" + ", ".join(str(v) for v in value) + "'"
    return f"'{value}'"


def _thunderbird(data: bytes) -> dict[str, Any]:
    root = ElementTree.fromstring(data)
    fields: dict[str, Any] = {}
    for element in ("incomingServer", "outgoingServer"):
        for index, server in enumerate(root.iter(element)):
            where = f"{element} {server.get('type')}" + (f" #{index + 1}" if index else "")
            for field in ("hostname", "port", "socketType", "username"):
                fields[f"{where} {field}"] = server.findtext(field)
            fields[f"{where} authentication"] = tuple(a.text for a in server.iter("authentication"))
    return fields


def _autodiscover(data: bytes) -> dict[str, Any]:
    root = ElementTree.fromstring(data)
    fields: dict[str, Any] = {}
    for protocol in root.findall(".//{*}Protocol"):
        kind = protocol.findtext("{*}Type")
        for field in ("Server", "Port", "Encryption", "SSL", "LoginName", "AuthRequired"):
            fields[f"{kind} {field}"] = protocol.findtext("{*}" + field)
    return fields


def _profile(data: bytes) -> dict[str, Any]:
    payload = plistlib.loads(data)["PayloadContent"][0]
    return {key: value for key, value in payload.items() if not key.startswith("Payload")}
