"""smtpconf's own JSON Schema validator against the official JSON Schema 2020-12 test suite.

The suite (json-schema-org/JSON-Schema-Test-Suite, tests/draft2020-12, optional/ included) is read
from ``../shared/conformance/`` beside the clone, as CI provides it. Every group whose schema the
compiler accepts is run, and every case's validity must match; a group whose schema uses a keyword
the compiler does not know (it refuses those when compiling, so smtpconf's schema can never say
more than is checked) is skipped, and so are remote ``$ref``s, nested ``$id``s and other dialects.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from smtpconf.schema import validate, validator
from tests.helpers import lint_text
from tests.support.gate import unavailable

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT.parent / "shared" / "conformance" / "JSON-Schema-Test-Suite" / "tests" / "draft2020-12"
FILES = sorted(p.relative_to(SUITE).as_posix() for p in SUITE.rglob("*.json")) if SUITE.is_dir() else []


def suite_file(name: str) -> list[dict[str, Any]]:
    if not SUITE.is_dir():
        unavailable(f"the JSON Schema test suite is not at {SUITE} (a copy of shared/ beside the clone)")
    groups: list[dict[str, Any]] = json.loads((SUITE / name).read_text(encoding="utf-8"))
    return groups


def run_file(name: str) -> tuple[int, int, list[str]]:
    """Cases run, groups skipped (unsupported keywords), and the cases whose validity differs."""
    run, skipped, wrong = 0, 0, []
    for group in suite_file(name):
        try:
            check = validator(copy.deepcopy(group["schema"]))
        except ValueError:
            skipped += 1
            continue
        for case in group["tests"]:
            run += 1
            valid = not check(copy.deepcopy(case["data"]))
            if valid is not case["valid"]:
                wrong.append(f"{name}: {group['description']}: {case['description']}: "
                             f"expected {'valid' if case['valid'] else 'invalid'}")
    return run, skipped, wrong


@pytest.mark.parametrize("name", FILES or ["(suite missing)"])
def test_every_supported_group_of_the_suite_agrees(name: str) -> None:
    if not FILES:
        suite_file(name)
    _, _, wrong = run_file(name)
    assert wrong == []


def test_the_suite_runs_the_keywords_smtpconf_uses() -> None:
    """The selection by supported keywords must not quietly select nothing."""
    if not FILES:
        suite_file("")
    totals = {name: run_file(name)[0] for name in FILES}
    assert sum(totals.values()) >= 500
    for keyword in ("type", "enum", "const", "uniqueItems", "anyOf", "properties", "additionalProperties",
                    "required", "pattern", "minLength", "maxLength", "minimum", "maximum", "items",
                    "propertyNames", "minProperties", "maxProperties", "ref", "boolean_schema"):
        assert totals[f"{keyword}.json"] > 0, keyword


# The two verified gaps, without the suite (these failed before the fix).

def test_an_integral_number_is_an_integer_and_equals_it_in_const() -> None:
    assert validator({"type": "integer"})(1.0) == []
    assert validator({"type": "integer"})(1.5) != []
    assert validator({"const": 1})(1.0) == []
    assert validator({"enum": [1, 2]})(2.0) == []


def test_true_is_not_1_inside_lists_and_mappings() -> None:
    assert validator({"uniqueItems": True})([1, True]) == []
    assert validator({"uniqueItems": True})([[1], [True]]) == []
    assert validator({"uniqueItems": True})([{"a": 0}, {"a": False}]) == []
    assert validator({"uniqueItems": True})([1, 1.0]) != []
    assert validator({"uniqueItems": True})([{"a": [1]}, {"a": [1.0]}]) != []
    assert validator({"enum": [[True]]})([1]) != []
    assert validator({"const": {"a": False}})({"a": 0}) != []
    assert validator({"const": [1]})([1.0]) == []


def test_ecma_regex_classes_are_ascii_and_dollar_is_the_end() -> None:
    assert validator({"pattern": r"^\d+$"})("\u07c0") != []  # NKO DIGIT ZERO is no ECMA-262 digit
    assert validator({"pattern": r"^\w+$"})("é") != []
    assert validator({"pattern": r"^a$"})("a\n") != []  # Python's $ matches before a final newline
    assert validator({"pattern": r"^\s$"})("\ufeff") == []  # ECMA-262 white space
    assert validator({"pattern": r"^[^\s]$"})("\x1c") == []  # Python's \s has it, ECMA's not


def test_version_1_0_and_port_587_0_become_the_integers_in_the_model(tmp_path: Path) -> None:
    data = {"version": 1.0, "relays": {"lab": {"host": "smtp.example.com", "port": 587.0}}}
    assert validate(data) == []
    assert type(data["version"]) is int and type(data["relays"]["lab"]["port"]) is int
    result = lint_text(tmp_path, """\
        version: 1.0
        relays:
          lab: {host: smtp.example.com, port: 465.0, username: ops, password: {env: LAB_PASSWORD}}
        domains:
          example.com: {mta_sts: {mode: enforce, mx: [mx.example.com], max_age: 86400.0}}
        """)
    assert [f for f in result.findings if f.level == "error"] == []
    assert result.config is not None
    endpoint = result.config.relays["lab"].endpoint
    assert (endpoint.port, type(endpoint.port), endpoint.security) == (465, int, "tls")
    assert type(result.config.doc.data["version"]) is int


def test_a_fractional_port_is_still_refused(tmp_path: Path) -> None:
    result = lint_text(tmp_path, "version: 1\nrelays:\n  lab: {host: smtp.example.com, port: 587.5}\n")
    assert [(f.line, f.rule, f.message) for f in result.findings] == [
        (3, "schema", "`port`: expected an integer, got a number")]


def test_comparing_deeply_nested_values_is_a_finding_not_a_crash() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    assert [e.message for e in validate({"version": 1, "fleet": {"g": {"relay": "x", "hosts": [deep, []]}}})] == [
        "nesting is too deep"]
