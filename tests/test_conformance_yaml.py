"""smtpconf's YAML loader against ``yaml.safe_load`` on every case of the official YAML test suite.

The suite (yaml/yaml-test-suite, data branch: one ``in.yaml`` per case) is read from
``../shared/conformance/`` beside the clone, as CI provides it. For each case the loader must do what
``yaml.safe_load`` does: refuse what it refuses (with a finding at a line and column, never an
internal error) and give the same data for what it reads, except for the documented choices below
(docs/decisions.md, "YAML loader"). Each exception is checked, not assumed: a case counts as one only
when the loader's result is exactly what that choice says it should be.
"""

from __future__ import annotations

import base64
import datetime
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from smtpconf.load import load
from tests.support.gate import unavailable

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT.parent / "shared" / "conformance" / "yaml-test-suite" / "data"
CASES = sorted(p.parent.relative_to(SUITE).as_posix() for p in SUITE.rglob("in.yaml")) if SUITE.is_dir() else []

# The documented choices (docs/decisions.md): why the loader differs from yaml.safe_load there.
CHOICES = {
    "keys-are-text": "a mapping key is the text written (`163:` is the relay '163', `~:` the key '~')",
    "timestamp-text": "a timestamp stays its text (JSON has none; the schema judges it)",
    "binary-text": "!!binary stays its base64 text",
    "no-sets-or-omaps": "!!set, !!omap and !!pairs are refused: smtpconf files are JSON-shaped",
    "empty-file": "an empty document is the finding `file is empty`, not the value null",
    "duplicate-key": "a duplicate key is an error (yaml.safe_load keeps the last value silently)",
    "libyaml": "the loader parses with libyaml (PyYAML's C parser); where libyaml reads a case differently "
               "from PyYAML's Python parser, the loader does what yaml.CSafeLoader does",
}


class Outcome:
    """Data, or the fact that the input was refused."""

    def __init__(self, refused: bool, data: Any = None, why: str = "") -> None:
        self.refused, self.data, self.why = refused, data, why


def reference(text: bytes, loader: type) -> Outcome:
    try:
        return Outcome(False, yaml.load(text, Loader=loader))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError) as exc:  # its constructors' errors
        return Outcome(True, why=f"{type(exc).__name__}: {exc}")


