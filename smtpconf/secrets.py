"""Resolving secret references, only where a value is really needed (send-test, sasl_passwd).

Errors name the reference (``env GMAIL_APP_PASSWORD``), never a value.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from smtpconf.errors import FatalError
from smtpconf.model import SecretRef


class SecretError(FatalError):
    """A secret reference that cannot be resolved here."""


def resolve(secret: SecretRef, base_dir: Path, *, timeout: float = 30.0) -> str:
    if secret.kind == "inline":
        return secret.ref
    if secret.kind == "env":
        value = os.environ.get(secret.ref)
        if value is None:
            raise SecretError(f"environment variable {secret.ref} is not set")
        return value
    if secret.kind == "file":
        path = Path(secret.ref).expanduser()
        path = path if path.is_absolute() else base_dir / path
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"secret file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SecretError(f"secret file {path} is not UTF-8 text") from None
    if secret.kind == "command":
        try:
            done = subprocess.run(secret.ref, shell=True, capture_output=True, timeout=timeout, cwd=base_dir,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SecretError(f"secret command timed out after {timeout:g}s: {secret.ref}") from None
        if done.returncode != 0:
            # stderr may help ("gpg: decryption failed") and is not the secret; stdout could be.
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise SecretError(f"secret command exited {done.returncode}: {secret.ref}: {reason[0]}")
        try:
            return done.stdout.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"secret command printed something that is not UTF-8 text: {secret.ref}") from None
    raise SecretError(f"vault variable {secret.ref} is resolved by Ansible at deploy time, not by smtpconf "
                      "(render --only ansible)")
