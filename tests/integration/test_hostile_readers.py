"""The premises of the hostile-value lint rules (smtpconf/rules/hostile.py), shown with the real
readers: postmap drops a table line starting with '#', msmtp expands %-sequences in `from`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.gate import need_program

pytestmark = pytest.mark.integration


def test_postmap_reads_a_line_starting_with_a_hash_as_a_comment(tmp_path: Path) -> None:
    postmap = need_program("postmap", "postfix")
    (tmp_path / "main.cf").write_text("")
    table = tmp_path / "senders"
    table.write_text("#billing@example.com other\nops@example.com other\n")
    subprocess.run([postmap, "-c", str(tmp_path), str(table)], check=True)

    def query(key: str) -> int:
        return subprocess.run([postmap, "-c", str(tmp_path), "-q", key, f"hash:{table}"],
                              capture_output=True).returncode
    assert query("ops@example.com") == 0 and query("#billing@example.com") == 1


def test_msmtp_expands_percent_sequences_in_from(tmp_path: Path) -> None:
    msmtp = need_program("msmtp", "msmtp")
    rc = tmp_path / "msmtprc"
    rc.write_text("account a\nhost smtp.example.com\nfrom b%U@example.com\nauth off\naccount default : a\n")
    rc.chmod(0o600)
    done = subprocess.run([msmtp, "-C", str(rc), "--pretend", "-t"], input="", capture_output=True, text=True)
    (line,) = [l for l in done.stdout.splitlines() if l.startswith("from = ")]
    assert line != "from = b%U@example.com"  # replaced with the local user name


def test_fleet_groups_that_yaml_would_read_as_other_types_keep_their_hosts(tmp_path: Path) -> None:
    """`hosts: 010` is the integer 8 to YAML, `hosts: null` no pattern at all, `hosts: yes` the
    boolean: each play must still target its own group (ansible-playbook --list-hosts)."""
    from tests.support.ansible_run import program, run
    from tests.support.render import render_ok, write_config

    groups = {"yes": "h-yes.example.test", "010": "h-010.example.test", "null": "h-null.example.test",
              "0x1f": "h-hex.example.test"}
    fleet = "".join(f'  "{name}": {{hosts: [{host}], relay: lab, tls_level: encrypt}}\n'
                    for name, host in groups.items())
    config = write_config(tmp_path, "version: 1\nrelays:\n  lab: {host: smtp.lab.example.test, port: 587}\n"
                          f"fleet:\n{fleet}")
    render_ok(config, tmp_path / "out", "ansible")
    out = tmp_path / "out" / "ansible"
    done = run([program("ansible-playbook"), "-i", "inventory.ini", "playbook.yml", "--list-hosts"],
               cwd=out, home=tmp_path / "home", timeout=120)
    assert done.returncode == 0, done.output
    plays = re.findall(r"play #\d+ \(([^)]*)\):.*?hosts \((\d+)\):\n((?:\s+\S+\n)*)", done.output, re.DOTALL)
    assert {pattern: hosts.split() for pattern, _, hosts in plays} == {name: [host] for name, host in groups.items()}
