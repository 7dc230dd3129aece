"""Where the files that ship beside the code live: schemas/, templates/, roles/, providers.

They sit at the repository root (the layout the project documents), one level above the package;
smtpconf is installed from a checkout (``pip install -e .``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resource_path(*parts: str) -> Path:
    return ROOT.joinpath(*parts)
