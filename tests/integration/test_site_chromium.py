"""The setup pages of the ``site`` target rendered by real headless Chromium at phone width, with
Debian's Noto CJK fonts: a screenshot is kept in the test's output, and the text of the page as
Chromium built it holds each account's server, port and security words (SPEC §9)."""

from __future__ import annotations

import subprocess
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smtpconf.cli import main
from tests.support.gate import need_program, unavailable

pytestmark = pytest.mark.integration

CONFIG = """\
version: 1
accounts:
  - {email: xiaoming@example.com, name: 小明, provider: gmail, password: {env: GMAIL_PW}}
  - {email: ops@example.com, name: "<script>document.title='pwned'</script>", provider: "163", password: {env: CODE}}
  - {email: lab@example.com, name: '"onload=alert(1)', host: smtp.lab.example.com, port: 2587,
     security: starttls, password: {env: LAB}, incoming: {host: pop.lab.example.com, protocol: pop3}}
  - email: o365@example.com
    provider: office365
    auth: oauth2
    oauth2: {client_id: 11111111-2222-3333-4444-555555555555, refresh_token: {env: REFRESH}}
domains:
  example.com: {}
"""
# email -> what a person must be able to read: (SMTP host, port, security word), incoming likewise
EXPECTED = {
    "xiaoming@example.com": [("smtp.gmail.com", "587", "STARTTLS"), ("imap.gmail.com", "993", "SSL/TLS")],
    "ops@example.com": [("smtp.163.com", "465", "SSL/TLS"), ("imap.163.com", "993", "SSL/TLS")],
    "lab@example.com": [("smtp.lab.example.com", "2587", "STARTTLS"), ("pop.lab.example.com", "995", "SSL/TLS")],
    "o365@example.com": [("smtp.office365.com", "587", "STARTTLS"), ("outlook.office365.com", "993", "SSL/TLS")],
}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.elements: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    binary = need_program("chromium", "chromium")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--window-size=390,844", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").exists():
        unavailable("the Noto CJK fonts are missing: apt-get install fonts-noto-cjk")
    directory = tmp_path_factory.mktemp("site")
    config = directory / "smtpconf.yaml"
    config.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    assert main(["render", str(config), "-o", str(directory / "out"), "--only", "site"]) == 0
    return directory / "out" / "site" / "www" / "example.com"


@pytest.mark.parametrize("email", sorted(EXPECTED))
def test_account_page_renders_in_chromium(www: Path, tmp_path: Path, email: str) -> None:
    page = www / "setup" / f"{email}.html"
    shot = tmp_path / f"{email}.png"
    done = chromium([f"--screenshot={shot}", page.as_uri()], tmp_path / "profile-shot")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 10_000  # a phone-width screenshot of the page, kept with the test's output
    dom = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Text()
    parsed.feed(dom.stdout)
    for host, port, security in EXPECTED[email]:
        assert host in parsed.text and port in parsed.text and security in parsed.text
    assert "发送邮件服务器" in parsed.text and "Outgoing mail server" in parsed.text
    assert "script" not in parsed.elements  # a display name of <script> stays text
    assert "<title>" in dom.stdout and "pwned" not in dom.stdout.split("<title>")[1].split("</title>")[0]
    if email == "o365@example.com":
        assert "OAuth2" in parsed.text
    if email == "ops@example.com":
        assert "授权码" in parsed.text
        assert "<script>document.title='pwned'</script>" in parsed.text


def test_overview_lists_every_account(www: Path, tmp_path: Path) -> None:
    shot = tmp_path / "index.png"
    page = (www / "index.html").as_uri()
    assert chromium([f"--screenshot={shot}", page], tmp_path / "profile-shot").returncode == 0
    dom = chromium(["--dump-dom", page], tmp_path / "profile-dom")
    parsed = _Text()
    parsed.feed(dom.stdout)
    for email, servers in EXPECTED.items():
        assert email in parsed.text
        host, port, _ = servers[0]
        assert host in parsed.text and port in parsed.text
