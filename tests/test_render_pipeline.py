"""The render pipeline every target shares, through the real CLI: deterministic bytes, atomic
output, refusals with exit codes, the JSON manifest and file modes."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator

import jinja2
import pytest

from smtpconf.cli import main
from smtpconf.errors import UnwritableValue
from smtpconf.lint import lint_path
from smtpconf.render import MANIFEST_NAME, SECRET_MODE, RenderContext, RenderedFile, render_target
from smtpconf.resources import resource_path
from tests.support.render import (  # noqa: F401  (plug_target is a fixture)
    ACCOUNTS_YAML, TargetRender, leftovers, plug_target, render_ok, tree, write_config,
)

CLIENT_TARGETS = "thunderbird,autodiscover,mobileconfig"
SMTPCONF = Path(sys.executable).with_name("smtpconf")


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*argv: str) -> Run:
        code = main(list(argv))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "src", ACCOUNTS_YAML)


def one_error(err: str, text: str) -> bool:
    """The failure is one clear line (info findings of the file may precede it)."""
    errors = [line for line in err.splitlines() if line.startswith("smtpconf: error: ")]
    return len(errors) == 1 and text in errors[0]


def test_same_input_same_bytes(config: Path, tmp_path: Path) -> None:
    render_ok(config, tmp_path / "one", CLIENT_TARGETS)
    render_ok(config, tmp_path / "two", CLIENT_TARGETS)
    first = tree(tmp_path / "one")
    assert len(first) == 8 + 4 + 4 + 1  # the three targets and the manifest
    assert first == tree(tmp_path / "two")
    render_ok(config, tmp_path / "one", CLIENT_TARGETS)  # again over its own output
    assert tree(tmp_path / "one") == first
    assert leftovers(tmp_path) == []


def test_json_manifest_lists_every_file_with_its_owner(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", CLIENT_TARGETS, "--format", "json")
    assert run.code == 0
    printed = json.loads(run.out)  # stdout holds the manifest only; findings went to stderr
    assert printed == json.loads((tmp_path / "out" / MANIFEST_NAME).read_text(encoding="utf-8"))
    written = set(tree(tmp_path / "out")) - {MANIFEST_NAME}
    assert {e["path"] for e in printed["files"]} == written
    for entry in printed["files"]:
        owners = set(entry) - {"path", "target"}
        assert len(owners) == 1 and owners <= {"account", "group", "domain"}, entry
        assert entry["target"] == entry["path"].split("/")[0]
    assert {"path": "autodiscover/用户@例子.测试.xml", "target": "autodiscover",
            "account": "用户@例子.测试"} in printed["files"]


def test_text_output_names_the_written_files(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", "autodiscover")
    assert run.code == 0
    assert str(tmp_path / "out" / "autodiscover" / "alerts@163.com.xml") in run.out.splitlines()
    assert "rendered 4 file(s)" in run.err


def test_a_new_render_replaces_the_previous_output(tmp_path: Path) -> None:
    render_ok(write_config(tmp_path / "a", ACCOUNTS_YAML), tmp_path / "out", "autodiscover")
    fewer = ACCOUNTS_YAML.split("  - email: alerts@163.com")[0]  # only xiaoming is left
    render_ok(write_config(tmp_path / "b", fewer), tmp_path / "out", "autodiscover")
    assert sorted(tree(tmp_path / "out")) == [MANIFEST_NAME, "autodiscover/xiaoming@example.com.xml"]


def test_file_with_lint_errors_is_refused(tmp_path: Path, cli: Callable[..., Run]) -> None:
    config = write_config(tmp_path / "src", """\
        version: 1
        accounts:
          - {email: a@example.com, host: smtp.example.com, port: 465, security: starttls,
             password: "inline-Sup3rS3cret"}
        """)
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", CLIENT_TARGETS)
    assert run.code == 1
    assert "[inline-secret]" in run.err and "[tls-port-mismatch]" in run.err
    assert "nothing was written" in run.err
    assert "inline-Sup3rS3cret" not in run.out + run.err
    assert not (tmp_path / "out").exists()


def test_broken_yaml_is_refused_without_touching_existing_output(config: Path, tmp_path: Path,
                                                                  cli: Callable[..., Run]) -> None:
    render_ok(config, tmp_path / "out", CLIENT_TARGETS)
    before = tree(tmp_path / "out")
    config.write_text("version: 1\naccounts: [\n", encoding="utf-8")
    run = cli("render", str(config), "-o", str(tmp_path / "out"))
    assert run.code == 1 and "[yaml-syntax]" in run.err
    assert tree(tmp_path / "out") == before


def test_unknown_target_is_a_usage_error(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", "thunderbird,outlook97")
    assert run.code == 2
    assert one_error(run.err, "unknown target(s) outlook97") and "thunderbird" in run.err
    assert not (tmp_path / "out").exists()


def test_missing_input_file(tmp_path: Path, cli: Callable[..., Run]) -> None:
    run = cli("render", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "out"))
    assert run.code == 2 and "no such file" in run.err
    assert not (tmp_path / "out").exists()


def test_a_file_where_the_output_directory_should_be(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("my notes\n", encoding="utf-8")
    run = cli("render", str(config), "-o", str(blocker), "--only", CLIENT_TARGETS)
    assert run.code == 2
    assert one_error(run.err, "is not a directory")
    assert blocker.read_text(encoding="utf-8") == "my notes\n"
    assert leftovers(tmp_path) == []


def test_an_output_directory_inside_a_file(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    # Root ignores permission bits, so "unwritable" here is a parent that is a regular file.
    (tmp_path / "build").write_text("", encoding="utf-8")
    run = cli("render", str(config), "-o", str(tmp_path / "build" / "clients"), "--only", CLIENT_TARGETS)
    assert run.code == 2
    assert one_error(run.err, "is a file, not a directory")
    assert (tmp_path / "build").read_bytes() == b""


def test_a_foreign_non_empty_directory_is_refused(config: Path, tmp_path: Path, cli: Callable[..., Run]) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key\n", encoding="utf-8")
    before = tree(home)
    run = cli("render", str(config), "-o", str(home), "--only", CLIENT_TARGETS)
    assert run.code == 2 and "not empty and was not written by smtpconf" in run.err
    assert tree(home) == before
    assert leftovers(tmp_path) == []


def test_an_empty_existing_directory_is_used(config: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    render_ok(config, tmp_path / "out", "autodiscover")
    assert (tmp_path / "out" / "autodiscover" / "alerts@163.com.xml").is_file()


def test_a_target_that_fails_leaves_the_output_as_it_was(config: Path, tmp_path: Path, cli: Callable[..., Run],
                                                         plug_target: Callable[[str, TargetRender], None]) -> None:
    render_ok(config, tmp_path / "out", CLIENT_TARGETS)
    before = tree(tmp_path / "out")

    def broken(ctx: RenderContext) -> Iterator[RenderedFile]:
        yield RenderedFile("broken/first", b"half", "broken")
        raise UnwritableValue("value not allowed in a Postfix setting or table: 'a b'")

    plug_target("broken", broken)
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", f"{CLIENT_TARGETS},broken")
    assert run.code == 2
    assert one_error(run.err, "broken: value not allowed")
    assert tree(tmp_path / "out") == before
    assert leftovers(tmp_path) == []


def test_a_bug_in_a_target_is_an_internal_error_not_a_refused_value(
        config: Path, tmp_path: Path, cli: Callable[..., Run], plug_target: Callable[[str, TargetRender], None]) -> None:
    """Only an escape's UnwritableValue is the user's value; any other exception (a ValueError
    from a bug of ours) says so, and the output stays as it was."""
    render_ok(config, tmp_path / "out", CLIENT_TARGETS)
    before = tree(tmp_path / "out")

    def buggy(ctx: RenderContext) -> Iterator[RenderedFile]:
        yield RenderedFile("buggy/first", b"half", "buggy")
        int("not a number")

    plug_target("buggy", buggy)
    run = cli("render", str(config), "-o", str(tmp_path / "out"), "--only", f"{CLIENT_TARGETS},buggy")
    assert run.code == 2
    assert "smtpconf: internal error: ValueError: invalid literal" in run.err and "please report it" in run.err
    assert tree(tmp_path / "out") == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target, template", [("msmtp", "msmtp/msmtprc.j2"),  # one file per account
                                              ("site", "site/page.html.j2")])  # per domain, and per account
def test_an_error_in_a_template_names_the_template_file_and_line(tmp_path: Path, target: str, template: str) -> None:
    """A template's bug shows where it is (SMTPCONF_DEBUG=1 prints this traceback): the template's
    own file and line, not a Python line of Jinja's compiled code or a wrapper template's."""
    lint = lint_path(write_config(tmp_path / "src", ACCOUNTS_YAML + "domains: {example.com: {}}\n"))
    assert lint.config is not None
    broken = tmp_path / "templates" / template
    broken.parent.mkdir(parents=True)
    broken.write_text("{# a template with a bug on line 3 #}\nfine\n{{ no_such_value }}\n", encoding="utf-8")
    ctx = RenderContext(lint.config)
    # The broken template first, the shipped ones for everything else.
    ctx.env.loader = jinja2.FileSystemLoader([str(tmp_path / "templates"), str(resource_path("templates"))])
    with pytest.raises(jinja2.UndefinedError, match="no_such_value") as raised:
        render_target(ctx, target)
    frames = [(frame.filename, frame.lineno) for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert (str(broken), 3) in frames


def _limit_file_size() -> None:
    # Runs in the child before exec: any write past 300 bytes fails with EFBIG (instead of the
    # default SIGXFSZ kill), as a full disk would, and root cannot override it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))


def test_a_write_that_fails_half_way_leaves_the_output_as_it_was(tmp_path: Path) -> None:
    first = write_config(tmp_path / "a", ACCOUNTS_YAML)
    render_ok(first, tmp_path / "out", CLIENT_TARGETS)
    before = tree(tmp_path / "out")
    # Different input, so a render that went through would change the tree.
    second = write_config(tmp_path / "b", ACCOUNTS_YAML.replace("name: 小明", "name: 小红"))
    proc = subprocess.run(
        [str(SMTPCONF), "render", str(second), "-o", str(tmp_path / "out"), "--only", CLIENT_TARGETS],
        capture_output=True, text=True, timeout=60, preexec_fn=_limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "File too large; nothing was changed" in proc.stderr
    assert tree(tmp_path / "out") == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_modes_secret_files_0600_public_files_0644(config: Path, tmp_path: Path, umask: int,
                                                   plug_target: Callable[[str, TargetRender], None]) -> None:
    def with_secret(ctx: RenderContext) -> Iterator[RenderedFile]:
        yield RenderedFile("vaultish/sasl_passwd", b"[smtp.example.com]:587 u:p\n", "vaultish", "group", "web",
                           SECRET_MODE)
        yield RenderedFile("vaultish/main.cf", b"relayhost = [smtp.example.com]:587\n", "vaultish", "group", "web")

    plug_target("vaultish", with_secret)
    old = os.umask(umask)
    try:
        manifest = render_ok(config, tmp_path / "out", "autodiscover,vaultish")
    finally:
        os.umask(old)
    modes = {path: mode for path, (_, mode) in tree(tmp_path / "out").items()}
    assert modes["vaultish/sasl_passwd"] == 0o600
    assert modes["vaultish/main.cf"] == 0o644
    assert modes["autodiscover/xiaoming@example.com.xml"] == 0o644
    assert {"path": "vaultish/sasl_passwd", "target": "vaultish", "group": "web"} in manifest["files"]


def test_an_interrupt_while_writing_leaves_no_stray_files(config: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    render_ok(config, out, CLIENT_TARGETS)
    before = tree(out)
    real_open, opened = os.open, []

    def interrupted_open(path: str, *args: int, **kwargs: int) -> int:
        opened.append(path)
        if len(opened) == 3:
            raise KeyboardInterrupt  # Ctrl-C half-way through the files
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", interrupted_open)
    assert main(["render", str(config), "-o", str(out), "--only", CLIENT_TARGETS]) == 130
    monkeypatch.undo()
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_a_failed_swap_puts_the_previous_output_back(config: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    render_ok(config, out, CLIENT_TARGETS)
    before = tree(out)
    real_rename = os.rename

    def failing_swap(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.startswith(".out.smtpconf-"):  # the new tree into place
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_swap)
    assert main(["render", str(config), "-o", str(out), "--only", CLIENT_TARGETS]) == 2
    monkeypatch.undo()
    assert tree(out) == before
    assert leftovers(tmp_path) == []
