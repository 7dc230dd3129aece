"""What every stage reports: a finding at a position in a file."""

from __future__ import annotations

from typing import Literal, NamedTuple

Level = Literal["error", "warning", "info"]
LEVELS: tuple[Level, ...] = ("error", "warning", "info")


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
