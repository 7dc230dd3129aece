"""DMARC by RFC 9989 against a real nsd: the DNS tree walk (at most 8 queries; psd=y and psd=n stop
it, psd=u does not), the policy in force with the name it was found at (p=, sp=, np=, t=y), the
historic tags, several records at one name. What ``check`` says it found is read from its json
observations; what it says is wrong, from its findings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import rules_by_key, smtpconf
from tests.support.nsd import NsdServer, zone_text

pytestmark = pytest.mark.integration

Z = "dm.test"
DEEP = "a.b.c.d.e.f.g.deep.dm.test"  # 10 labels: the walk jumps from it to its last 7

# Records under dm.test (owner relative to the zone).
RECORDS = [
    ("_dmarc", "TXT", "v=DMARC1; p=none"),  # above every case: the walk goes past it only when unstopped
    ("_dmarc.own", "TXT", "v=DMARC1; p=reject"),
    ("_dmarc.npparent", "TXT", "v=DMARC1; p=reject; np=none"),
    ("live.npparent", "A", "127.0.0.1"),
    ("_dmarc.testing", "TXT", "v=DMARC1; p=quarantine; t=y"),
    ("_dmarc.testing-reject", "TXT", "v=DMARC1; p=reject; t=y"),
    ("_dmarc.old", "TXT", "v=DMARC1; p=reject; pct=50; rf=afrf; ri=86400"),
    ("_dmarc.two", "TXT", "v=DMARC1; p=reject"), ("_dmarc.two", "TXT", "v=DMARC1; p=quarantine"),
    ("_dmarc.dup.withparent", "TXT", "v=DMARC1; p=none"), ("_dmarc.dup.withparent", "TXT", "v=DMARC1; p=reject"),
    ("_dmarc.withparent", "TXT", "v=DMARC1; p=reject"),
    # A record 9 labels deep is skipped by the walk (RFC 9989 §4.10 step 5); deep.dm.test's is found.
    ("_dmarc.b.c.d.e.f.g.deep", "TXT", "v=DMARC1; p=none"),
    ("_dmarc.deep", "TXT", "v=DMARC1; p=reject"),
    ("_dmarc.psd", "TXT", "v=DMARC1; p=quarantine; psd=y"),
    ("_dmarc.unsure", "TXT", "v=DMARC1; p=reject; psd=u"),
    ("_dmarc.org", "TXT", "v=DMARC1; p=reject; psd=n"),
    ("_dmarc.other", "TXT", "v=spf1 -all"),  # not DMARC: ignored, the walk goes on
]

# domain -> (DMARC rule ids, (policy in force, tag, found at, organizational domain, queries))
CASES: dict[str, tuple[list[str], tuple[str, str, str, str, int] | None]] = {
    "own.dm.test": ([], ("reject", "p", "_dmarc.own.dm.test", "dm.test", 3)),
    "ghost.npparent.dm.test": (["dmarc-weak-policy"], ("none", "np", "_dmarc.npparent.dm.test", "dm.test", 4)),
    "live.npparent.dm.test": ([], ("reject", "p", "_dmarc.npparent.dm.test", "dm.test", 4)),
    "testing.dm.test": (["dmarc-weak-policy"], ("none", "p", "_dmarc.testing.dm.test", "dm.test", 3)),
    "testing-reject.dm.test": ([], ("quarantine", "p", "_dmarc.testing-reject.dm.test", "dm.test", 3)),
    "old.dm.test": (["dmarc-obsolete-tag"], ("reject", "p", "_dmarc.old.dm.test", "dm.test", 3)),
    "two.dm.test": (["dmarc-missing", "dmarc-weak-policy"], ("none", "p", "_dmarc.dm.test", "dm.test", 3)),
    "dup.withparent.dm.test": (["dmarc-missing"], ("reject", "p", "_dmarc.withparent.dm.test", "dm.test", 4)),
    DEEP: ([], ("reject", "p", "_dmarc.deep.dm.test", "dm.test", 8)),
    "mail.brand.psd.dm.test": ([], ("quarantine", "p", "_dmarc.psd.dm.test", "brand.psd.dm.test", 3)),
    "mail.unsure.dm.test": ([], ("reject", "p", "_dmarc.unsure.dm.test", "dm.test", 4)),
    "mail.org.dm.test": ([], ("reject", "p", "_dmarc.org.dm.test", "org.dm.test", 2)),
    "x.other.dm.test": (["dmarc-weak-policy"], ("none", "p", "_dmarc.dm.test", "dm.test", 4)),
}


@pytest.fixture(scope="module")
def nsd() -> Iterator[NsdServer]:
    with NsdServer({Z: zone_text(Z, RECORDS), "test": zone_text("test")}) as server:
        yield server


def _check(nsd: NsdServer, path: Path, domains: list[str]) -> tuple[str, dict[str, Any]]:
    text = "version: 1\ndomains:\n" + "".join(f"  {d}:\n    dmarc_policy: quarantine\n" for d in domains)
    path.write_text(text)
    done = smtpconf("check", str(path), "--format", "json", "--nameserver", f"127.0.0.1:{nsd.port}",
                    "--timeout", "3", "--no-probe")
    assert done.returncode in (0, 1), done.stderr
    return text, json.loads(done.stdout)


@pytest.fixture(scope="module")
def outcome(nsd: NsdServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return _check(nsd, tmp_path_factory.mktemp("dmarc") / "smtpconf.yaml", list(CASES))


@pytest.mark.parametrize("domain", list(CASES))
def test_each_domain_gets_its_policy_and_rules(domain: str, outcome: tuple[str, dict[str, Any]]) -> None:
    text, report = outcome
    rules = sorted(r for r in rules_by_key(text, report["findings"])[domain] if r.startswith("dmarc"))
    expected_rules, expected_seen = CASES[domain]
    assert rules == expected_rules, report["findings"]
    [seen] = [d for d in report["observations"][0]["domains"] if d["domain"] == domain]
    dmarc = seen["dmarc"]
    got = (dmarc["policy"], dmarc["tag"], dmarc["found_at"], dmarc["organizational_domain"], dmarc["queries"])
    assert got == expected_seen


def test_the_walk_never_makes_more_than_8_queries(outcome: tuple[str, dict[str, Any]]) -> None:
    _, report = outcome
    assert max(d["dmarc"]["queries"] for d in report["observations"][0]["domains"]) == 8


def test_messages_say_what_is_in_force_and_why(outcome: tuple[str, dict[str, Any]]) -> None:
    _, report = outcome
    messages = {f["message"] for f in report["findings"] if f["rule"].startswith("dmarc")}
    assert any("np=none (inherited from _dmarc.npparent.dm.test)" in m for m in messages), messages
    assert any("p=quarantine with t=y, applied as none" in m for m in messages), messages
    assert any("pct=50, rf=afrf, ri=86400" in m and "replaced by t=y" in m for m in messages), messages
    assert any("2 DMARC records at _dmarc.two.dm.test: receivers discard them all" in m for m in messages), messages
    assert any("2 DMARC records at _dmarc.dup.withparent.dm.test" in m
               and "the policy in force is then the one at _dmarc.withparent.dm.test" in m for m in messages), messages


def test_text_output_names_where_the_policy_was_found(nsd: NsdServer, tmp_path: Path) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\ndomains:\n  mail.brand.psd.dm.test: {dmarc_policy: quarantine}\n")
    done = smtpconf("check", str(config), "--nameserver", f"127.0.0.1:{nsd.port}", "--timeout", "3", "--no-probe")
    assert ("domain mail.brand.psd.dm.test: SPF not verified, DMARC p=quarantine at _dmarc.psd.dm.test "
            "(3 queries, organizational domain brand.psd.dm.test)") in done.stdout, done.stdout
