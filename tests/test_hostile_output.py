"""The output directory under hostile or careless use (SPEC §11): a render never deletes what
smtpconf did not write, never renders over its own input, and no signal leaves a staging or backup
directory (they hold live sasl_passwd credentials) behind. The signal tests run the real command on
a large generated file and send real signals; they wait for the render to reach the stage they
interrupt by polling the file system, never by sleeping."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from smtpconf.cli import main
from smtpconf.render import MANIFEST_NAME, RenderContext, RenderedFile
from tests.support.render import (  # noqa: F401  (plug_target is a fixture)
    ACCOUNTS_YAML, TargetRender, leftovers, plug_target, render_ok, tree, write_config,
)
from tests.support.signals import deliverable_stop_signals  # noqa: F401  (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
SMTPCONF = Path(sys.executable).with_name("smtpconf")
CLIENT_TARGETS = "thunderbird,autodiscover,mobileconfig"
# Enough files that a render takes seconds: every stage lasts long enough to be caught by polling.
BIG_TARGETS = "thunderbird,autodiscover,mobileconfig,msmtp,neomutt,git-send-email"


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "src", ACCOUNTS_YAML)


# --- symlinks and what a render may delete ---------------------------------------------------------

def test_output_through_a_symlink_replaces_the_real_directory_and_keeps_the_link(config: Path,
                                                                               tmp_path: Path) -> None:
    site = tmp_path / "site"
    render_ok(config, site, CLIENT_TARGETS)
    link = tmp_path / "link"
    link.symlink_to(site)  # absolute
    render_ok(config, link, "autodiscover")
    assert link.is_symlink() and os.readlink(link) == str(site)
    assert sorted({p.split("/")[0] for p in tree(site)}) == [MANIFEST_NAME, "autodiscover"]
    assert leftovers(tmp_path) == []


def test_output_through_a_symlink_never_deletes_the_users_own_directories(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    render_ok(config, site, CLIENT_TARGETS)
    (site / "photos").mkdir()
    (site / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    (site / "index.html").write_text("<h1>mine</h1>\n", encoding="utf-8")
    before = tree(site)
    link = tmp_path / "link"
    link.symlink_to(site)
    code, err = run_cli("render", str(config), "-o", str(link), "--only", "autodiscover", capsys=capsys)
    assert code == 2
    assert "did not write" in err and "index.html" in err and "photos" in err
    assert link.is_symlink() and tree(site) == before
    assert leftovers(tmp_path) == []


def test_the_users_files_beside_a_previous_output_are_never_deleted(config: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    render_ok(config, out, CLIENT_TARGETS)
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("mine\n", encoding="utf-8")
    before = tree(out)
    code, err = run_cli("render", str(config), "-o", str(out), "--only", CLIENT_TARGETS, capsys=capsys)
    assert code == 2 and "notes" in err
    assert tree(out) == before


# --- an output directory that holds the input -----------------------------------------------------

@pytest.mark.parametrize("what", ["the input file", "ca_file", "file secret"])
def test_an_output_directory_holding_the_input_is_refused(tmp_path: Path, what: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    render_ok(write_config(tmp_path / "first", ACCOUNTS_YAML), out, CLIENT_TARGETS)
    # A previous output, into which the user then put the smtpconf file or what it references.
    source = out if what == "the input file" else tmp_path / "src"
    text = ACCOUNTS_YAML
    if what == "ca_file":
        (out / "certs").mkdir()
        (out / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
        text = text.replace("    security: starttls\n", f"    security: starttls\n    ca_file: {out}/certs/ca.pem\n")
    if what == "file secret":
        (out / "secret.txt").write_text("s3cret\n", encoding="utf-8")
        text = text.replace("{file: secret.txt}", f"{{file: {out}/secret.txt}}")
    config = write_config(source, text)
    before = tree(out)
    code, err = run_cli("render", str(config), "-o", str(out), "--only", CLIENT_TARGETS, capsys=capsys)
    assert code == 2, err
    assert "holds" in err and "choose an output directory outside" in err
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_rendering_into_the_directory_of_the_input_is_refused(config: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(config.parent)
    code, err = run_cli("render", str(config), "-o", str(tmp_path), "--only", CLIENT_TARGETS, capsys=capsys)
    assert code == 2 and "holds the input file" in err
    assert tree(config.parent) == before


@pytest.mark.parametrize("only", [",", "", " , ,"])
def test_an_empty_only_is_a_usage_error(config: Path, tmp_path: Path, only: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    render_ok(config, out, CLIENT_TARGETS)
    before = tree(out)
    code, err = run_cli("render", str(config), "-o", str(out), "--only", only, capsys=capsys)
    assert code == 2 and "--only" in err and "names no target" in err
    assert tree(out) == before


# --- signals ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from generate import generate
    finally:
        sys.path.remove(str(ROOT / "bench"))
    path = tmp_path_factory.mktemp("big") / "big.yaml"
    path.write_text(generate(6000, 20, 20), encoding="utf-8")
    return path


def start_render(big: Path, out: Path, jobs: int) -> subprocess.Popen[bytes]:
    # A session of its own: a signal to its process group reaches the workers too, as a CI cancel does.
    return subprocess.Popen([str(SMTPCONF), "render", str(big), "-o", str(out), "--only", BIG_TARGETS,
                             "--jobs", str(jobs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def wait_until(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    """Poll until ``ready()``; the render must still be running then, or the test proves nothing."""
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, f"the render ended before {what}: {proc.stderr.read()!r}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"no {what} within 120 s"
        time.sleep(0.002)


def staging_with_files(parent: Path, marker: str) -> Callable[[], bool]:
    """True once a ``marker`` directory (.smtpconf- or .old-) beside the output holds a target."""
    def ready() -> bool:
        for entry in parent.iterdir():
            if marker in entry.name:
                inner = entry / "tree" if marker == ".old-" else entry
                try:
                    if any(inner.iterdir()):
                        return True
                except OSError:
                    pass
        return False
    return ready


def storm(proc: subprocess.Popen[bytes], signum: int) -> int:
    """Send ``signum`` again and again until the process ends (a user hammering Ctrl-C)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the render did not end under signals"
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            break
        time.sleep(0.001)
    return proc.wait()


