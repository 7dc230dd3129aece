"""Packaging glue: ship schemas/, templates/ and roles/ inside the wheel.

They live at the repository root (where people look for them); a non-editable install (a wheel,
or the environment pre-commit builds for the hook) gets a copy under ``smtpconf/_resources/``,
which ``smtpconf.resources`` prefers when it exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES = ("schemas", "templates", "roles")


class build_py_with_resources(build_py):  # noqa: N801 - setuptools' naming
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "smtpconf" / "_resources"
        for name in RESOURCES:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(root / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_resources})
