"""SARIF 2.1.0, as GitHub code scanning reads it (upload with github/codeql-action/upload-sarif)."""

from __future__ import annotations

import json
from pathlib import PurePath, PurePosixPath
from urllib.parse import quote

from smtpconf import __version__
from smtpconf.findings import Finding
from smtpconf.rules import Rule

_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_INFO_URI = "https://github.com/smtpconf/smtpconf"


def _uri(file: str) -> str:
    # SARIF wants a URI reference; GitHub resolves relative ones against the repository root.
    path = PurePosixPath(PurePath(file).as_posix())
    if path.is_absolute():
        return path.as_uri()
    return quote(path.as_posix().removeprefix("./"))


def report(findings: list[Finding], rules: dict[str, Rule]) -> str:
    used = sorted({f.rule for f in findings} | {r for r in rules if rules[r].check is not None})
    index = {rule_id: i for i, rule_id in enumerate(used)}
    descriptors = []
    for rule_id in used:
        rule = rules.get(rule_id)
        doc = rule.doc if rule else rule_id
        descriptors.append({
            "id": rule_id,
            "name": "".join(part.capitalize() for part in rule_id.split("-")),
            "shortDescription": {"text": doc.split("\n", 1)[0]},
            "fullDescription": {"text": doc},
            "help": {"text": doc, "markdown": doc},
            "helpUri": f"{_INFO_URI}/blob/main/docs/rules.md#{rule_id}",
            "defaultConfiguration": {"level": _LEVEL[rule.level if rule else "error"]},
        })
    results = [{
        "ruleId": f.rule,
        "ruleIndex": index[f.rule],
        "level": _LEVEL[f.level],
        "message": {"text": f.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": _uri(f.file)},
            "region": {"startLine": f.line, "startColumn": f.col},
        }}],
    } for f in findings]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "columnKind": "unicodeCodePoints",  # our columns count characters, not UTF-16 units
            "tool": {"driver": {"name": "smtpconf", "version": __version__, "informationUri": _INFO_URI,
                                "rules": descriptors}},
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"
