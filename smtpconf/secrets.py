"""Resolving secret references, only where a value is really needed (send-test, sasl_passwd).

Errors name the reference (``env GMAIL_APP_PASSWORD``), never a value, and never what a failing
command wrote to stderr. Every read is bounded: a secret file must be a regular file of at most
MAX_SECRET_BYTES; a command may print that much, within ``timeout`` in total, and is stopped with
every process it started when it takes longer (a child left holding its output would otherwise
keep the read open forever).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

from smtpconf.errors import FatalError
from smtpconf.files import NotReadable, read_regular
from smtpconf.model import SecretRef

# A password, token or client secret is a line; a file or command output beyond this is not one.
MAX_SECRET_BYTES = 2**20


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
            raw = read_regular(path, MAX_SECRET_BYTES)
        except NotReadable as exc:  # missing, a directory or device, too large
            raise SecretError(f"secret file {path}: {exc}") from None
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"secret file {path} is not UTF-8 text") from None
    if secret.kind == "command":
        code, out = _run(secret.ref, base_dir, timeout)
        if code != 0:
            # Not even the last line of its error output: a helper may print the token it rejects.
            raise SecretError(f"secret command exited {code}: {secret.ref} (its error output is not shown, "
                              "it may hold the secret: run the command yourself to see why)")
        try:
            return out.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretError(f"secret command printed something that is not UTF-8 text: {secret.ref}") from None
    raise SecretError(f"vault variable {secret.ref} is resolved by Ansible at deploy time, not by smtpconf "
                      "(render --only ansible)")


def _run(command: str, cwd: Path, timeout: float) -> tuple[int, bytes]:
    """Run ``command`` in a shell: its exit code and output, bounded in size and in time."""
    try:
        process = subprocess.Popen(command, shell=True, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise SecretError(f"secret command cannot be started: {exc.strerror or exc}: {command}") from None
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SecretError(f"secret command timed out after {timeout:g}s: {command}")
                if not selector.select(left):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_SECRET_BYTES:
                    raise SecretError(f"secret command printed more than {MAX_SECRET_BYTES // 2**20} MiB, "
                                      f"which is no secret: {command}")
                chunks.append(chunk)
        try:
            code = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SecretError(f"secret command timed out after {timeout:g}s: {command}") from None
    except BaseException:
        _stop(process)
        raise
    finally:
        process.stdout.close()
    return code, b"".join(chunks)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (its own session), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
