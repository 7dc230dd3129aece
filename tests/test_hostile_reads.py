"""Every read is of a regular file and bounded by reading (SPEC §11): the smtpconf file, `ca_file`
and `{file:}` secrets; `/dev/zero`, a FIFO or a directory is a clear error at once, never gigabytes
or a hang. Secret commands are bounded too (output size, and time even when they leave a child
holding the pipe), and their error output is never repeated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smtpconf.model import SecretRef
from smtpconf.secrets import SecretError, resolve
from tests.helpers import lint_text, rules_at

SMTPCONF = Path(sys.executable).with_name("smtpconf")
ROOT = Path(__file__).resolve().parents[1]
# A hang or a read of gigabytes blows far past this; a clear error takes well under a second.
AT_ONCE = 30


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SMTPCONF), *argv], capture_output=True, text=True, timeout=AT_ONCE,
                          stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "smtpconf.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", [
    ["lint"], ["check", "--no-dns", "--no-probe"], ["render", "-o", "OUT"],
    ["send-test", "--account", "a@example.com", "--to", "b@example.com"],
])
def test_a_fifo_as_the_file_is_a_clear_error_at_once(fifo: Path, tmp_path: Path, command: list[str]) -> None:
    name, *options = command
    options = [str(tmp_path / "out") if o == "OUT" else o for o in options]
    done = run(name, str(fifo), *options)
    assert done.returncode == 2, done.stderr
    assert "a FIFO (named pipe), not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_lint_of_dev_zero_is_a_clear_error_at_once() -> None:
    done = run("lint", "/dev/zero")
    assert done.returncode == 2
    assert "/dev/zero: is a character device, not a regular file" in done.stderr


def test_an_oversized_file_is_measured_by_reading(tmp_path: Path) -> None:
    from smtpconf.files import NotReadable, read_regular

    path = tmp_path / "big"
    path.write_bytes(b"x" * 1000)
    assert read_regular(path, 1000) == b"x" * 1000
    with pytest.raises(NotReadable, match="larger than 999 bytes"):
        read_regular(path, 999)


def _config_with_ca(tmp_path: Path, ca_file: str) -> str:
    return f"""\
        version: 1
        relays:
          lab:
            host: smtp.lab.example.test
            port: 587
            security: starttls
            ca_file: {ca_file}
        """


@pytest.mark.parametrize("ca_file, problem", [
    ("/dev/zero", "a character device, not a regular file"),
    ("FIFO", "a FIFO (named pipe), not a regular file"),
    ("DIR", "a directory"),
    ("NOTPEM", "holds no PEM certificate"),
])
def test_a_ca_file_that_is_no_certificate_is_reported_at_its_line(tmp_path: Path, ca_file: str,
                                                                   problem: str) -> None:
    if ca_file == "FIFO":
        os.mkfifo(tmp_path / "ca.pem")
        ca_file = "ca.pem"
    elif ca_file == "DIR":
        (tmp_path / "certs").mkdir()
        ca_file = "certs"
    elif ca_file == "NOTPEM":
        (tmp_path / "ca.pem").write_text("this is not a certificate\n")
        ca_file = "ca.pem"
    started = time.monotonic()
    result = lint_text(tmp_path, _config_with_ca(tmp_path, ca_file))
    assert time.monotonic() - started < AT_ONCE
    assert rules_at(result.findings) == [(7, "ca-file-missing")]
    (finding,) = result.findings
    assert finding.col == 14 and problem in finding.message


def test_a_pem_ca_file_passes(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text((ROOT / "examples/certs/lab-ca.pem").read_text())
    assert lint_text(tmp_path, _config_with_ca(tmp_path, "ca.pem")).findings == []


@pytest.mark.parametrize("where", ["/dev/zero", "FIFO", "DIR", "BIG"])
def test_a_file_secret_that_is_not_a_small_regular_file_is_a_clear_error(tmp_path: Path, where: str) -> None:
    if where == "FIFO":
        os.mkfifo(tmp_path / "pw")
        where = str(tmp_path / "pw")
    elif where == "DIR":
        where = str(tmp_path)
    elif where == "BIG":
        (tmp_path / "pw").write_bytes(b"x" * (2 * 2**20))
        where = str(tmp_path / "pw")
    started = time.monotonic()
    with pytest.raises(SecretError, match=r"secret file .*: (is a|is larger than)"):
        resolve(SecretRef("file", where), tmp_path)
    assert time.monotonic() - started < AT_ONCE


def test_a_file_secret_on_dev_zero_is_a_render_error(tmp_path: Path) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text("""\
version: 1
relays:
  ses: {host: email-smtp.eu-west-1.amazonaws.com, port: 465, security: tls, username: AKIAEXAMPLE,
        password: {file: /dev/zero}}
fleet:
  web: {hosts: [web1.example.com], relay: ses}
""")
    done = run("render", str(config), "-o", str(tmp_path / "out"), "--only", "postfix")
    assert done.returncode == 2, done.stderr
    assert "secret file /dev/zero: is a character device, not a regular file" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_secret_command_printing_without_end_is_stopped(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SecretError, match="printed more than"):
        resolve(SecretRef("command", "yes"), tmp_path, timeout=AT_ONCE)
    assert time.monotonic() - started < AT_ONCE


def test_a_secret_command_leaving_a_child_on_its_output_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SecretError, match="timed out after 1s"):
        resolve(SecretRef("command", "sleep 60 & echo pw"), tmp_path, timeout=1)
    assert time.monotonic() - started < AT_ONCE


def test_a_failing_secret_commands_error_output_is_never_repeated(tmp_path: Path) -> None:
    helper = "echo 'error: token ya29.CANARY-tok3n rejected' >&2; exit 3"
    with pytest.raises(SecretError) as raised:
        resolve(SecretRef("command", helper), tmp_path)
    assert "CANARY" not in str(raised.value).replace(helper, "")
    assert "exited 3" in str(raised.value)


def test_a_working_secret_command_and_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pw\n")
    assert resolve(SecretRef("file", str(tmp_path / "pw")), tmp_path) == "file-pw"
    assert resolve(SecretRef("command", "printf 'cmd-pw\\n'"), tmp_path) == "cmd-pw"


@pytest.mark.parametrize("command", [["check", "--no-dns", "--timeout", "2"],
                                     ["send-test", "--relay", "lab", "--to", "b@example.com", "--timeout", "2"],
                                     ["render", "-o", "OUT"]])
def test_check_send_test_and_render_refuse_a_ca_file_on_dev_zero_at_once(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "smtpconf.yaml"
    config.write_text("version: 1\nrelays:\n  lab: {host: 127.0.0.1, port: 2587, security: starttls, "
                      "ca_file: /dev/zero}\n")
    name, *options = command
    done = run(name, str(config), *[str(tmp_path / "out") if o == "OUT" else o for o in options])
    assert done.returncode == 1, done.stderr
    assert "[ca-file-missing]" in done.stdout + done.stderr and "character device" in done.stdout + done.stderr
