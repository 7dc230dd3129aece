"""Where the files that ship beside the code live: schemas/, templates/, roles/.

In a checkout (and an editable install) they are the repository's own directories, one level above
the package. A wheel carries copies under ``smtpconf/_resources/`` (setup.py puts them there),
which win when present.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_INSTALLED = _PACKAGE / "_resources"
ROOT = _INSTALLED if _INSTALLED.is_dir() else _PACKAGE.parent


def resource_path(*parts: str) -> Path:
    return ROOT.joinpath(*parts)
