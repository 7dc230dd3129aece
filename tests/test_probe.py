"""Offline parts of the live checks: argument parsing, certificate dates, SRV expectations, record
parsing. The network parts are proven against real servers in tests/integration/test_check_*.py."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from smtpconf.errors import UsageError
from smtpconf.lint import lint_path
from smtpconf.model import Endpoint
from smtpconf.probe.dns_checks import _tags, expected_srv
from smtpconf.probe.resolver import Answer, parse_nameserver
from smtpconf.probe.spf import SpfTree, spf_records
from smtpconf.probe.tls import expiring_problem


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    ("localhost:5300", ("127.0.0.1", 5300)),
])
def test_nameserver_argument(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


@pytest.mark.parametrize("value", ["127.0.0.1:0", "127.0.0.1:dns", "[::1]:70000"])
def test_bad_nameserver_port_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError):
        parse_nameserver(value)


def test_expiring_within_14_days() -> None:
    now = time.time()

    def cert(days: float) -> dict[str, str]:
        return {"notAfter": time.strftime("%b %d %H:%M:%S %Y GMT", time.gmtime(now + days * 86400))}

    assert expiring_problem(cert(30), now) is None
    assert expiring_problem(cert(15), now) is None
    message = expiring_problem(cert(5), now)
    # notAfter has whole seconds, so "5 days from now" is 4 days and some hours.
    assert message is not None and re.search(r"expires in [45] days", message), message
    assert expiring_problem(None, now) is None


def test_spf_records_need_the_exact_version_tag() -> None:
    answer = Answer("found", ("v=spf1 -all", "v=spf10 -all", "google-site-verification=x", "V=SPF1 mx"))
    assert spf_records(answer) == ["v=spf1 -all", "V=SPF1 mx"]


def test_spf_tree_coverage() -> None:
    import ipaddress

    tree = SpfTree(networks=[ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")])
    assert tree.covers("192.0.2.7") and tree.covers("2001:db8::1")
    assert not tree.covers("198.51.100.1") and not tree.covers("::1")


def test_tag_lists() -> None:
    assert _tags("v=DMARC1; p=Reject ;rua=mailto:a@b; ") == {"v": "DMARC1", "p": "Reject", "rua": "mailto:a@b"}


def test_expected_srv_follows_each_accounts_security(tmp_path: Path) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text(
        "version: 1\naccounts:\n"
        "  - email: a@example.test\n    host: smtp.example.test\n    port: 465\n    security: tls\n"
        "    password: {env: A}\n"
        "    incoming: {host: imap.example.test, port: 993, security: tls, protocol: imap}\n"
        "  - email: b@example.test\n    host: mail.example.test\n    port: 587\n    security: starttls\n"
        "    password: {env: B}\n"
        "    incoming: {host: pop.example.test, port: 110, security: starttls, protocol: pop3}\n")
    result = lint_path(config)
    assert result.config is not None, result.findings
    assert expected_srv(result.config.accounts) == {
        "_submissions._tcp": {("smtp.example.test", 465)},
        "_imaps._tcp": {("imap.example.test", 993)},
        "_submission._tcp": {("mail.example.test", 587)},
        "_pop3._tcp": {("pop.example.test", 110)},
    }


def test_check_stops_at_lint_errors_before_any_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smtpconf.cli import main

    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  r:\n    host: smtp.example.test\n    port: 465\n    security: starttls\n")
    # A nameserver that cannot answer: reaching the live stage would add dns-timeout findings.
    assert main(["check", str(config), "--nameserver", "127.0.0.1:1", "--timeout", "1", "--format", "json"]) == 1
    out = capsys.readouterr().out
    assert '"tls-port-mismatch"' in out and "dns-timeout" not in out


def test_check_notes_that_live_checks_were_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from smtpconf.cli import main

    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  r:\n    host: smtp.example.test\n    port: 465\n    security: starttls\n")
    assert main(["check", str(config), "--nameserver", "127.0.0.1:1", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("live checks skipped: fix the errors above first") == 1, err
    # Nothing live was asked for: nothing was skipped.
    assert main(["check", str(config), "--no-dns", "--no-probe"]) == 1
    assert "skipped" not in capsys.readouterr().err


def test_the_check_stage_does_not_reach_into_the_cli(tmp_path: Path) -> None:
    """probe/check.py reports through smtpconf.report (registry and format default), so it runs
    without smtpconf.cli, and the GitHub default still applies."""
    import os
    import subprocess
    import sys

    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  r:\n    host: smtp.example.test\n    port: 465\n    security: starttls\n")
    code = ("import sys; from smtpconf.probe.check import CheckOptions, LiveOptions, execute\n"
            f"options = CheckOptions(files=({str(config)!r},), live=LiveOptions(timeout=1.0, dns=False, probe=False))\n"
            "rc = execute(options)\n"
            "print('cli imported' if 'smtpconf.cli' in sys.modules else 'cli not imported', rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GITHUB_ACTIONS": "true"})
    assert done.stdout.splitlines()[-1] == "cli not imported 1", done.stdout + done.stderr
    assert "::error" in done.stdout and "tls-port-mismatch" in done.stdout, done.stdout


def test_bad_live_options_are_usage_errors(tmp_path: Path) -> None:
    from smtpconf.probe.check import LiveOptions

    good = LiveOptions(timeout=1.0, concurrency=1, probe=False)
    assert good.checked() == LiveOptions(None, 1.0, 1, True, False)
    for bad, flag in [(good._replace(timeout=0), "--timeout"), (good._replace(timeout=float("nan")), "--timeout"),
                      (good._replace(concurrency=0), "--concurrency"),
                      (good._replace(ca_file=str(tmp_path / "none.pem")), "--ca-file")]:
        with pytest.raises(UsageError, match=flag):
            bad.checked()


def _endpoint(host: str, provider: str | None = None) -> Endpoint:
    return Endpoint(host, 587, "starttls", None, provider, ("relays", "r"))


def test_provider_hints_know_presets_by_host_too() -> None:
    """A relay written as host smtp.gmail.com without ``provider`` still gets Gmail's note."""
    from smtpconf.model import EndpointUse, Login
    from smtpconf.probe.endpoints import _provider_note
    from smtpconf.probe.auth import provider_hint
    from smtpconf.probe.sendtest import Target

    login = Login("password", "a@example.com", None, None, ("relays", "r"))
    gmail = Target("relay 'r'", _endpoint("smtp.gmail.com"), login, None, ("--relay", "r"))
    assert "app password" in provider_hint(gmail)
    other = Target("relay 'r'", _endpoint("smtp.example.test"), login, None, ("--relay", "r"))
    assert "Check the username" in provider_hint(other)
    o365 = EndpointUse("relay 'r'", _endpoint("smtp.office365.com"), login, True)
    assert "SMTP AUTH" in _provider_note(o365)
    assert _provider_note(EndpointUse("relay 'r'", _endpoint("smtp.example.test"), login, True)) == ""


