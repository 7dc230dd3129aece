"""``smtpconf check`` DNS checks against a real nsd serving test zones on loopback.

Each domain in the test file is broken in exactly one way and must give exactly that rule id.
A resolver that does not answer, or refuses, must give ``dns-timeout`` and never a "missing".
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import rules_by_key, run_check
from tests.support.nsd import NsdServer, zone_text

pytestmark = pytest.mark.integration

Z = "dns.test"
DKIM_KEY = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYt"
SPF_OK = "v=spf1 ip4:127.0.0.10 include:_spf.google.com -all"
DMARC_OK = "v=DMARC1; p=reject; rua=mailto:dmarc@dns.test"

# domain -> (records of the domain, relative to it, that replace the good defaults; expected rules)
CASES: dict[str, tuple[dict[str, str | None], list[str]]] = {
    "good": ({}, []),
    "nospf": ({"@": None}, ["spf-missing"]),
    "twospf": ({"@": "v=spf1 -all|v=spf1 ip4:127.0.0.10 include:_spf.google.com -all"}, ["spf-missing"]),
    "chain": ({"@": "v=spf1 ip4:127.0.0.10 include:_spf.google.com include:c1.dns.test -all"},
              ["spf-too-many-lookups"]),
    "void": ({"@": "v=spf1 a:v1.dns.test a:v2.dns.test mx:v3.dns.test " + SPF_OK[7:]}, ["spf-too-many-lookups"]),
    "diamond": ({"@": "v=spf1 ip4:127.0.0.10 include:_spf.google.com include:dia1.dns.test include:dia2.dns.test -all"},
                []),
    "loop": ({"@": "v=spf1 ip4:127.0.0.10 include:_spf.google.com include:loop1.dns.test -all"}, ["spf-missing"]),
    "uncovered": ({"@": "v=spf1 ip4:192.0.2.1 include:_spf.google.com -all"}, ["spf-relay-not-included"]),
    "uncovered-gmail": ({"@": "v=spf1 ip4:127.0.0.10 -all"}, ["spf-relay-not-included"]),
    "nodmarc": ({"_dmarc": None}, ["dmarc-missing"]),
    "weakdmarc": ({"_dmarc": "v=DMARC1; p=none"}, ["dmarc-weak-policy"]),
    "nodkim": ({"s1._domainkey": None}, ["dkim-missing"]),
    "badsts": ({"_mta-sts": "v=STSv1; id=not-valid!"}, ["mta-sts-invalid"]),
    "badrpt": ({"_smtp._tls": "v=TLSRPTv1; rua=tls-reports@dns.test"}, ["mta-sts-invalid"]),
    "srvbad": ({"_submissions._tcp": "0 1 465 other.dns.test."}, ["srv-mismatch"]),
    "srvnone": ({"_submissions._tcp": None}, ["srv-mismatch"]),
}


def _zone() -> str:
    records: list[tuple[str, str, str]] = [
        ("relay", "A", "127.0.0.10"), ("smtp-gmail", "A", "127.0.0.20"), ("smtp", "A", "127.0.0.1"),
        ("other", "A", "127.0.0.1"), ("relay", "AAAA", "::1"),
    ]
    # A chain of includes: with the top record's own include, 12 DNS-querying terms.
    for i in range(1, 11):
        records.append((f"c{i}", "TXT", f"v=spf1 include:c{i + 1}.dns.test -all" if i < 10 else "v=spf1 a:relay.dns.test -all"))
    # Two branches including the same record is not a loop; a record including its includer is.
    records += [("dia1", "TXT", "v=spf1 include:_spf.google.com -all"), ("dia2", "TXT", "v=spf1 include:_spf.google.com -all"),
                ("loop1", "TXT", "v=spf1 include:loop2.dns.test -all"), ("loop2", "TXT", "v=spf1 include:loop1.dns.test -all")]
    for domain, (changes, _) in CASES.items():
        defaults: dict[str, str | None] = {
            "@": SPF_OK, "_dmarc": DMARC_OK, "s1._domainkey": DKIM_KEY,
            "_mta-sts": "v=STSv1; id=20260101T000000", "_smtp._tls": "v=TLSRPTv1; rua=mailto:tls@dns.test",
            "_submissions._tcp": "0 1 465 smtp.dns.test.", "_imaps._tcp": "0 1 993 smtp.dns.test.",
        }
        for owner, value in {**defaults, **changes}.items():
            if value is None:
                continue
            name = domain if owner == "@" else f"{owner}.{domain}"
            rtype = "SRV" if owner.startswith("_sub") or owner.startswith("_imap") else "TXT"
            records += [(name, rtype, v) for v in value.split("|")]
    return zone_text(Z, records)


# "test" answers for the top of the DMARC tree walk (RFC 9989), as a real top-level domain would.
ZONES = {Z: _zone(), "_spf.google.com": zone_text("_spf.google.com", [("@", "TXT", "v=spf1 ip4:192.0.2.0/24 ~all")]),
         "test": zone_text("test")}


def _config(domains: list[str]) -> str:
    lines = [
        "version: 1", "relays:",
        "  lab:", "    host: relay.dns.test", "    port: 2587", "    security: starttls",
        "  gmail-ops:", "    provider: gmail", "    host: smtp-gmail.dns.test",
        "    username: ops@dns.test", "    password: {env: GMAIL_APP_PASSWORD}",
    ]
    lines += ["accounts:"] if domains else []
    for domain in domains:
        lines += [f"  - email: user@{domain}.dns.test", "    host: smtp.dns.test", "    port: 465",
                  "    security: tls", "    incoming: {host: smtp.dns.test, port: 993, security: tls, protocol: imap}"]
    lines.append("domains:")
    for domain in domains:
        relays = "[gmail-ops]" if domain == "uncovered-gmail" else "[lab, gmail-ops]"
        lines += [f"  {domain}.dns.test:", f"    relays: {relays}", "    dkim_selectors: [s1]",
                  "    dmarc_policy: quarantine", "    srv: true"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    with NsdServer(ZONES) as server:
        yield server


@pytest.fixture(scope="module")
def outcome(nsd: NsdServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[str]], Any]:
    text = _config(list(CASES))
    config = tmp_path_factory.mktemp("dns") / "smtpconf.yaml"
    config.write_text(text)
    run = run_check(config, "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "3", "--no-probe")
    return rules_by_key(text, run.findings), run


@pytest.mark.parametrize("domain", list(CASES))
def test_each_domain_gives_exactly_its_rule(domain: str, outcome: tuple[dict[str, list[str]], Any]) -> None:
    by_key, run = outcome
    assert sorted(by_key[f"{domain}.dns.test"]) == CASES[domain][1], run.findings


def test_relays_resolve_through_the_nameserver(outcome: tuple[dict[str, list[str]], Any]) -> None:
    by_key, run = outcome
    assert by_key["lab"] == [] and by_key["gmail-ops"] == [], run.findings


def test_lookup_counts_are_in_the_messages(outcome: tuple[dict[str, list[str]], Any]) -> None:
    _, run = outcome
    messages = [f["message"] for f in run.findings if f["rule"] == "spf-too-many-lookups"]
    assert any("needs 12 DNS lookups (limit 10; include:c1.dns.test takes it over)" in m for m in messages), messages
    assert any("3 void lookups (limit 2)" in m for m in messages), messages


def test_a_missing_host_is_dns_no_address(nsd: NsdServer, tmp_path: Path) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  gone:\n    host: gone.dns.test\n    port: 587\n")
    run = run_check(config, "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "3")
    assert [f["rule"] for f in run.findings] == ["dns-no-address"] and run.returncode == 1


def test_a_refusing_server_is_unknown_not_missing(nsd: NsdServer, tmp_path: Path) -> None:
    # nsd answers REFUSED for a zone it does not serve.
    config = tmp_path / "smtpconf.yaml"
    config.write_text(_config([]).replace("relay.dns.test", "relay.elsewhere.example")
                      + "  elsewhere.example:\n    relays: [lab]\n    dkim_selectors: [s1]\n")
    run = run_check(config, "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "3", "--no-probe")
    by_key = rules_by_key(config.read_text(), run.findings)
    assert by_key["lab"] == ["dns-timeout"]
    assert sorted(by_key["elsewhere.example"]) == ["dns-timeout"] * 5  # SPF, DMARC, DKIM, MTA-STS, TLS-RPT


@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_a_nameserver_that_does_not_answer_is_dns_timeout(kind: str, tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: queries vanish
    try:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1] if kind == "silent" else closed_udp_port()
        config = tmp_path / "smtpconf.yaml"
        config.write_text(_config(["good"]))
        run = run_check(config, "--nameserver", f"127.0.0.1:{port}", "--timeout", "1")
    finally:
        silent.close()
    live = [f for f in run.findings if f["rule"] != "provider-credential-hint"]  # the offline info about Gmail
    assert live and {f["rule"] for f in live} == {"dns-timeout"}, live
    # Every query that could not be answered is reported: relays, accounts, and each domain record.
    assert len(live) >= 10, live
    assert run.returncode == 0  # a warning: unknown is not a failure without --strict
    assert run.seconds < 8, run.seconds


def closed_udp_port() -> int:
    """A UDP port with nothing bound (the kernel answers ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dmarc_falls_back_to_the_organizational_domain(tmp_path: Path) -> None:
    """RFC 9989 §4.10: a subdomain without a _dmarc record is covered by the first record of the
    tree walk (its sp= if there is one); when no name up to the top-level domain has one, it is
    still dmarc-missing."""
    zones = {
        "org.test": zone_text("org.test", [("_dmarc", "TXT", "v=DMARC1; p=reject")]),
        "weak.test": zone_text("weak.test", [("_dmarc", "TXT", "v=DMARC1; p=reject; sp=none")]),
        "bare.test": zone_text("bare.test", [("mail", "A", "127.0.0.1")]),
        "test": zone_text("test"),
    }
    domains = ["org.test", "sub.org.test", "deep.sub.org.test", "sub.weak.test", "sub.bare.test"]
    config = tmp_path / "smtpconf.yaml"
    text = "version: 1\ndomains:\n" + "".join(f"  {d}:\n    dmarc_policy: quarantine\n" for d in domains)
    config.write_text(text)
    with NsdServer(zones) as dns:
        run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "3", "--no-probe")
    by_key = {d: [r for r in rules if r.startswith("dmarc")] for d, rules in rules_by_key(text, run.findings).items()}
    assert by_key == {"org.test": [], "sub.org.test": [], "deep.sub.org.test": [],
                      "sub.weak.test": ["dmarc-weak-policy"], "sub.bare.test": ["dmarc-missing"]}, run.findings
    messages = {f["message"] for f in run.findings if f["rule"].startswith("dmarc")}
    assert any("sp=none (inherited from _dmarc.weak.test)" in m for m in messages), messages
    assert any("no DMARC record at _dmarc.sub.bare.test (nor at _dmarc.bare.test, _dmarc.test)" in m
               for m in messages), messages


