"""The rule registry.

Every finding smtpconf reports carries a stable rule id. Each id is declared once, in the module of
its family, with its default level and a docstring that *is* the user documentation
(``smtpconf lint --explain RULE`` and ``docs/rules.md`` print it). Offline rules also carry a check
over the model; ids emitted by a stage (the loader, the schema, the live probes) are declared
without one.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from smtpconf.findings import Hit, Level

if TYPE_CHECKING:
    from smtpconf.model import Config

__all__ = ["Check", "Hit", "Level", "REGISTRY", "Rule", "all_rules", "declare", "level_of", "rule"]


Check = Callable[["Config"], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    doc: str
    check: Check | None = None
    live: bool = False

    @property
    def summary(self) -> str:
        """The first paragraph, on one line."""
        return " ".join(self.doc.split("\n\n", 1)[0].split())


REGISTRY: dict[str, Rule] = {}
_FAMILY: dict[str, str] = {}  # rule id -> the module that declared it


def declare(rule_id: str, level: Level, doc: str, *, family: str, live: bool = False) -> None:
    """Declare an id a stage emits (no check over the model); ``family`` is the declaring
    module's ``__name__``."""
    REGISTRY[rule_id] = Rule(rule_id, level, inspect.cleandoc(doc), None, live)
    _FAMILY[rule_id] = family


def level_of(rule_id: str) -> Level:
    """The default level of a declared rule: stages that emit a rule's findings ask here rather
    than repeat it. The stage-emitted families are imported on first use."""
    found = REGISTRY.get(rule_id)
    if found is None:
        for family in _STAGE_FAMILIES:
            importlib.import_module(f"smtpconf.rules.{family}")
        found = REGISTRY[rule_id]
    return found.level


def rule(rule_id: str, level: Level) -> Callable[[Check], Check]:
    """Register an offline rule; its docstring is its documentation."""

    def register(check: Check) -> Check:
        REGISTRY[rule_id] = Rule(rule_id, level, inspect.cleandoc(check.__doc__ or ""), check)
        _FAMILY[rule_id] = check.__module__
        return check

    return register


# The rule families, in the order of docs/rules.md and `lint --list-rules` (stage-emitted ids first).
FAMILIES = ("syntax", "references", "secrets", "accounts", "tls", "providers", "oauth2", "fleet", "postfix", "hostile",
            "site", "live")
_STAGE_FAMILIES = ("syntax", "references", "live")  # ids the loader, schema, references and probes emit


def all_rules() -> dict[str, Rule]:
    # Importing the families fills the registry. A family may have been imported earlier
    # (smtpconf.lint imports references), so order by FAMILIES, not by import time.
    for family in FAMILIES:
        importlib.import_module(f"smtpconf.rules.{family}")
    rank = {f"smtpconf.rules.{family}": index for index, family in enumerate(FAMILIES)}
    ordered = sorted(REGISTRY.values(), key=lambda r: rank.get(_FAMILY.get(r.id, ""), len(rank)))
    return {r.id: r for r in ordered}