def test_probe_key_ignores_the_trailing_dot_and_case() -> None:
    def probe_key(endpoint: Endpoint) -> tuple[str, int, str, str | None]:
        return endpoint.key

    assert probe_key(_endpoint("smtp.example.test.")) == probe_key(_endpoint("SMTP.Example.test"))
    assert probe_key(_endpoint("smtp.example.test")) != probe_key(_endpoint("smtp2.example.test"))


# --- OAuth2 SASL (smtpconf/probe/sasl.py) and auth-mechanism-missing ---------------------------

def test_xoauth2_and_oauthbearer_client_messages() -> None:
    from smtpconf.probe.sasl import oauthbearer_message, xoauth2_message

    assert xoauth2_message("app@corp.example", "T0K") == b"user=app@corp.example\x01auth=Bearer T0K\x01\x01"
    # RFC 7628 §3.1: GS2 header with the authzid (',' and '=' escaped as RFC 5801 says), then kvpairs.
    assert oauthbearer_message("a,b=c@x.example", "smtp.x.example", 587, "T0K") == (
        b"n,a=a=2Cb=3Dc@x.example,\x01host=smtp.x.example\x01port=587\x01auth=Bearer T0K\x01\x01")


@pytest.mark.parametrize("challenge, said", [
    # Google's XOAUTH2 refusal, as Gmail sends it
    (b"eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==",
     "status 401, schemes bearer, scope https://mail.google.com/"),
    # RFC 7628 §4.3's example error
    (b"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJo"
     b"dHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=",
     "status invalid_token, scope example_scope, openid-configuration "
     "https://example.com/.well-known/openid-configuration"),
    (b"bm90IGpzb24=", "'not json'"),
    (b"%%%", "an undecodable challenge '%%%'"),
    (b"eyJzdGF0dXMiOiJcdTAwMWJbMzFtIn0=", "status \\x1b[31m"),  # an escape sequence stays harmless
])
def test_a_refusal_challenge_is_decoded_into_words(challenge: bytes, said: str) -> None:
    from smtpconf.probe.sasl import describe_challenge

    assert describe_challenge(challenge) == said


