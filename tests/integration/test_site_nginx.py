"""The ``site`` target served by real nginx: every URL a client asks returns exactly the rendered
bytes with the right media type, and Outlook's POST gets the Autodiscover XML (SPEC §9)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from smtpconf.cli import main
from smtpconf.render.site import published_urls
from tests.support.nginx import NginxServer
from tests.support.smtpserver import TestCA

pytestmark = pytest.mark.integration

DOMAIN = "example.com"
NAMES = [f"autoconfig.{DOMAIN}", f"autodiscover.{DOMAIN}", f"mta-sts.{DOMAIN}", DOMAIN]
OUTLOOK_REQUEST = b"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>xiaoming@example.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""


def site_yaml(root: Path, cert: Path, key: Path, port: int = 587) -> str:
    return textwrap.dedent(f"""\
        version: 1
        accounts:
          - {{email: xiaoming@example.com, name: 小明, provider: gmail, port: {port}, password: {{env: GMAIL_PW}}}}
          - {{email: ops@example.com, name: "<script>alert(1)</script>", provider: "163", password: {{env: CODE}}}}
        domains:
          {DOMAIN}:
            site: {{root: '{root}', certificate: '{cert}', key: '{key}'}}
            mta_sts: {{mode: enforce, mx: [mx1.example.com, "*.mx.example.com"], max_age: 86400}}
            tls_rpt: tls-reports@example.com
        """)


def render_site(tmp_path: Path, ca: TestCA, port: int = 587) -> Path:
    """Render the site target; the web root in the file is the render's own www/ directory, in a
    directory whose name nginx must read quoted (a space, a double quote, a semicolon)."""
    out = tmp_path / 'out "web"; root'

    cert, key = ca.cert_pem_paths(NAMES)
    config = tmp_path / "smtpconf.yaml"
    config.write_text(site_yaml(out / "site" / "www" / DOMAIN, cert, key, port), encoding="utf-8")
    assert main(["render", str(config), "-o", str(out), "--only", "site"]) == 0
    return out / "site"


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[TestCA]:
    with TestCA(tmp_path / "ca") as authority:
        yield authority


@pytest.fixture
def served(tmp_path: Path, ca: TestCA) -> Iterator[tuple[Path, NginxServer]]:
    site = render_site(tmp_path, ca)
    with NginxServer(site / "nginx" / f"{DOMAIN}.conf", ca.ca_pem_path) as web:
        yield site / "www" / DOMAIN, web


# (host, path, file under www/DOMAIN, media type)
URLS = [
    (f"autoconfig.{DOMAIN}", "/mail/config-v1.1.xml", "mail/config-v1.1.xml", "text/xml"),
    (DOMAIN, "/.well-known/autoconfig/mail/config-v1.1.xml", "mail/config-v1.1.xml", "text/xml"),
    (f"autoconfig.{DOMAIN}", "/", "index.html", "text/html"),
    (f"autoconfig.{DOMAIN}", "/index.html", "index.html", "text/html"),
    (f"autoconfig.{DOMAIN}", "/setup/xiaoming@example.com.html", "setup/xiaoming@example.com.html", "text/html"),
    (f"autoconfig.{DOMAIN}", "/setup/ops%40example.com.html", "setup/ops@example.com.html", "text/html"),
    (f"autoconfig.{DOMAIN}", "/profiles/xiaoming%40example.com.mobileconfig",
     "profiles/xiaoming@example.com.mobileconfig", "application/x-apple-aspen-config"),
    (f"autodiscover.{DOMAIN}", "/autodiscover/autodiscover.xml", "autodiscover/autodiscover.xml", "text/xml"),
    (f"mta-sts.{DOMAIN}", "/.well-known/mta-sts.txt", "mta-sts.txt", "text/plain"),
]


@pytest.mark.parametrize("host,path,file,media_type", URLS, ids=[f"{h}{p}" for h, p, _, _ in URLS])
def test_every_url_serves_the_rendered_bytes(served: tuple[Path, NginxServer], host: str, path: str, file: str,
                                             media_type: str) -> None:
    www, web = served
    reply = web.get(host, path)
    assert reply.status == 200, reply
    assert reply.body == (www / file).read_bytes()
    assert reply.content_type.split(";")[0].strip() == media_type
    if media_type.startswith("text/"):
        assert "charset=utf-8" in reply.content_type


def test_every_file_at_its_published_urls(served: tuple[Path, NginxServer]) -> None:
    """Each file of the site at each URL the check fetches it from (site.published_urls)."""
    www, web = served
    files = sorted(str(p.relative_to(www)) for p in www.rglob("*") if p.is_file())
    assert len(files) == 8
    for file in files:
        for url in published_urls(DOMAIN, file):
            reply = web.request(url.host, url.path, url.method, OUTLOOK_REQUEST if url.method == "POST" else None)
            assert (reply.status, reply.content_type.split(";")[0]) == (200, url.media_type), url
            assert reply.body == (www / file).read_bytes(), url


@pytest.mark.parametrize("host", [f"autodiscover.{DOMAIN}", DOMAIN])
@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])
def test_outlooks_post_gets_the_xml(served: tuple[Path, NginxServer], host: str, path: str) -> None:
    www, web = served
    reply = web.request(host, path, "POST", OUTLOOK_REQUEST, {"Content-Type": "text/xml"})
    assert reply.status == 200
    assert reply.content_type.split(";")[0] == "text/xml"
    assert reply.body == (www / "autodiscover/autodiscover.xml").read_bytes()
    assert b"<Type>SMTP</Type>" in reply.body and b"<LoginName>" not in reply.body


def test_nothing_else_is_served(served: tuple[Path, NginxServer]) -> None:
    _, web = served
    assert web.get(f"autoconfig.{DOMAIN}", "/mta-sts.txt").status == 404
    assert web.get(f"autoconfig.{DOMAIN}", "/autodiscover/autodiscover.xml").status == 404
    assert web.get(f"mta-sts.{DOMAIN}", "/mail/config-v1.1.xml").status == 404
    assert web.get(DOMAIN, "/index.html").status == 404


def test_plain_http_redirects_to_https(served: tuple[Path, NginxServer]) -> None:
    _, web = served
    reply = web.request(f"autoconfig.{DOMAIN}", "/mail/config-v1.1.xml", https=False)
    assert reply.status == 301
    assert reply.headers["location"] == f"https://autoconfig.{DOMAIN}/mail/config-v1.1.xml"


def test_the_page_is_escaped_as_served(served: tuple[Path, NginxServer]) -> None:
    _, web = served
    page = web.get(f"autoconfig.{DOMAIN}", "/setup/ops%40example.com.html").body.decode()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
