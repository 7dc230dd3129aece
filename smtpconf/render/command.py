"""``smtpconf render FILE -o DIR [--only TARGET,...] [--format text|json] [--jobs N]``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from smtpconf.errors import FatalError
from smtpconf.render import parse_only, render_to_directory
from smtpconf.render.outdir import Stopped


@dataclass(frozen=True)
class RenderOptions:
    """What ``smtpconf render`` was asked to do (built by the CLI, or by hand)."""

    file: str
    output: str
    only: str | None = None  # "msmtp,postfix"; None: every target
    format: Literal["text", "json"] = "text"
    postfix_map_dir: str | None = None
    jobs: int | None = None  # None: parallel.default_workers decides


def execute(options: RenderOptions) -> int:
    from smtpconf.lint import gate, lint_path

    targets = parse_only(options.only)
    path = Path(options.file)
    if not path.exists():  # anything else (a FIFO, a device) is refused, with what it is, by load
        raise FatalError(f"{options.file}: no such file")
    result = lint_path(path, options.file)
    # Findings go to stderr, so that `--format json` prints only the manifest on stdout.
    config = gate(result, "render", "nothing was written")
    if config is None:
        return 1
    settings = {"postfix_map_dir": options.postfix_map_dir,
                # Asked for by name, a target that cannot be complete is an error; as part of "all
                # targets" it may leave out what another target covers (see docs/decisions.md).
                "all_targets": not options.only}
    notes: list[str] = []
    try:
        rendered = render_to_directory(config, targets, Path(options.output),
                                       {k: v for k, v in settings.items() if v}, notes, workers=options.jobs)
    except Stopped as stop:  # SIGTERM, SIGHUP: cleaned up; exit as a shell reports a signal
        return 128 + stop.signum
    for note in notes:
        print(f"smtpconf: note: {note}", file=sys.stderr)
    if options.format == "json":
        sys.stdout.write(rendered.manifest)
    else:
        out = options.output.rstrip("/") or "/"
        sys.stdout.write("".join(f"{out}/{path}\n" for path in rendered.paths))
        print(f"smtpconf: rendered {len(rendered.paths)} file(s) for {', '.join(targets)} into {options.output}",
              file=sys.stderr)
    return 0