@pytest.fixture
def outdir(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "parent"
    parent.mkdir()
    yield parent / "out"


@pytest.mark.parametrize("to", ["the process", "its process group"])
@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_during_a_render_leave_nothing_behind(big: Path, outdir: Path, signum: int,
                                                                jobs: int, to: str) -> None:
    proc = start_render(big, outdir, jobs)
    wait_until(proc, staging_with_files(outdir.parent, ".smtpconf-"), "the staging directory filling")
    if to == "the process":
        proc.send_signal(signum)
    else:
        os.killpg(proc.pid, signum)
    assert proc.wait(timeout=120) == 128 + signum
    assert "Traceback" not in proc.stderr.read().decode()  # type: ignore[union-attr]
    assert leftovers(outdir.parent) == []
    assert not outdir.exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_again_and_again_while_cleaning_up_leaves_nothing_behind(big: Path, outdir: Path,
                                                                        jobs: int) -> None:
    proc = start_render(big, outdir, jobs)
    wait_until(proc, staging_with_files(outdir.parent, ".smtpconf-"), "the staging directory filling")
    storm(proc, signal.SIGINT)
    assert leftovers(outdir.parent) == []
    assert not outdir.exists()


def test_ctrl_c_again_and_again_while_the_previous_output_is_removed(big: Path, outdir: Path) -> None:
    first = start_render(big, outdir, 2)
    assert first.wait(timeout=300) == 0, first.stderr.read()  # type: ignore[union-attr]
    proc = start_render(big, outdir, 2)
    wait_until(proc, staging_with_files(outdir.parent, ".old-"), "the previous output moving aside")
    storm(proc, signal.SIGINT)
    assert leftovers(outdir.parent) == []
    assert (outdir / MANIFEST_NAME).is_file()  # the new output, complete: the swap had happened


def test_a_killed_runs_leftovers_are_removed_by_the_next_run(big: Path, outdir: Path, config: Path) -> None:
    proc = start_render(big, outdir, 1)
    wait_until(proc, staging_with_files(outdir.parent, ".smtpconf-"), "the staging directory filling")
    proc.kill()  # SIGKILL: nothing can clean up
    proc.wait()
    assert leftovers(outdir.parent), "SIGKILL left the staging directory (the case to clean up)"
    render_ok(config, outdir, CLIENT_TARGETS)
    assert leftovers(outdir.parent) == []


def test_a_killed_swap_gives_the_previous_output_back_to_the_next_run(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        plug_target: Callable[[str, TargetRender], None]) -> None:
    out = tmp_path / "out"
    render_ok(config, out, CLIENT_TARGETS)
    before = tree(out)
    # What a run killed between its two renames leaves: the previous output moved aside, none in place.
    old = tmp_path / ".out.old-abcd1234"
    old.mkdir()
    out.rename(old / "tree")

    def broken(ctx: RenderContext) -> Iterator[RenderedFile]:
        raise ValueError("value not allowed")
        yield  # pragma: no cover

    plug_target("broken", broken)
    # The next run puts the previous output back first; then its own render fails: nothing changes.
    code, _ = run_cli("render", str(config), "-o", str(out), "--only", "broken", capsys=capsys)
    assert code == 2
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_a_running_renders_staging_directory_is_left_alone(config: Path, tmp_path: Path) -> None:
    # Another render of the same -o, alive: its staging directory is locked by it.
    other = tmp_path / ".out.smtpconf-live0001"
    other.mkdir()
    fd = os.open(other, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        render_ok(config, tmp_path / "out", "autodiscover")
        assert other.is_dir()
    finally:
        os.close(fd)
    render_ok(config, tmp_path / "out", "autodiscover")
    assert not other.exists()
