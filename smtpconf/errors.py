"""The few errors that end a command. One handler in ``cli.main`` maps them to exit codes."""

from __future__ import annotations


class FatalError(RuntimeError):
    """A problem the user must fix before the command can do anything (exit 2)."""


class UsageError(FatalError):
    """Wrong flags or arguments (exit 2)."""


class RenderError(FatalError):
    """A render that cannot be completed; the output directory is left as it was (exit 2)."""
