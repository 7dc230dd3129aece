from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from smtpconf.cli import build_parser

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


# The project's documentation stands alone: it is read on GitHub and in a checkout, where only the
# repository's own files exist.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown_text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (not - or _), spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", markdown_text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_of_the_docs_stays_in_the_repository_and_resolves(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text and "SPEC.md" not in text
    for target in LINK.findall(text):
        if target.startswith(("https://", "http://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: broken link {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path.read_text(encoding="utf-8")), f"{doc.name}: no heading for {target}"


def _commands(parser: argparse.ArgumentParser, prefix: str = "smtpconf") -> Iterator[tuple[str, list[str]]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options = [option for a in sub._actions for option in a.option_strings
                           if option.startswith("--") and option != "--help"]
                yield f"{prefix} {name}", options
                yield from _commands(sub, f"{prefix} {name}")


def test_docs_commands_md_describes_every_command_and_option() -> None:
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    commands = dict(_commands(build_parser()))
    assert "smtpconf lint" in commands and "smtpconf render" in commands
    for command, options in commands.items():
        assert f"`{command}" in text, f"docs/commands.md does not describe {command}"
        for option in options:
            assert f"`{option}" in text, f"docs/commands.md does not describe {command} {option}"


def _properties(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties":
                yield from value
            yield from _properties(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _properties(value)


def test_docs_file_format_md_describes_every_field_of_the_schema() -> None:
    text = (ROOT / "docs" / "file-format.md").read_text(encoding="utf-8")
    schema = json.loads((ROOT / "schemas" / "smtpconf.schema.json").read_text(encoding="utf-8"))
    fields = set(_properties(schema))
    assert {"relays", "oauth2", "refresh_token", "tls_level"} <= fields
    missing = sorted(name for name in fields if f"`{name}`" not in text and f"`{{{name}: " not in text)
    assert not missing, f"docs/file-format.md does not describe {missing}"
