"""The render pipeline shared by every target.

A target is a module in this package with ``render(ctx) -> Iterable[RenderedFile | Note]`` (the
``Target`` protocol): its files, and what the user should know about them. Python passes
data, Jinja2 templates in ``templates/`` decide the text, ``escape.py`` makes values safe per
format. The pipeline renders each target's files in memory and writes them into a temporary
directory beside the output directory, which is swapped in once every target is written, so a
failed render leaves the output as it was. Large renders share the targets out among processes
(``parallel.py``). Bytes are deterministic: same input, same output.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence, cast

from smtpconf.errors import RenderError, UnwritableValue, UsageError
from smtpconf.model import Account, Config
from smtpconf.render import outdir
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
    "site": "site",
    "postfix": "postfix",
    "ansible": "ansible",
}
MANIFEST_NAME = ".smtpconf-manifest.json"
SECRET_MODE = 0o600  # anything that holds or may hold a credential
PUBLIC_MODE = 0o644


class Rendered(NamedTuple):
    """What a render wrote into its output directory."""

    paths: list[str]  # relative, in the order of the manifest
    manifest: str  # the manifest, JSON (SPEC §5)


class RenderedFile(NamedTuple):
    path: str  # relative to the output directory, '/'-separated
    content: bytes
    target: str
    owner_kind: str | None = None  # "account" | "group" | "domain" (SPEC §5 manifest)
    owner: str | None = None
    mode: int = PUBLIC_MODE


class Note(NamedTuple):
    """What a target wants the user to know, said after a successful render."""

    text: str


class TargetResult(NamedTuple):
    files: list[RenderedFile]
    notes: list[str]


class Target(Protocol):
    """A render target: a module of this package (``TARGETS``) with this function."""

    def render(self, ctx: RenderContext) -> Iterable[RenderedFile | Note]: ...


if TYPE_CHECKING:  # mypy checks that every module of TARGETS is a Target
    from smtpconf.render import (ansible, autodiscover, dns, gitsendemail, mobileconfig, msmtp, neomutt, postfix,
                                 site, thunderbird)

    _TARGET_MODULES: tuple[Target, ...] = (thunderbird, autodiscover, mobileconfig, msmtp, neomutt, gitsendemail,
                                           dns, site, postfix, ansible)


@dataclass
class RenderContext:
    config: Config
    options: dict[str, Any] = field(default_factory=dict)
    # name -> template, asked 50,000 times (cheaper than the environment's cache)
    _templates: dict[str, jinja2.Template] = field(default_factory=dict, init=False, repr=False)

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
        """``name`` rendered with ``data``. Jinja's own ``Template.render``: an error in the template
        is raised with the template's file and line in its traceback."""
        template = self._templates.get(name)
        if template is None:
            template = self._templates[name] = self.env.get_template(name)
        return template.render(data).encode("utf-8")


