"""Rendering in parallel processes, and the fast paths a 10,000-account render relies on: each must
give exactly what the plain way gives (the same files, bytes, manifest and notes; plistlib's bytes;
json's manifest), and a failure in a worker must leave the output as it was."""

from __future__ import annotations

import json
import os
import plistlib
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pytest

from smtpconf.cli import main
from smtpconf.errors import RenderError, UnwritableValue
from smtpconf.lint import lint_path
from smtpconf.model import Config
from smtpconf.render import (
    MANIFEST_NAME, RenderContext, RenderedFile, manifest_json, render, render_to_directory,
)
from smtpconf.render import parallel
from smtpconf.render.client_settings import incoming
from smtpconf.render.escape import url_userinfo
from smtpconf.render.mobileconfig import plist_xml, profile
from tests.support.render import (  # noqa: F401  (plug_target is a fixture)
    ACCOUNTS_YAML, TargetRender, leftovers, plug_target, tree, write_config,
)
from tests.support.signals import deliverable_stop_signals  # noqa: F401  (autouse fixture)

CLIENT_TARGETS = ["thunderbird", "autodiscover", "mobileconfig", "msmtp", "neomutt", "git-send-email", "dns"]
SMTPCONF = Path(sys.executable).with_name("smtpconf")
# Accounts for every client target, including one whose neomutt file leaves its incoming server out
# and one without an incoming server (no Apple profile): both targets then add a note.
MIXED_YAML = ACCOUNTS_YAML + """\
  - email: lab@lab.example
    host: smtp.lab.example
    port: 587
    security: starttls
    password: {env: LAB_PASSWORD}
    # smtpconf: ignore[plaintext-auth]
    incoming: {host: pop.lab.example, protocol: pop3, port: 110, security: none}
  - email: robot@lab.example
    host: smtp.lab.example
    port: 465
    security: tls
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    lint = lint_path(write_config(tmp_path / "src", MIXED_YAML))
    assert lint.config is not None and not [f for f in lint.findings if f.level == "error"]
    return lint.config


def test_two_workers_write_what_one_process_writes(config: Config, tmp_path: Path) -> None:
    serial_notes: list[str] = []
    serial = render_to_directory(config, CLIENT_TARGETS, tmp_path / "one", notes=serial_notes, workers=1)
    parallel_notes: list[str] = []
    forked = render_to_directory(config, CLIENT_TARGETS, tmp_path / "two", notes=parallel_notes, workers=2)
    assert tree(tmp_path / "one") == tree(tmp_path / "two")  # bytes and modes, manifest included
    assert forked == serial
    assert len(serial_notes) == 2 and parallel_notes == serial_notes  # in target order
    # And both are what the in-memory render gives.
    memory_notes: list[str] = []
    files = render(config, CLIENT_TARGETS, {}, memory_notes)
    assert forked.paths == [f.path for f in files]
    assert forked.manifest == manifest_json(files)
    assert parallel_notes == memory_notes
    assert "mobileconfig" in parallel_notes[0] and "neomutt" in parallel_notes[1]
    assert leftovers(tmp_path) == []


def test_replacing_a_large_output_removes_every_old_file(config: Config, tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_to_directory(config, CLIENT_TARGETS, out, workers=2)
    render_to_directory(config, ["msmtp"], out, workers=2)
    assert sorted(tree(out)) == sorted([MANIFEST_NAME] + [f.path for f in render(config, ["msmtp"])])
    assert leftovers(tmp_path) == []


def test_a_target_failing_in_a_worker_leaves_the_output_as_it_was(
        config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        plug_target: Callable[[str, TargetRender], None]) -> None:
    source = write_config(tmp_path / "src", MIXED_YAML)
    out = tmp_path / "out"
    assert main(["render", str(source), "-o", str(out), "--jobs", "2"]) == 0
    before = tree(out)

    def broken(ctx: RenderContext) -> Iterator[RenderedFile]:
        yield RenderedFile("broken/first", b"half", "broken")
        raise UnwritableValue("value not allowed in a Postfix setting or table: 'a b'")

    plug_target("broken", broken)
    capsys.readouterr()
    # Two workers share nine targets: whichever claims "broken", the render fails as a whole.
    code = main(["render", str(source), "-o", str(out), "--jobs", "2", "--only", ",".join(CLIENT_TARGETS + ["broken"])])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "smtpconf: error: broken: value not allowed" in err
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_an_interrupt_in_a_worker_leaves_no_stray_files(config: Config, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_config(tmp_path / "src", MIXED_YAML)
    out = tmp_path / "out"
    assert main(["render", str(source), "-o", str(out), "--jobs", "2"]) == 0
    before = tree(out)
    parent, real_open = os.getpid(), os.open
    started = tmp_path / "worker-started"

    def interrupted_in_the_worker(path: str, *args: Any, **kwargs: Any) -> int:
        if os.getpid() != parent:
            os.close(real_open(started, os.O_CREAT | os.O_WRONLY))
            raise KeyboardInterrupt  # Ctrl-C reaches the worker at its first file
        _wait_for(started)  # the parent does not take every target before the worker starts
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", interrupted_in_the_worker)
    code = main(["render", str(source), "-o", str(out), "--jobs", "2"])
    monkeypatch.undo()
    assert started.exists()
    assert code == 130
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def _wait_for(flag: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


class Boom(Exception):
    pass


@pytest.mark.parametrize("failure, raised, message", [
    (RenderError("msmtp: value refused; nothing was written"), RenderError, "msmtp: value refused"),
    (OSError(27, "File too large", "/out/x"), OSError, "File too large"),
    (KeyboardInterrupt(), KeyboardInterrupt, None),
    (Boom("a bug"), RuntimeError, "Boom: a bug"),
])
def test_a_failure_in_a_worker_is_raised_in_the_parent(tmp_path: Path, failure: BaseException,
                                                       raised: type[BaseException], message: str | None) -> None:
    parent = os.getpid()
    started = tmp_path / "worker-started"

    def work(item: int) -> int:
        if os.getpid() != parent:
            started.touch()
            raise failure
        _wait_for(started)  # the parent keeps item 0 until the worker has claimed item 1
        return item

    with pytest.raises(raised, match=message):
        parallel.map_in_workers([0, 1], work, 2)
    assert started.exists()


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    parent = os.getpid()
    started = tmp_path / "worker-started"

    def work(item: int) -> int:
        if os.getpid() != parent:
            started.touch()
            os._exit(3)  # killed, crashed: no result ever comes
        _wait_for(started)
        return item

    with pytest.raises(RuntimeError, match="ended without a result"):
        parallel.map_in_workers([0, 1], work, 2)


@pytest.mark.parametrize("when", ["working", "waiting for the worker"])
def test_an_interrupt_in_the_parent_stops_the_workers(tmp_path: Path, when: str) -> None:
    parent = os.getpid()
    worker_pid = tmp_path / "worker-pid"

    def work(item: int) -> int:
        if os.getpid() != parent:
            worker_pid.write_text(str(os.getpid()))
            time.sleep(60)  # still busy when the parent is interrupted
            return item
        _wait_for(worker_pid)
        if when == "working":
            raise KeyboardInterrupt
        # Ctrl-C in a moment, while the parent reads the worker's result.
        threading.Timer(0.3, os.kill, (parent, signal.SIGINT)).start()
        return item

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        parallel.map_in_workers([0, 1], work, 2)
    assert time.monotonic() - started < 30  # the worker was stopped, not waited for
    with pytest.raises(ProcessLookupError):  # and reaped: no process is left behind
        os.kill(int(worker_pid.read_text()), 0)


def test_without_fork_the_parent_does_all_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_more_processes() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_more_processes)
    assert parallel.map_in_workers(list(range(5)), lambda item: item + 1, 2) == [1, 2, 3, 4, 5]


def test_results_come_back_in_the_order_of_the_items() -> None:
    results = parallel.map_in_workers(list(range(40)), lambda item: (item * item, os.getpid()), 3)
    assert [square for square, _ in results] == [item * item for item in range(40)]


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))


def test_a_full_disk_in_a_worker_is_one_clear_error(tmp_path: Path) -> None:
    source = write_config(tmp_path / "src", MIXED_YAML)
    out = tmp_path / "out"
    assert main(["render", str(source), "-o", str(out), "--jobs", "2"]) == 0
    before = tree(out)
    changed = write_config(tmp_path / "changed", MIXED_YAML.replace("name: 小明", "name: 小红"))
    proc = subprocess.run([str(SMTPCONF), "render", str(changed), "-o", str(out), "--jobs", "2"],
                          capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "File too large; nothing was changed" in proc.stderr
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_a_large_file_is_rendered_in_parallel_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    accounts = "".join(f"  - {{email: user{i}@corp.example, host: smtp.corp.example, port: 465,"
                       f" incoming: {{host: imap.corp.example}}}}\n" for i in range(400))
    source = write_config(tmp_path / "src", "version: 1\naccounts:\n" + accounts)
    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counted_fork)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert main(["render", str(source), "-o", str(tmp_path / "auto"), "--only", ",".join(CLIENT_TARGETS)]) == 0
    assert forks  # 400 accounts x 7 targets: past PARALLEL_FROM
    forks.clear()
    assert main(["render", str(source), "-o", str(tmp_path / "one"), "--only", ",".join(CLIENT_TARGETS),
                 "--jobs", "1"]) == 0
    assert not forks
    assert tree(tmp_path / "auto") == tree(tmp_path / "one")
    capsys.readouterr()


def test_default_workers() -> None:
    assert parallel.default_workers(parallel.PARALLEL_FROM - 1) == 1
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert parallel.default_workers(parallel.PARALLEL_FROM) == expected


def test_jobs_must_be_a_positive_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_config(tmp_path / "src", MIXED_YAML)
    for bad in ("0", "-1", "two"):
        assert main(["render", str(source), "-o", str(tmp_path / "out"), "--jobs", bad]) == 2
        assert "argument -j/--jobs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- the fast paths give exactly what the plain way gives -------------------------------------

def test_profiles_are_plistlibs_bytes(config: Config) -> None:
    profiles = [profile(a, inbound) for a in config.accounts if (inbound := incoming(a)) is not None]
    assert len(profiles) >= 3
    for value in profiles:
        assert plist_xml(value) == plistlib.dumps(value, fmt=plistlib.FMT_XML, sort_keys=True)


@pytest.mark.parametrize("text", ["", "plain", "A & B <ops> \"quoted\" 'x'", "小明 <用户@例子.测试>",
                                  "line\r\nbreak\rmac", "tab\there", "emoji \U0001F600", "&amp; already"])
def test_plist_strings_nested_values_and_empty_containers_match_plistlib(text: str) -> None:
    value = {"b": text, "a": [text, 1, True, False, {}, [], {"z": text, "y": 0}], "c": {}, "d": [], text: 65535}
    assert plist_xml(value) == plistlib.dumps(value, fmt=plistlib.FMT_XML, sort_keys=True)


def test_manifest_is_the_json_of_its_entries() -> None:
    names = ["plain@example.com", 'q"uote\\back', "用户@例子.测试", "tab\tand\x01control", "</script>"]
    files = [RenderedFile(f"t/{name}", b"", "t", kind, name) for name in names
             for kind in ("account", "group", "domain", None)]
    expected = {"files": [{"path": f.path, "target": f.target, **({f.owner_kind: f.owner} if f.owner_kind else {})}
                          for f in files]}
    text = manifest_json(files)
    assert json.loads(text) == expected
    assert text.count("\n") == len(files) + 2  # one entry per line
    assert manifest_json([]) == '{"files": []}\n' and json.loads(manifest_json([])) == {"files": []}


@pytest.mark.parametrize("username", ["user@example.com", "apikey", "ops", "a+b@example.com", "用户@例子.测试",
                                      "with space", "pct%40", "~tilde_ok-.", ""])
def test_url_userinfo_is_percent_encoding(username: str) -> None:
    assert url_userinfo(username) == quote(username, safe="")
