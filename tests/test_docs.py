from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

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


FENCE = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def _file_examples() -> Iterator[tuple[str, str]]:
    for doc in DOCS:
        for number, (lang, body) in enumerate(FENCE.findall(doc.read_text(encoding="utf-8"))):
            data = yaml.safe_load(body) if lang == "yaml" else None
            if isinstance(data, dict) and {"relays", "accounts", "fleet", "domains"} & set(data):
                yield f"{doc.relative_to(ROOT).as_posix()}#{number}", body


@pytest.mark.parametrize(("where", "body"), [pytest.param(w, b, id=w) for w, b in _file_examples()])
def test_every_smtpconf_example_in_the_docs_lints_without_errors(where: str, body: str, tmp_path: Path) -> None:
    from smtpconf.lint import lint_path

    shutil.copytree(ROOT / "examples" / "certs", tmp_path / "certs")  # ca_file: certs/lab-ca.pem
    text = body if re.search(r"^version:", body, flags=re.MULTILINE) else "version: 1\n" + body
    (tmp_path / "smtpconf.yaml").write_text(text, encoding="utf-8")
    errors = [f"{f.line}: [{f.rule}] {f.message}" for f in lint_path(tmp_path / "smtpconf.yaml").findings
              if f.level == "error"]
    assert not errors, f"{where}: {errors}"


def test_the_file_examples_cover_the_oauth2_page_and_the_readme() -> None:
    where = {name.split("#")[0] for name, _ in _file_examples()}
    assert {"README.md", "docs/oauth2.md", "docs/file-format.md"} <= where


def _command_lines() -> Iterator[tuple[str, str]]:
    for doc in DOCS:
        for _, body in FENCE.findall(doc.read_text(encoding="utf-8")):
            for line in body.splitlines():
                if line.startswith("smtpconf "):  # `smtpconf a | smtpconf b` shows two commands
                    for command in line.split(" #")[0].split(" | "):
                        yield doc.relative_to(ROOT).as_posix(), command


def test_every_option_in_a_documented_command_line_exists() -> None:
    # A renamed flag must not live on in the docs: each `smtpconf CMD ... --flag` shown in a code
    # block is checked against the parser (the longest matching command).
    commands = dict(_commands(build_parser()))
    checked = 0
    for where, line in _command_lines():
        words = line.split()
        name = max((c for c in commands if words[:len(c.split())] == c.split()), key=len, default=None)
        if name is None:
            continue
        for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
            assert option in (*commands[name], "--help", "--version"), f"{where}: {name} has no {option}: {line}"
            checked += 1
    assert checked > 10


def test_docs_commands_md_lists_every_render_target() -> None:
    from smtpconf.render import TARGETS

    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    missing = [name for name in TARGETS if f"\n| `{name}` |" not in text]
    assert not missing, f"docs/commands.md's render table lacks {missing}"


def test_the_readme_quick_start_is_the_two_scripts() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    (_, block), = FENCE.findall(section)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == [
        "bash scripts/example.sh", "bash scripts/test.sh"]