def same(got: Any, expected: Any, choices: set[str]) -> bool:
    """Whether the loader's value is safe_load's, noting which documented choice made a difference."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(expected, (datetime.date, datetime.datetime)):
        choices.add("timestamp-text")
        return isinstance(got, str) and yaml.safe_load(f"!!timestamp {got}") == expected
    if isinstance(expected, bytes):
        choices.add("binary-text")
        return isinstance(got, str) and base64.decodebytes(got.encode()) == expected
    if isinstance(expected, list):
        return (isinstance(got, list) and len(got) == len(expected)
                and all(same(g, e, choices) for g, e in zip(got, expected)))
    if isinstance(expected, dict):
        if not isinstance(got, dict) or len(got) != len(expected):
            return False
        for key, value in got.items():
            if key in expected and isinstance(key, str):
                wanted = expected[key]
            else:  # a key safe_load typed (1, null, true): the loader keeps the text that was written
                typed = yaml.safe_load(key) if key else None
                if typed not in expected or isinstance(typed, str):
                    return False
                choices.add("keys-are-text")
                wanted = expected[typed]
            if not same(value, wanted, choices):
                return False
        return True
    return type(got) is type(expected) and got == expected


def classify(case: str) -> tuple[str, set[str]]:
    """``agree`` or ``exception`` (with the choices that explain it); anything else is a failure."""
    source = SUITE / case / "in.yaml"
    doc, findings = load(source, case)  # an exception here is an internal error: the test fails
    errors = [f for f in findings if f.level == "error"]
    assert all(f.line >= 1 and f.col >= 1 for f in errors)
    ours = Outcome(bool(errors) or doc is None, None if doc is None else doc.data,
                   "; ".join(f"{f.line}:{f.col} [{f.rule}] {f.message}" for f in errors))
    raw = source.read_bytes()
    for loader, choice in ((yaml.SafeLoader, None), (yaml.CSafeLoader, "libyaml")):
        expected = reference(raw, loader)
        choices: set[str] = set() if choice is None else {choice}
        if expected.refused and ours.refused:
            return ("agree" if choice is None else "exception"), choices
        if not expected.refused and not ours.refused and same(ours.data, expected.data, choices):
            return ("agree" if not choices else "exception"), choices
        if not expected.refused and ours.refused:
            rules = {f.rule for f in errors}
            if doc is None and expected.data is None and "file is empty" in ours.why:
                return "exception", choices | {"empty-file"}
            if rules == {"duplicate-key"}:
                return "exception", choices | {"duplicate-key"}
            if rules == {"yaml-syntax"} and all("!!set" in f.message or "!!omap" in f.message
                                                or "!!pairs" in f.message for f in errors):
                return "exception", choices | {"no-sets-or-omaps"}
    return "differs", set()


@pytest.mark.parametrize("case", CASES or ["(suite missing)"])
def test_the_loader_reads_every_suite_case_as_safe_load_does(case: str) -> None:
    if not CASES:
        unavailable(f"the YAML test suite is not at {SUITE} (a copy of shared/ beside the clone)")
    verdict, choices = classify(case)
    assert verdict in ("agree", "exception"), (
        f"{case}: loader {summary(case)}; yaml.safe_load {reference((SUITE / case / 'in.yaml').read_bytes(), yaml.SafeLoader).__dict__}")
    assert choices <= CHOICES.keys()


def summary(case: str) -> dict[str, Any]:
    doc, findings = load(SUITE / case / "in.yaml", case)
    return {"data": None if doc is None else doc.data, "findings": [f.message for f in findings]}


def test_the_documented_exceptions_are_few() -> None:
    """Most cases agree with yaml.safe_load outright; the choices explain only a handful."""
    if not CASES:
        unavailable(f"the YAML test suite is not at {SUITE}")
    verdicts = [classify(case) for case in CASES]
    agree = sum(1 for verdict, _ in verdicts if verdict == "agree")
    assert len(CASES) >= 350 and agree >= 0.9 * len(CASES)


@pytest.mark.parametrize("text, line, col, message", [
    ("host: !!bool foo\n", 1, 7, "'foo' is not a YAML boolean (!!bool)"),
    ("version: !!float abc\n", 1, 10, "'abc' is not a YAML number (!!float)"),
    ("version: !!int abc\n", 1, 10, "'abc' is not a YAML integer (!!int)"),
    ("relays: !foo {lab: {host: x}}\n", 1, 9, "unsupported YAML tag !foo on a mapping"),
    ("a: !!str {b: 1}\n", 1, 4, "unsupported YAML tag !!str on a mapping"),
    ("a: !!str [1]\n", 1, 4, "unsupported YAML tag !!str on a list"),
    ("!foo relays: {}\n", 1, 1, "unsupported YAML tag !foo"),
])
def test_what_safe_load_refuses_is_a_yaml_syntax_finding_at_its_place(tmp_path: Path, text: str, line: int,
                                                                     col: int, message: str) -> None:
    with pytest.raises(Exception):
        yaml.safe_load(text)
    path = tmp_path / "smtpconf.yaml"
    path.write_text(text, encoding="utf-8")
    _, findings = load(path, "smtpconf.yaml")
    assert [(f.line, f.col, f.rule) for f in findings if f.message.startswith(message)] == [(line, col, "yaml-syntax")]


def test_map_and_seq_tags_are_plain_mappings_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "smtpconf.yaml"
    path.write_text("version: 1\nrelays: !!map {lab: {host: x, port: !!int '587'}}\nx: !!seq [a]\n", encoding="utf-8")
    doc, findings = load(path, "smtpconf.yaml")
    assert findings == [] and doc is not None
    assert doc.data == {"version": 1, "relays": {"lab": {"host": "x", "port": 587}}, "x": ["a"]}