def test_an_idn_domain_is_checked_for_the_srv_records_the_dns_target_writes(tmp_path: Path) -> None:
    """The dns target writes SRV records under the A-label of ``例子.测试``; the live check must
    expect the same records at the same name (it once compared accounts by A-label against the
    U-label of the domain, expected nothing and reported nothing)."""
    import json

    from smtpconf.cli import main

    domain, ascii_domain = "例子.测试", "xn--fsqu00a.xn--0zwm56d"
    text = ("version: 1\naccounts:\n"
            f"  - {{email: user@{domain}, host: smtp.{domain}, port: 465, security: tls}}\n"
            f"domains:\n  {domain}:\n    srv: true\n")
    config = tmp_path / "smtpconf.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["render", str(config), "-o", str(tmp_path / "out"), "--only", "dns"]) == 0
    rendered = (tmp_path / "out" / "dns" / f"{ascii_domain}.zone").read_text(encoding="utf-8")
    assert f"_submissions._tcp.{ascii_domain}." in rendered

    def srv_findings(zone_lines: str) -> list[dict[str, Any]]:
        with NsdServer({ascii_domain: zone_text(ascii_domain) + zone_lines}) as dns:
            run = run_check(config, "--nameserver", f"127.0.0.1:{dns.port}", "--timeout", "3", "--no-probe")
        return [f for f in run.findings if f["rule"] == "srv-mismatch"]

    assert srv_findings(rendered) == []
    without_srv = "".join(line + "\n" for line in rendered.splitlines() if " SRV " not in line)
    [missing] = srv_findings(without_srv)
    assert f"_submissions._tcp.{ascii_domain}" in missing["message"], json.dumps(missing, ensure_ascii=False)
