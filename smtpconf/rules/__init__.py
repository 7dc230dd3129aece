"""The rule registry.

Every finding smtpconf reports carries a stable rule id. Each id is declared once, in the module of
its family, with its default level and a docstring that *is* the user documentation
(``smtpconf lint --explain RULE`` and ``docs/rules.md`` print it). Offline rules also carry a check
over the model; ids emitted by a stage (the loader, the schema, the live probes) are declared
without one.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple

if TYPE_CHECKING:
    from smtpconf.load import JsonPath
    from smtpconf.model import Config


class Hit(NamedTuple):
    """What a rule check yields: where, and what is wrong there."""

    path: JsonPath
    message: str
    at_key: bool = False  # point at the key (a relay's name) rather than its value


Check = Callable[["Config"], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    doc: str
    check: Check | None = None
    live: bool = False

    @property
    def summary(self) -> str:
        """The first paragraph, on one line."""
        return " ".join(self.doc.split("\n\n", 1)[0].split())


REGISTRY: dict[str, Rule] = {}


def declare(rule_id: str, level: str, doc: str, *, live: bool = False) -> None:
    REGISTRY[rule_id] = Rule(rule_id, level, inspect.cleandoc(doc), None, live)


def rule(rule_id: str, level: str) -> Callable[[Check], Check]:
    """Register an offline rule; its docstring is its documentation."""

    def register(check: Check) -> Check:
        REGISTRY[rule_id] = Rule(rule_id, level, inspect.cleandoc(check.__doc__ or ""), check)
        return check

    return register


def all_rules() -> dict[str, Rule]:
    # Importing the families fills the registry; the order here is the order of docs/rules.md.
    import smtpconf.rules.syntax  # noqa: F401  (stage-emitted ids first)
    import smtpconf.rules.references  # noqa: F401
    import smtpconf.rules.secrets  # noqa: F401
    import smtpconf.rules.accounts  # noqa: F401
    import smtpconf.rules.tls  # noqa: F401
    import smtpconf.rules.providers  # noqa: F401
    import smtpconf.rules.fleet  # noqa: F401
    import smtpconf.rules.postfix  # noqa: F401
    import smtpconf.rules.live  # noqa: F401

    return REGISTRY