def listed(names: list[str], limit: int = 10) -> str:
    """Names for a note, at most ``limit`` of them: a large file must not bury the rest of the output."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


_UNSAFE_IN_NAME = re.compile(r"[^\w@.+-]")


def safe_name(text: str) -> str:
    """A file-name component for an address or name: no separators, no leading dot."""
    cleaned = _UNSAFE_IN_NAME.sub("_", text)
    return "_" + cleaned if cleaned.startswith(".") or not cleaned else cleaned


def account_files(ctx: RenderContext, target: str, template: str, suffix: str,
                  data: Callable[[Account], dict[str, Any]], mode: int = PUBLIC_MODE,
                  accounts: Sequence[Account] | None = None) -> Iterator[RenderedFile]:
    """One file per account (of ``accounts``, by default all), ``TARGET/<address><suffix>``:
    ``template`` rendered with ``data(account)``."""
    for account in ctx.config.accounts if accounts is None else accounts:
        yield RenderedFile(f"{target}/{safe_name(account.email)}{suffix}", ctx.template(template, **data(account)),
                           target, "account", account.email, mode)


def parse_only(only: str | None) -> list[str]:
    if only is None:
        return list(TARGETS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:  # `--only ,` would render nothing and empty the output
        raise UsageError(f"--only {only!r} names no target; targets: {', '.join(TARGETS)}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(TARGETS)}")
    return [n for n in TARGETS if n in names]


def render_target(ctx: RenderContext, name: str) -> TargetResult:
    """The files and notes of one target. Each target writes only below its own directory, so the
    paths of two targets never collide and each target is checked on its own (the check of the
    whole set would need every file in one process)."""
    target = cast(Target, importlib.import_module(f"smtpconf.render.{TARGETS[name]}"))
    files: list[RenderedFile] = []
    notes: list[str] = []
    try:
        for item in target.render(ctx):
            if isinstance(item, Note):
                notes.append(item.text)
            else:
                files.append(item)
    except UnwritableValue as exc:  # an escape refusing a value its format cannot hold; anything else is a bug
        raise RenderError(f"{name}: {exc}; nothing was written") from None
    outside = [f.path for f in files if not f.path.startswith(name + "/")]
    if outside:  # a target's bug, not the user's: refuse before anything is written
        raise RenderError(f"{name}: {outside[0]} is outside the target's directory {name}/")
    # Counted in one pass: list.count per path is quadratic, minutes for a 10,000-account file.
    duplicates = sorted(p for p, n in Counter(f.path for f in files).items() if n > 1)
    if duplicates:
        raise RenderError(f"two outputs would be written to the same path: {', '.join(duplicates)}")
    return TargetResult(files, notes)


def render(config: Config, targets: list[str], options: dict[str, Any] | None = None,
           notes: list[str] | None = None) -> list[RenderedFile]:
    """Every file of ``targets``, in memory; what a target wants the user to know goes into ``notes``."""
    ctx = RenderContext(config, options or {})
    outputs = [render_target(ctx, name) for name in targets]
    if notes is not None:
        notes.extend(note for output in outputs for note in output.notes)
    return [file for output in outputs for file in output.files]


def render_to_directory(config: Config, targets: list[str], out_dir: Path, options: dict[str, Any] | None = None,
                        notes: list[str] | None = None, workers: int | None = None) -> Rendered:
    """Render ``targets`` as the new content of ``out_dir`` (see ``replace_directory``). Large
    renders run targets in parallel processes (``workers``, by default one per CPU), each writing
    its files straight into the staging directory; the bytes, the manifest and the notes are the
    same as in one process."""
    from smtpconf.render import parallel

    ctx = RenderContext(config, options or {})
    if workers is None:
        workers = parallel.default_workers(len(config.accounts) * len(targets))
    said: list[str] = []
    rendered = replace_directory(out_dir, lambda root: parallel.render_tree(ctx, targets, root, workers, said),
                                 workers, outdir.inputs_of(config))
    if notes is not None:
        notes.extend(said)
    return rendered


def manifest_lines(files: Sequence[RenderedFile]) -> str:
    """The manifest's entries for ``files``, one per line, as ``manifest_json`` writes them. Built
    from json's C string encoder, not one ``json.dumps`` per entry (docs/benchmarks.md)."""
    quoted = encode_basestring
    return ",\n".join(
        f'  {{"path": {quoted(f.path)}, "target": {quoted(f.target)}, {quoted(f.owner_kind)}: {quoted(f.owner or "")}}}'
        if f.owner_kind else f'  {{"path": {quoted(f.path)}, "target": {quoted(f.target)}}}'
        for f in files)


def manifest_from_lines(chunks: Iterable[str]) -> str:
    """The manifest from the ``manifest_lines`` of its parts, in order."""
    lines = ",\n".join(chunk for chunk in chunks if chunk)
    return '{"files": [\n' + lines + '\n]}\n' if lines else '{"files": []}\n'


def manifest_json(files: Sequence[RenderedFile]) -> str:
    """The manifest as JSON, one file per line: what ``json.dumps(..., ensure_ascii=False)`` writes,
    with a line break after each entry (``indent=`` would switch json to its slow pure-Python encoder)."""
    return manifest_from_lines([manifest_lines(files)])


def write_atomic(files: list[RenderedFile], out_dir: Path) -> None:
    """Write ``files`` as the new content of ``out_dir``, all or nothing."""
    def fill(root: str) -> Rendered:
        write_files(root, files)
        return Rendered([f.path for f in files], manifest_json(files))

    replace_directory(out_dir, fill)


