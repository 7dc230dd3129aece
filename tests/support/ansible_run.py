"""Running ansible-playbook and ansible-lint from tests: offline, as root, in a private directory.

Every run gets an environment that keeps Ansible's own files (temp dirs, the galaxy/collection
cache, fact cache) under a test directory, turns colour off so output can be searched, and uses
this venv's Python on the managed host (which here is this machine, connection local).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

from tests.support.gate import unavailable

BIN = Path(sys.executable).parent


def program(name: str) -> str:
    """``ansible-playbook`` / ``ansible-lint`` from this venv (the test extra installs them)."""
    path = BIN / name
    if not path.is_file():
        unavailable(f"{name} not found beside {sys.executable}: pip install -e '.[test]'")
    return str(path)


def ansible_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({
        "HOME": str(home),  # ansible-lint and galaxy write caches under ~
        "ANSIBLE_HOME": str(home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(home / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "remote-tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_PIPELINING": "True",  # fewer file copies per task: a faster test, same result
        "ANSIBLE_GALAXY_DISABLE_GPG_VERIFY": "True",
        "PATH": f"{BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
    })
    return env


class Run(NamedTuple):
    returncode: int
    output: str  # stdout and stderr, interleaved as the user would see them

    def recap(self, host: str = "localhost") -> dict[str, int]:
        """The PLAY RECAP counters of ``host`` (ok, changed, failed, ...)."""
        match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", self.output, re.MULTILINE)
        assert match, f"no PLAY RECAP line for {host}:\n{self.output}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run(args: Sequence[str], *, cwd: Path, home: Path, timeout: float = 300,
        env: Mapping[str, str] | None = None) -> Run:
    # A session of its own, so that on a timeout (or Ctrl-C) the workers Ansible forked die too.
    with subprocess.Popen(list(args), cwd=cwd, env={**ansible_env(home), **(env or {})}, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return Run(process.returncode, output)
