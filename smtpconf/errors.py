"""The few errors that end a command. One handler in ``cli.main`` maps them to exit codes."""

from __future__ import annotations


class FatalError(RuntimeError):
    """A problem the user must fix before the command can do anything (exit 2)."""


class UsageError(FatalError):
    """Wrong flags or arguments (exit 2)."""


class RenderError(FatalError):
    """A render that cannot be completed; the output directory is left as it was (exit 2)."""


class UnwritableValue(RenderError):
    """A value the format of a file cannot hold (a line break in an msmtprc setting, a control
    character in XML): raised by the escapes of ``render/escape.py``, refused as the user's mistake.
    Any other exception in a target is a bug of ours."""
