from __future__ import annotations

import json

import pytest

from smtpconf.findings import Finding
from smtpconf.report import reporter
from smtpconf.rules import all_rules

FINDINGS = [
    Finding("mail/smtpconf.yaml", 12, 11, "error", "tls-port-mismatch",
            "relay 'ses': port 465 expects implicit TLS, but security is starttls"),
    Finding("mail/smtpconf.yaml", 3, 1, "warning", "yaml-truthy", "100% sure, a: b,\nsecond line"),
    Finding("mail/smtpconf.yaml", 5, 2, "info", "provider-credential-hint", "app password"),
]


def test_text_is_file_line_col_level_rule_message(monkeypatch: pytest.MonkeyPatch) -> None:
    text = reporter("text")(FINDINGS, all_rules())
    assert text.splitlines()[0] == (
        "mail/smtpconf.yaml:12:11: error [tls-port-mismatch] relay 'ses': port 465 expects implicit TLS, "
        "but security is starttls")
    assert "\033[" not in text  # not a terminal


def test_text_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[31merror" in reporter("text")(FINDINGS, all_rules())
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in reporter("text")(FINDINGS, all_rules())


def test_json_lists_findings_and_a_summary() -> None:
    data = json.loads(reporter("json")(FINDINGS, all_rules()))
    assert data["findings"][0] == {"file": "mail/smtpconf.yaml", "line": 12, "column": 11, "level": "error",
                                   "rule": "tls-port-mismatch", "message": FINDINGS[0].message}
    assert data["summary"] == {"error": 1, "warning": 1, "info": 1}


def test_sarif_has_what_github_code_scanning_reads() -> None:
    log = json.loads(reporter("sarif")(FINDINGS, all_rules()))
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    levels = []
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "mail/smtpconf.yaml"
        assert location["region"]["startLine"] >= 1 and location["region"]["startColumn"] >= 1
        levels.append(result["level"])
    assert levels == ["error", "warning", "note"]


def test_github_annotations_escape_data_and_properties() -> None:
    lines = reporter("github")(FINDINGS, all_rules()).splitlines()
    assert lines[0].startswith("::error file=mail/smtpconf.yaml,line=12,col=11,title=smtpconf tls-port-mismatch::")
    assert lines[1] == ("::warning file=mail/smtpconf.yaml,line=3,col=1,title=smtpconf yaml-truthy::"
                        "100%25 sure, a: b,%0Asecond line")
    assert lines[2].startswith("::notice ")


def test_sarif_uris_are_uri_references() -> None:
    findings = [Finding("mail/my file#1.yaml", 1, 1, "error", "schema", "x"),
                Finding("/srv/mail/smtpconf.yaml", 1, 1, "error", "schema", "y")]
    results = json.loads(reporter("sarif")(findings, all_rules()))["runs"][0]["results"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris == ["mail/my%20file%231.yaml", "file:///srv/mail/smtpconf.yaml"]
