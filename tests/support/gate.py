"""The integration gate.

Integration tests need root or Debian packages. On a laptop they skip with a reason; under
``SMTPCONF_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``) a missing prerequisite is a failure, so CI
can never go green by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("SMTPCONF_REQUIRE_INTEGRATION") == "1"


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI) because a prerequisite of this test is missing."""
    if REQUIRED:
        pytest.fail(f"integration prerequisite missing (SMTPCONF_REQUIRE_INTEGRATION=1): {reason}")
    pytest.skip(reason)


def need_program(name: str, package: str) -> str:
    """Return the path of ``name`` or skip/fail naming the Debian package that provides it."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        unavailable(f"{name} not found: apt-get install {package}")
    assert path is not None
    return path


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"needs root: {why}")