def test_advice_for_refused_tokens_and_passwords() -> None:
    from smtpconf.probe.auth import password_refused_advice, refusal_advice

    ms = refusal_advice("XOAUTH2", "5.7.3 Authentication unsuccessful", None,
                        "smtpconf oauth2 login f.yaml --relay o365", "https://outlook.office.com/SMTP.Send")
    assert "SMTP.Send" in ms and "SMTP AUTH" in ms and ms.endswith("smtpconf oauth2 login f.yaml --relay o365")
    google = refusal_advice("XOAUTH2", "5.7.8 Username and Password not accepted", "status 401, schemes bearer",
                            "smtpconf oauth2 login f.yaml --relay g", "https://mail.google.com/")
    assert "invalid or expired" in google and "oauth2 login" in google
    assert "use auth: oauth2" in (password_refused_advice(
        550, "5.7.30 Basic authentication is not supported for Client Submission.") or "")
    assert password_refused_advice(535, "5.7.8 Username and Password not accepted") is None
    microsoft = password_refused_advice(535, "5.7.3 Authentication unsuccessful [SN4PR0601CA0001]") or ""
    assert "SMTP AUTH is enabled for the mailbox" in microsoft and "auth: oauth2" in microsoft


def _use(auth: str, security: str = "starttls") -> object:
    from smtpconf.model import EndpointUse, Login, OAuth2, SecretRef

    secret = SecretRef("env", "X", ("relays", "r"))
    oauth2 = OAuth2("client", None, secret, None, "xoauth2", "https://idp.test/token", None, None, (),
                    None, ("relays", "r", "oauth2")) if auth == "oauth2" else None
    login = Login(auth, "a@example.com", secret if auth == "password" else None, oauth2,  # type: ignore[arg-type]
                  ("relays", "r"))
    return EndpointUse("relay 'r'", Endpoint("smtp.example.test", 587, security, None, None, ("relays", "r")),
                       login, True)


@pytest.mark.parametrize("auth, offered, expected", [
    ("password", ("XOAUTH2",), "offers AUTH XOAUTH2 after TLS, neither PLAIN nor LOGIN"),
    ("password", ("LOGIN",), None),
    ("oauth2", ("PLAIN", "LOGIN"), "offers AUTH PLAIN LOGIN after TLS, not XOAUTH2"),
    ("oauth2", ("OAUTHBEARER",), "not XOAUTH2"),
    ("oauth2", ("XOAUTH2", "PLAIN"), None),
    ("oauth2", (), None),  # no AUTH at all: auth-not-offered speaks, not this
    ("oauth2", None, None),  # not probed that far
    ("none", ("XOAUTH2",), None),
])
def test_auth_mechanism_missing_is_judged_per_login(auth: str, offered: tuple[str, ...] | None,
                                                    expected: str | None) -> None:
    from smtpconf.probe.endpoints import _mechanism_missing

    message = _mechanism_missing(_use(auth), offered)  # type: ignore[arg-type]
    assert (message is None) if expected is None else (message is not None and expected in message), message
    if auth == "password" and message:
        assert "use auth: oauth2" in message


