"""The site target: what a domain's discovery site holds, rendered through the real CLI (SPEC §9).
nginx and Chromium read it in tests/integration/test_site_nginx.py and test_site_chromium.py."""

from __future__ import annotations

import contextlib
import io
import plistlib
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smtpconf.cli import main
from smtpconf.render.mta_sts import mx_matches, parse_policy, policy_id, PolicyError
from tests.support.render import (
    ACCOUNTS_YAML, FILE_SECRET, IDN_DOMAIN, SECRET_VALUES, leftovers, render_ok, tree, write_config,
)

SITE_YAML = ACCOUNTS_YAML + """\
  - email: boss@example.com
    name: "<script>alert('x')</script> \\"onload=alert(1) & <b>"
    provider: office365
    auth: oauth2
    oauth2: {client_id: 11111111-2222-3333-4444-555555555555, refresh_token: {env: REFRESH_TOKEN}}
  - {email: dev@example.com, host: smtp.example.com, port: 2587, security: starttls, username: dev,
     password: {env: DEV_PW}}
domains:
  example.com:
    site: {root: /srv/www/example.com, certificate: /etc/ssl/example.com/chain.pem, key: /etc/ssl/example.com/key.pem}
    mta_sts: {mode: enforce, mx: [MX1.Example.COM., "*.mx.example.com"], max_age: 86400}
    tls_rpt: [tls@example.com, "https://reports.example.com/tls"]
    lang: [zh-CN, en]
  例子.测试: {}
  nobody.example:
    site: {}
"""


def render(config: Path, out: Path, only: str = "site") -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["render", str(config), "-o", str(out), "--only", only])
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("site")
    code, notes = render(write_config(base, SITE_YAML), base / "out", "site,dns")
    assert code == 0, notes
    return base / "out", notes


def www(out: Path, domain: str = "example.com") -> Path:
    return out / "site" / "www" / domain


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def page(path: Path) -> _Page:
    parsed = _Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return parsed


def test_one_site_per_domain_with_accounts(site: tuple[Path, str]) -> None:
    out, notes = site
    assert sorted(p.name for p in (out / "site" / "www").iterdir()) == ["example.com", IDN_DOMAIN]
    assert sorted(p.name for p in (out / "site" / "nginx").iterdir()) == ["example.com.conf", f"{IDN_DOMAIN}.conf"]
    assert "no site for nobody.example: no account has an address there" in notes
    files = {str(p.relative_to(www(out))) for p in www(out).rglob("*") if p.is_file()}
    assert files == {"mail/config-v1.1.xml", "autodiscover/autodiscover.xml", "mta-sts.txt", "index.html",
                     "setup/xiaoming@example.com.html", "setup/boss@example.com.html", "setup/dev@example.com.html",
                     "profiles/xiaoming@example.com.mobileconfig"}  # dev has no incoming server, boss is OAuth2
    assert not (www(out, IDN_DOMAIN) / "mta-sts.txt").exists()


