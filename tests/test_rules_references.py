from __future__ import annotations

from pathlib import Path

from tests.helpers import lint_text, rules_at


def test_defined_names_pass(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays: {ops: {host: smtp.example.com}, ses: {provider: ses}}
        accounts: [{email: u@example.com, relay: ops}]
        fleet: {web: {relay: ops, sender_relays: {"@example.org": ses}}}
        domains: {example.com: {relays: [ops, ses]}}
        """)
    assert [f for f in result.findings if f.level == "error"] == []


def test_unknown_relays_and_providers_are_reported_with_a_suggestion(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays: {ops: {host: smtp.example.com}}
        accounts:
          - {email: u@example.com, relay: opps}
          - {email: v@example.com, provider: gmial}
          - {email: w@example.com, provider: ses, incoming: {provider: ses}}
        fleet: {web: {relay: ops, sender_relays: {"@example.org": nope}}}
        domains: {example.com: {relays: [ops, gone]}}
        """)
    assert rules_at(result.findings) == [(5, "unknown-reference"), (6, "unknown-reference"), (7, "unknown-reference"),
                                         (8, "unknown-reference"), (9, "unknown-reference")]
    messages = [f.message for f in result.findings]
    assert "did you mean 'ops'?" in messages[0] and "did you mean 'gmail'?" in messages[1]
    assert "has no imap server" in messages[2]
    assert result.config is None  # the model is not built on broken references


def test_an_invalid_idn_name_is_a_schema_error(tmp_path: Path) -> None:
    result = lint_text(tmp_path, "version: 1\nrelays: {a: {host: 'smtp.xn--\u00e9.example'}}\n")
    assert [f.rule for f in result.findings] in (["schema"],)


def test_the_same_address_twice_is_reported_at_the_second(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        accounts:
          - {email: ops@example.com, host: smtp.example.com}
          - {email: dev@example.com, host: smtp.example.com}
          - {email: Ops@Example.com, host: smtp.example.com}
        """)
    assert rules_at(result.findings) == [(6, "duplicate-account")]
    assert "line 4" in result.findings[0].message


def test_addresses_and_punycode_must_be_real(tmp_path: Path) -> None:
    result = lint_text(tmp_path, """
        version: 1
        relays:
          a: {host: "::1"}
          b: {host: 192.0.2.10}
          c: {host: xn--mnchen-3ya.example}
          d: {host: "::::"}
          e: {host: 1.2.3.999}
          f: {host: xn--zz.example}
        """)
    assert rules_at(result.findings) == [(7, "schema"), (8, "schema"), (9, "schema")]
    assert [f.message for f in result.findings] == [
        "`host`: not a valid IPv6 address", "`host`: not a valid IPv4 address",
        "`host`: not a valid internationalized host name (IDNA): check each label"]


def _many_relays(count: int, reference: str) -> str:
    """``count`` relays ``relay-number-NNNNN`` and as many accounts, each referring to ``reference``
    formatted with its number (bench/bench_lint.py times the same file at 10,000)."""
    relays = "".join(f"  relay-number-{i:05d}: {{host: smtp{i}.example.com}}\n" for i in range(count))
    accounts = "".join(f"  - {{email: u{i}@example.com, relay: {reference.format(i)}}}\n" for i in range(count))
    return f"version: 1\nrelays:\n{relays}accounts:\n{accounts}"


def test_near_miss_references_among_thousands_of_names_stay_fast_and_suggest_the_name(tmp_path: Path) -> None:
    import time

    count = 2000  # the quadratic fuzzy match took over a minute here; linear takes about a second
    started = time.monotonic()
    result = lint_text(tmp_path, _many_relays(count, "relay-numbr-{:05d}x"))
    assert time.monotonic() - started < 30
    unknown = [f for f in result.findings if f.rule == "unknown-reference"]
    assert len(unknown) == count
    assert "did you mean 'relay-number-00007'?" in unknown[7].message


def test_typical_typos_still_find_their_name_among_many(tmp_path: Path) -> None:
    text = _many_relays(500, "relay-number-{:05d}").replace("relay: relay-number-00001}", "relay: relay-nubmer-00001}")
    text = text.replace("relay: relay-number-00002}", "relay: Relay-number-00002}")
    text = text.replace("relay: relay-number-00003}", "relay: relay-numer-00003}")
    result = lint_text(tmp_path, text)
    messages = [f.message for f in result.findings if f.rule == "unknown-reference"]
    assert len(messages) == 3
    for number, message in zip((1, 2, 3), messages):
        assert f"did you mean 'relay-number-{number:05d}'?" in message, message


def test_without_a_close_name_the_message_lists_a_few_names_not_all(tmp_path: Path) -> None:
    result = lint_text(tmp_path, _many_relays(500, "relay-number-{:05d}").replace(
        "relay: relay-number-00001}", "relay: something-else}"))
    (finding,) = [f for f in result.findings if f.rule == "unknown-reference"]
    assert "relay-number-00000" in finding.message and "and 490 more" in finding.message
    assert len(finding.message) < 400
