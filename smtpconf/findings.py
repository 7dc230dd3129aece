"""What every stage reports: a finding at a position in a file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from smtpconf.load import JsonPath

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("error", "warning", "info")


class Hit(NamedTuple):
    """A problem at a path of the document, before it has a line and column: what the schema
    validator and the rule checks yield (``Document.found`` turns it into a ``Finding``)."""

    path: JsonPath
    message: str
    at_key: bool = False  # point at the key (an unknown key, a relay's name) rather than its value
    level: Level | None = None  # a rule whose level depends on the case (basic-auth-retired); else the rule's


class Finding(NamedTuple):
    file: str
    line: int  # 1-based
    col: int  # 1-based
    level: Level
    rule: str
    message: str

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.col, self.rule)


def fails(findings: list[Finding], strict: bool) -> bool:
    """Whether these findings make the command exit 1 (SPEC §3)."""
    failing = ("error", "warning") if strict else ("error",)
    return any(f.level in failing for f in findings)


def printable(text: str, limit: int = 60) -> str:
    """``text`` safe inside a one-line message: control characters (newlines, escape sequences,
    bidi overrides) shown escaped, long values cut. Keys and values from a file under review must
    not be able to forge or hide output lines."""
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