@pytest.mark.parametrize("domain, names", [
    ("example.com", ["example.com", "com"]),
    ("a.b.example.com", ["a.b.example.com", "b.example.com", "example.com", "com"]),
    # RFC 9989 §4.10: 8 labels or more jump to the last 7 after the first query; 8 queries at most.
    ("a.b.c.d.e.f.g.h.i.j", ["a.b.c.d.e.f.g.h.i.j", "d.e.f.g.h.i.j", "e.f.g.h.i.j", "f.g.h.i.j", "g.h.i.j",
                             "h.i.j", "i.j", "j"]),
    ("com", ["com"]),
])
def test_dmarc_tree_walk_names(domain: str, names: list[str]) -> None:
    from smtpconf.probe.dns_checks import dmarc_walk

    assert dmarc_walk(domain) == names


@pytest.mark.parametrize("found, expected", [
    ([("mail.example.com", {}), ("example.com", {})], "example.com"),  # fewest labels
    ([("mail.shop.test", {"psd": "n"}), ("test", {})], "mail.shop.test"),
    ([("shop.test", {"psd": "y"})], "mail.shop.test"),  # one label below the PSD
    ([("mail.shop.test", {"psd": "y"}), ("test", {})], "test"),  # psd=y at the domain itself does not count
])
def test_organizational_domain(found: list[tuple[str, dict[str, str]]], expected: str) -> None:
    from smtpconf.probe.dns_checks import organizational_domain

    assert organizational_domain("mail.shop.test" if "shop" in found[0][0] else "mail.example.com", found) == expected


def test_spf_names_the_term_that_takes_the_count_over_10() -> None:
    tree = SpfTree()
    tree.costs = {"a:x": 1, "include:big": 10, "mx": 1}
    assert tree.over_limit_by == "include:big"
    tree.costs = {"a:x": 1, "include:big": 9}
    assert tree.over_limit_by is None


def test_certificate_seen_reads_rfc4514_names() -> None:
    from smtpconf.probe.tls import certificate_seen

    now = time.time()
    cert = {"subject": ((("countryName", "US"),), (("organizationName", "Example"),), (("commonName", "smtp.x"),)),
            "issuer": ((("organizationName", "CA Inc"),), (("commonName", "CA 1"),)),
            "notAfter": time.strftime("%b %d %H:%M:%S %Y GMT", time.gmtime(now + 30.5 * 86400))}
    seen = certificate_seen(cert, now)
    assert seen is not None
    assert (seen.subject, seen.issuer, seen.days_left) == ("CN=smtp.x,O=Example,C=US", "CN=CA 1,O=CA Inc", 30)
    assert certificate_seen(None) is None


def test_a_descriptor_limit_below_the_concurrency_is_a_clear_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  r:\n    host: 127.0.0.1\n    port: 9\n    security: starttls\n")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))\n"
            "from smtpconf.cli import main\n"
            f"sys.exit(main(['check', {str(config)!r}, '--concurrency', '2000', '--nameserver', '127.0.0.1:1']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("smtpconf: error: --concurrency 2000 needs about 4064 open files, but this "
                                   "process may open at most 256 (ulimit -n): use --concurrency 96 or less, or "
                                   "raise the limit"), done.stderr
    # A soft limit below what is needed is raised to it, within the hard limit.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 8192))\n"
            "from smtpconf.cli import main\n"
            f"main(['check', {str(config)!r}, '--concurrency', '100', '--nameserver', '127.0.0.1:1', '--timeout', '1'])\n"
            "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr and done.stdout.strip().endswith("264"), done.stdout + done.stderr
