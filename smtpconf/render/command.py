"""``smtpconf render FILE -o DIR [--only TARGET,...] [--format text|json] [--jobs N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smtpconf.errors import FatalError
from smtpconf.render import parse_only, render_to_directory
from smtpconf.render.outdir import Stopped


def run(args: argparse.Namespace) -> int:
    from smtpconf.lint import gate, lint_path

    targets = parse_only(args.only)
    path = Path(args.file)
    if not path.exists():  # anything else (a FIFO, a device) is refused, with what it is, by load
        raise FatalError(f"{args.file}: no such file")
    result = lint_path(path, args.file)
    # Findings go to stderr, so that `--format json` prints only the manifest on stdout.
    config = gate(result, "render", "nothing was written")
    if config is None:
        return 1
    options = {"postfix_map_dir": getattr(args, "postfix_map_dir", None),
               # Asked for by name, a target that cannot be complete is an error; as part of "all
               # targets" it may leave out what another target covers (see docs/decisions.md).
               "all_targets": not args.only}
    notes: list[str] = []
    try:
        rendered = render_to_directory(config, targets, Path(args.output),
                                       {k: v for k, v in options.items() if v}, notes, workers=args.jobs)
    except Stopped as stop:  # SIGTERM, SIGHUP: cleaned up; exit as a shell reports a signal
        return 128 + stop.signum
    for note in notes:
        print(f"smtpconf: note: {note}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(rendered.manifest)
    else:
        out = args.output.rstrip("/") or "/"
        sys.stdout.write("".join(f"{out}/{path}\n" for path in rendered.paths))
        print(f"smtpconf: rendered {len(rendered.paths)} file(s) for {', '.join(targets)} into {args.output}",
              file=sys.stderr)
    return 0