def test_thunderbird_file_is_the_thunderbird_targets_domain_file(site: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = site
    code, _ = render(out.parent / "smtpconf.yaml", tmp_path / "tb", "thunderbird")
    assert code == 0
    assert (www(out) / "mail/config-v1.1.xml").read_bytes() == \
        (tmp_path / "tb/thunderbird/domains/example.com/mail/config-v1.1.xml").read_bytes()


def test_profiles_are_the_mobileconfig_targets(site: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = site
    code, _ = render(out.parent / "smtpconf.yaml", tmp_path / "mc", "mobileconfig")
    assert code == 0
    served = (www(out) / "profiles/xiaoming@example.com.mobileconfig").read_bytes()
    assert served == (tmp_path / "mc/mobileconfig/xiaoming@example.com.mobileconfig").read_bytes()
    assert plistlib.loads(served)["PayloadContent"][0]["OutgoingMailServerHostName"] == "smtp.gmail.com"


def test_autodiscover_answer_names_no_user(site: tuple[Path, str]) -> None:
    out, notes = site
    root = ET.parse(www(out) / "autodiscover/autodiscover.xml").getroot()
    ns = {"o": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    assert root.find(".//o:User", ns) is None and root.find(".//o:LoginName", ns) is None
    smtp = [p for p in root.iterfind(".//o:Protocol", ns) if p.findtext("o:Type", namespaces=ns) == "SMTP"]
    assert [(p.findtext("o:Server", namespaces=ns), p.findtext("o:Encryption", namespaces=ns)) for p in smtp] == \
        [("smtp.gmail.com", "TLS")]
    assert "has no LoginName" in notes and "dev@example.com log in with another user name" in notes
    assert "dev@example.com use other servers" in notes


def test_mta_sts_policy_and_its_records(site: tuple[Path, str]) -> None:
    out, _ = site
    text = (www(out) / "mta-sts.txt").read_text()
    assert text == "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mx.example.com\nmax_age: 86400\n"
    assert parse_policy(text).mx == ("mx1.example.com", "*.mx.example.com")
    zone = (out / "dns" / "example.com.zone").read_text()
    assert f'_mta-sts.example.com. 3600 IN TXT "v=STSv1; id={policy_id(text)}"' in zone
    assert '_smtp._tls.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:tls@example.com,' \
           'https://reports.example.com/tls"' in zone
    assert "_mta-sts" not in (out / "dns" / f"{IDN_DOMAIN}.zone").read_text()


def test_mta_sts_id_changes_exactly_when_the_policy_does(tmp_path: Path) -> None:
    def record(text: str) -> str:
        config = write_config(tmp_path / "c", text)
        out = tmp_path / "out"
        assert render(config, out, "dns")[0] == 0
        found = re.search(r'_mta-sts\.example\.com\. 3600 IN TXT "v=STSv1; id=([A-Za-z0-9]+)"',
                          (out / "dns/example.com.zone").read_text())
        assert found is not None and 1 <= len(found.group(1)) <= 32
        return found.group(1)

    base = """\
        version: 1
        accounts: [{email: a@example.com, provider: gmail, password: {env: PW}}]
        domains:
          example.com:
            dmarc_policy: %s
            mta_sts: {mode: %s, mx: [mx1.example.com], max_age: %d}
        """
    first = record(base % ("none", "testing", 86400))
    assert record(base % ("reject", "testing", 86400)) == first  # something else changed: same id
    assert record(base % ("none", "enforce", 86400)) != first
    assert record(base % ("none", "testing", 86401)) != first


def test_every_value_on_the_pages_is_escaped(site: tuple[Path, str]) -> None:
    out, _ = site
    boss = www(out) / "setup/boss@example.com.html"
    parsed = page(boss)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    text = "".join(parsed.text)
    assert "<script>alert('x')</script> \"onload=alert(1) & <b>" in text
    overview = page(www(out) / "index.html")
    assert "script" not in overview.tags and "<script>alert('x')</script>" in "".join(overview.text)


def test_pages_are_self_contained(site: tuple[Path, str]) -> None:
    out, _ = site
    for path in [www(out) / "index.html", *sorted((www(out) / "setup").iterdir())]:
        text = path.read_text(encoding="utf-8")
        parsed = page(path)
        assert "script" not in parsed.tags and "img" not in parsed.tags and "link" not in parsed.tags
        assert not any(name == "src" or name == "style" for name, _ in parsed.attrs)
        assert "url(" not in text and "@import" not in text
        # Every link is to the site itself, or a provider's documentation a person may open.
        links = [value for name, value in parsed.attrs if name == "href" and value]
        assert all(v.startswith(("#", "setup/", "../")) or v.startswith("https://") for v in links), links
        assert "width=device-width" in text and "@media print" in text


def test_account_page_has_what_a_person_types(site: tuple[Path, str]) -> None:
    out, _ = site
    text = " ".join(" ".join(page(www(out) / "setup/xiaoming@example.com.html").text).split())
    for expected in ("smtp.gmail.com", "587", "STARTTLS", "imap.gmail.com", "993", "SSL/TLS", "xiaoming@example.com",
                     "app password", "应用专用密码", "发送邮件服务器（SMTP）", "Outgoing mail server (SMTP)",
                     "Download the profile"):
        assert expected in text, expected
    # lang: [zh-CN, en]: Chinese first
    assert text.index("发送邮件服务器") < text.index("Outgoing mail server")
    boss = " ".join(" ".join(page(www(out) / "setup/boss@example.com.html").text).split())
    assert "OAuth2 (sign in with the provider)" in boss and "choose OAuth2" in boss and "Download the profile" not in boss
    dev = " ".join(" ".join(page(www(out) / "setup/dev@example.com.html").text).split())
    assert "dev" in dev and "2587" in dev and "set the account up by hand" in dev


def test_default_languages_and_163_authorization_code(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts: [{email: ops@corp.example, provider: "163", password: {env: CODE}}]
        domains: {corp.example: {}}
        """)
    assert render(config, tmp_path / "out")[0] == 0
    html = (tmp_path / "out/site/www/corp.example/setup/ops@corp.example.html").read_text()
    assert '<html lang="en">' in html and 'id="en"' in html and 'id="zh-CN"' in html
    assert html.index('id="en"') < html.index('id="zh-CN"')
    assert "授权码" in html and "SSL/TLS" in html and "465" in html


def test_placeholders_without_certificate_paths(site: tuple[Path, str]) -> None:
    out, notes = site
    conf = (out / "site/nginx" / f"{IDN_DOMAIN}.conf").read_text()
    assert f'ssl_certificate "/etc/letsencrypt/live/autoconfig.{IDN_DOMAIN}/fullchain.pem";' in conf
    assert "# PLACEHOLDER" in conf and f'root "/var/www/smtpconf/{IDN_DOMAIN}";' in conf
    assert f"no certificate and key in `site:` of {IDN_DOMAIN}" in notes
    given = (out / "site/nginx/example.com.conf").read_text()
    assert 'ssl_certificate "/etc/ssl/example.com/chain.pem";' in given and "PLACEHOLDER" not in given
    assert "server_name autoconfig.example.com;" in given and "server_name mta-sts.example.com;" in given
    assert "mta-sts" not in conf.split("PLACEHOLDER")[1]  # no policy, no mta-sts server


def test_nginx_paths_are_quoted(tmp_path: Path) -> None:
    config = write_config(tmp_path, """\
        version: 1
        accounts: [{email: a@example.com, provider: gmail, password: {env: PW}}]
        domains:
          example.com: {site: {root: '/srv/my "site"; x', certificate: /c.pem, key: '/k\\.pem'}}
        """)
    assert render(config, tmp_path / "out")[0] == 0
    conf = (tmp_path / "out/site/nginx/example.com.conf").read_text()
    assert 'root "/srv/my \\"site\\"; x";' in conf and 'ssl_certificate_key "/k\\\\.pem";' in conf


def test_deterministic(site: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = site
    assert render(out.parent / "smtpconf.yaml", tmp_path / "again", "site,dns")[0] == 0
    assert tree(tmp_path / "again" / "site") == tree(out / "site")


def test_no_secret_in_the_site(site: tuple[Path, str]) -> None:
    out, _ = site
    blob = b"".join(content for content, _ in tree(out / "site").values())
    for value in [*SECRET_VALUES.values(), FILE_SECRET, "REFRESH_TOKEN", "pass show"]:
        assert value.encode() not in blob


def test_lint_errors_leave_the_output_as_it_was(site: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path, """\
        version: 1
        accounts: [{email: a@example.com, provider: gmail, password: {env: PW}}]
        domains: {example.com: {}}
        """)
    assert render(config, out)[0] == 0
    before = tree(out)
    config.write_text(config.read_text().replace("example.com: {}", "example.com: {site: {root: /srv/$x}}"))
    code, _ = render(config, out)
    assert code == 1 and tree(out) == before and leftovers(tmp_path) == []


def test_policy_parser_and_mx_matching() -> None:
    assert parse_policy("version: STSv1\r\nmode: none\r\nmax_age: 0\r\n").mode == "none"
    for bad in ["mode: enforce\nmx: a.example\nmax_age: 1\n", "version: STSv1\nmode: enforce\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "garbage"]:
        with pytest.raises(PolicyError):
            parse_policy(bad)
    assert mx_matches("*.example.com", "mx1.EXAMPLE.com.")
    assert not mx_matches("*.example.com", "a.mx1.example.com") and not mx_matches("*.example.com", "example.com")
    assert mx_matches("mx1.example.com", "MX1.example.com")