def replace_directory(out_dir: Path, fill: Callable[[str], Rendered], workers: int = 1,
                      inputs: Iterable[tuple[str, str]] = ()) -> Rendered:
    """Make ``out_dir`` hold exactly what ``fill(root)`` writes into ``root``, all or nothing.

    ``fill`` writes the new tree into a staging directory beside ``out_dir`` (same file system, so
    the final renames are atomic) and says what it wrote; the tree is then swapped in, and the
    previous one removed (by up to ``workers`` processes). ``out_dir`` is followed through symbolic
    links, and replaced only when it is absent, empty, or holds nothing but a previous output of
    smtpconf (our manifest and target directories): a render never deletes a user's files, nor
    ``inputs`` (what, path), the files the render reads. Signals never leave the staging or backup
    directory behind (see ``outdir``).
    """
    out_dir = outdir.real_output(out_dir.absolute())
    if out_dir.exists() and not out_dir.is_dir():
        raise RenderError(f"{out_dir} exists and is not a directory")
    outdir.check_outside(out_dir, inputs)
    parent = out_dir.parent
    if parent.exists() and not parent.is_dir():
        raise RenderError(f"cannot create {out_dir}: {parent} is a file, not a directory")
    if not parent.is_dir():
        raise RenderError(f"{parent} does not exist; create it first")
    outdir.remove_leftovers(out_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MANIFEST_NAME).is_file():
            raise RenderError(f"{out_dir} is not empty and was not written by smtpconf; choose another -o "
                              "directory or empty it")
        outdir.check_only_ours(out_dir, [*TARGETS, MANIFEST_NAME])
    staging: Path | None = None
    old: Path | None = None
    locks: list[int] = []
    with outdir.stop_signals_raise():
        try:
            with outdir.signals_held():
                staging, lock = outdir.make_locked_dir(parent, f".{out_dir.name}.smtpconf-")
                locks.append(lock)
            staging.chmod(0o755)
            rendered = fill(str(staging))
            (staging / MANIFEST_NAME).write_text(rendered.manifest, encoding="utf-8")
            with outdir.signals_held():
                if out_dir.exists():
                    old, lock = outdir.make_locked_dir(parent, f".{out_dir.name}.old-")
                    locks.append(lock)
                    os.rename(out_dir, old / "tree")
                try:
                    os.rename(staging, out_dir)
                except OSError:
                    if old is not None and (old / "tree").exists():
                        os.rename(old / "tree", out_dir)  # the swap did not happen: put the previous output back
                    raise
        except BaseException as exc:  # Ctrl-C and SIGTERM too: never leave credential files in a stray directory
            with outdir.signals_held():
                if staging is not None:
                    shutil.rmtree(staging, ignore_errors=True)
                # A previous output that could not be put back stays aside, for the next run to restore.
                stranded = not os.path.lexists(out_dir) and old is not None and (old / "tree").exists()
                if old is not None and not stranded:
                    shutil.rmtree(old, ignore_errors=True)
                for lock in locks:
                    os.close(lock)
            if isinstance(exc, OSError):
                if staging is None:
                    raise RenderError(f"cannot write in {parent}: {exc.strerror or exc}") from None
                raise RenderError(f"cannot write {out_dir}: {exc.strerror or exc}; nothing was changed") from None
            raise
        with outdir.signals_held():  # the previous output: removed whole, even if Ctrl-C is pressed now
            try:
                if old is not None:
                    from smtpconf.render.parallel import remove_tree

                    remove_tree(str(old / "tree"), workers)  # a directory per target
            finally:
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
                for lock in locks:
                    os.close(lock)
    return rendered


def write_files(root: str, files: list[RenderedFile]) -> None:
    """Create every file with its final mode, with as few system calls as possible: a 10,000-account
    render writes some 55,000 files, and the file system is a large part of the render's time."""
    for directory in sorted({f.path.rpartition("/")[0] for f in files}):
        os.makedirs(os.path.join(root, directory), mode=0o755, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    # Paths are opened relative to the root, which the kernel then does not look up again per file.
    root_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    # With umask 0 the modes given are exact, so a credential file is created 0600 and is never
    # readable by others, not even for the instant a chmod would take.
    saved = os.umask(0)
    try:
        for f in files:
            fd = os.open(f.path, flags, f.mode, dir_fd=root_fd)
            try:
                written = os.write(fd, f.content)
                if written < len(f.content):  # a short write (a signal, a full disk): finish or fail
                    view = memoryview(f.content)[written:]
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
    finally:
        os.umask(saved)
        os.close(root_fd)
