from __future__ import annotations

from pathlib import Path

from smtpconf.rules import all_rules
from smtpconf.rules.docs import markdown

ROOT = Path(__file__).resolve().parents[1]
SPEC_IDS = """yaml-syntax duplicate-key yaml-alias-limit schema unknown-reference tls-port-mismatch plaintext-auth
inline-secret port-25-submission provider-credential-hint wrappermode-required tls-level-weak dns-no-address
dns-timeout srv-mismatch spf-missing spf-relay-not-included spf-too-many-lookups dmarc-missing dmarc-weak-policy
mta-sts-invalid probe-unreachable probe-timeout starttls-not-offered tls-handshake-failed cert-untrusted
cert-hostname-mismatch cert-expired cert-expiring auth-not-offered auth-before-tls""".split()


def test_every_spec_rule_id_is_registered_with_a_doc() -> None:
    rules = all_rules()
    assert set(SPEC_IDS) <= set(rules)
    for rule in rules.values():
        assert rule.level in ("error", "warning", "info") and len(rule.doc) > 40, rule.id


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == markdown(), (
        "regenerate: python -m smtpconf.rules.docs > docs/rules.md")
