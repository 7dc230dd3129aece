"""The offline pipeline: load ─► schema ─► references ─► model ─► rules ─► findings."""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from smtpconf.errors import FatalError
from smtpconf.findings import Finding
from smtpconf.load import Document, load
from smtpconf.model import Config, build
from smtpconf.rules import all_rules
from smtpconf.rules.references import check_references
from smtpconf.schema import validate

YAML_SUFFIXES = (".yaml", ".yml")


class FileResult(NamedTuple):
    file: str
    config: Config | None  # None when the file did not get as far as the model
    findings: list[Finding]


def gate(result: FileResult, command: str, consequence: str) -> Config | None:
    """The one gate for lint errors of the commands that act on a file (render, send-test): the
    file's findings go to stderr (stdout is the command's own output); the model to act on, or
    None when the file has an error and the command must stop (exit 1): the model is only
    trustworthy for a file that lints clean."""
    from smtpconf.report.text import report

    sys.stderr.write(report(result.findings, all_rules()))
    if result.config is not None and not any(f.level == "error" for f in result.findings):
        return result.config
    print(f"smtpconf: {command} refused: {result.file} has errors (above); {consequence}", file=sys.stderr)
    return None


def lint_path(path: Path, file: str | None = None) -> FileResult:
    file = file if file is not None else str(path)
    with _no_cyclic_gc():
        doc, findings = load(path, file)
        config = None
        if doc is not None:
            config, more = lint_document(doc)
            findings += more
            findings = [f for f in findings if not doc.ignored(f)]
    # An aliased value is checked once per path that uses it, at one position: report it once.
    findings = sorted(dict.fromkeys(findings), key=Finding.sort_key)
    return FileResult(file, config, findings)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Loading and modelling a file makes objects that all live on (nodes, values, the model),
    so the cyclic garbage collector, run every few hundred allocations, only rescans them: about
    half of lint's time on a large file (docs/benchmarks.md). Reference counting still frees
    what dies; the collector runs again after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def lint_document(doc: Document) -> tuple[Config | None, list[Finding]]:
    """Schema, references and offline rules. Each stage runs only when the one before found no
    error, because it relies on what that stage guarantees."""
    findings = [
        doc.found(e.path, "schema", e.message, key=e.at_key) for e in validate(doc.data)
    ]
    if findings:
        return None, findings
    findings = check_references(doc)
    if any(f.level == "error" for f in findings):
        return None, findings
    config = build(doc)
    for rule in all_rules().values():
        if rule.check is None:
            continue
        for hit in rule.check(config):
            findings.append(doc.finding(hit.path, hit.level or rule.level, rule.id, hit.message, key=hit.at_key))
    return config, findings


def expand(arguments: Iterable[str]) -> list[tuple[Path, str]]:
    """Files named on the command line; a directory stands for the YAML files below it."""
    paths: list[tuple[Path, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            # Hidden directories (.git, .venv, .github...) hold other tools' YAML, not smtpconf files.
            found = sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts[:-1]))
            if not found:
                raise FatalError(f"{argument}: directory has no .yaml or .yml files")
            paths.extend((p, str(p)) for p in found)
        elif not path.exists():
            raise FatalError(f"{argument}: no such file")
        else:
            paths.append((path, argument))
    return paths
