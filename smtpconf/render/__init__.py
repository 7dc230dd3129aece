"""The render pipeline shared by every target.

A target is a module in this package with ``render(ctx) -> Iterable[RenderedFile]``: Python passes
data, Jinja2 templates in ``templates/`` decide the text, ``escape.py`` makes values safe per
format. The pipeline collects every file in memory, then writes them all at once into a temporary
directory beside the output directory and swaps it in, so a failed render leaves the output as it
was. Bytes are deterministic: same input, same output.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from smtpconf.errors import RenderError, UsageError
from smtpconf.model import Config
from smtpconf.resources import resource_path

if TYPE_CHECKING:
    import jinja2

# Target name -> module in this package. Order is the order of the manifest.
TARGETS = {
    "thunderbird": "thunderbird",
    "autodiscover": "autodiscover",
    "mobileconfig": "mobileconfig",
    "msmtp": "msmtp",
    "neomutt": "neomutt",
    "git-send-email": "gitsendemail",
    "dns": "dns",
    "postfix": "postfix",
    "ansible": "ansible",
}
MANIFEST_NAME = ".smtpconf-manifest.json"
SECRET_MODE = 0o600  # anything that holds or may hold a credential
PUBLIC_MODE = 0o644


class RenderedFile(NamedTuple):
    path: str  # relative to the output directory, '/'-separated
    content: bytes
    target: str
    owner_kind: str | None = None  # "account" | "group" | "domain" (SPEC §5 manifest)
    owner: str | None = None
    mode: int = PUBLIC_MODE


@dataclass
class RenderContext:
    config: Config
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # said to the user after a successful render

    @cached_property
    def env(self) -> jinja2.Environment:
        import jinja2

        from smtpconf.render.escape import FILTERS

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_path("templates"))),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # each format escapes explicitly with the filters of escape.py
            auto_reload=False,  # templates do not change during a render: no stat() per file written
        )
        env.filters.update(FILTERS)
        # Templates use none of Jinja's default globals (range, lipsum, ...); every render copies
        # them into a new context, 50,000 times for 10,000 accounts.
        env.globals.clear()
        return env

    def template(self, name: str, **data: Any) -> bytes:
        return self.env.get_template(name).render(**data).encode("utf-8")


def listed(names: list[str], limit: int = 10) -> str:
    """Names for a note, at most ``limit`` of them: a large file must not bury the rest of the output."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def safe_name(text: str) -> str:
    """A file-name component for an address or name: no separators, no leading dot."""
    cleaned = re.sub(r"[^\w@.+-]", "_", text)
    return "_" + cleaned if cleaned.startswith(".") or not cleaned else cleaned


def parse_only(only: str | None) -> list[str]:
    if not only:
        return list(TARGETS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(TARGETS)}")
    return [n for n in TARGETS if n in names]


def render(config: Config, targets: list[str], options: dict[str, Any] | None = None,
           notes: list[str] | None = None) -> list[RenderedFile]:
    """Every file of ``targets``; what a target wants the user to know goes into ``notes``."""
    ctx = RenderContext(config, options or {}, notes if notes is not None else [])
    files: list[RenderedFile] = []
    for name in targets:
        module = importlib.import_module(f"smtpconf.render.{TARGETS[name]}")
        try:
            files.extend(module.render(ctx))
        except ValueError as exc:  # an escape filter refusing a value its format cannot hold
            raise RenderError(f"{name}: {exc}; nothing was written") from None
    # Counted in one pass: list.count per path is quadratic, minutes for a 10,000-account file.
    duplicates = sorted(p for p, n in Counter(f.path for f in files).items() if n > 1)
    if duplicates:
        raise RenderError(f"two outputs would be written to the same path: {', '.join(duplicates)}")
    return files


def manifest(files: list[RenderedFile]) -> dict[str, Any]:
    entries = []
    for f in files:
        entry: dict[str, Any] = {"path": f.path, "target": f.target}
        if f.owner_kind:
            entry[f.owner_kind] = f.owner
        entries.append(entry)
    return {"files": entries}


def manifest_json(files: list[RenderedFile]) -> str:
    """The manifest as JSON, one file per line. (``indent=`` would switch json to its pure-Python
    encoder, which takes longer than writing the files themselves for 10,000 accounts.)"""
    entries = manifest(files)["files"]
    if not entries:
        return '{"files": []}\n'
    lines = ",\n".join("  " + json.dumps(entry, ensure_ascii=False) for entry in entries)
    return '{"files": [\n' + lines + "\n]}\n"


def write_atomic(files: list[RenderedFile], out_dir: Path) -> None:
    """Write ``files`` as the new content of ``out_dir``, all or nothing.

    The new tree is built in a temporary directory beside ``out_dir`` (same file system, so the
    final renames are atomic) and swapped in. ``out_dir`` is replaced only when it is absent, empty,
    or was written by smtpconf (it holds our manifest): a render never deletes a user's files.
    """
    out_dir = out_dir.absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise RenderError(f"{out_dir} is not empty and was not written by smtpconf; choose another -o "
                          "directory or empty it")
    parent = out_dir.parent
    if parent.exists() and not parent.is_dir():
        raise RenderError(f"cannot create {out_dir}: {parent} is a file, not a directory")
    if not parent.is_dir():
        raise RenderError(f"{parent} does not exist; create it first")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.smtpconf-", dir=parent))
    except OSError as exc:
        raise RenderError(f"cannot write in {parent}: {exc.strerror or exc}") from None
    old: Path | None = None
    try:
        staging.chmod(0o755)
        _write_tree(str(staging), files)
        (staging / MANIFEST_NAME).write_text(manifest_json(files), encoding="utf-8")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.rename(out_dir, old / "tree")
        os.rename(staging, out_dir)
    except BaseException as exc:  # Ctrl-C too: never leave credential files in a stray directory
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise RenderError(f"cannot write {out_dir}: {exc.strerror or exc}; nothing was changed") from None
        raise
    finally:
        if old is not None:
            if not out_dir.exists():
                os.rename(old / "tree", out_dir)  # the swap did not happen: put the previous output back
            shutil.rmtree(old, ignore_errors=True)


def _write_tree(root: str, files: list[RenderedFile]) -> None:
    """Create every file with its final mode, with as few system calls as possible: a 10,000-account
    render writes some 55,000 files, and the file system is a large part of the render's time."""
    for directory in sorted({f.path.rpartition("/")[0] for f in files}):
        os.makedirs(os.path.join(root, directory), mode=0o755, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    # With umask 0 the modes given are exact, so a credential file is created 0600 and is never
    # readable by others, not even for the instant a chmod would take.
    saved = os.umask(0)
    try:
        for f in files:
            fd = os.open(os.path.join(root, f.path), flags, f.mode)
            try:
                view = memoryview(f.content)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
    finally:
        os.umask(saved)
