"""A real Dovecot (Debian 12's ``dovecot-imapd``, 2.3) serving IMAP on loopback for the tests.

Each :class:`DovecotServer` is a private instance: its own configuration, ``base_dir``,
``state_dir``, log file and mail store in a private prefix, and two 127.0.0.1 high ports, one
for IMAP with STARTTLS (143-style) and one for implicit TLS (993-style), both presenting a
certificate of the test CA. The system Dovecot is never used (the install script disables it).

Logins:

* ``users`` (name -> password): a ``passwd-file`` passdb, mechanisms PLAIN and LOGIN, and only
  after TLS (Dovecot's default ``disable_plaintext_auth``).
* ``idp`` (an :class:`~tests.support.idp.IdentityProvider`): an ``oauth2`` passdb for XOAUTH2
  and OAUTHBEARER. Dovecot hands the bearer token to the IdP's RFC 7662 introspection endpoint
  (``introspection_mode = post``, HTTP Basic as the IdP's resource) and lets the login in only
  when the answer is ``"active": true`` and its ``username`` is the user the client named.

The prefix is a ``tempfile.mkdtemp`` directory, not pytest's ``tmp_path``: Dovecot refuses mail
access as root, so the mail store belongs to ``nobody``, and pytest's temporary tree is closed
(0700) to every other user. Dovecot needs root to start (it drops privileges itself).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.gate import need_program, need_root, unavailable
from tests.support.idp import IdentityProvider
from tests.support.nsd import free_port
from tests.support.smtpserver import LOOPBACK, TestCA

MAIL_USER, MAIL_GROUP = "nobody", "nogroup"
_LOGIN = re.compile(r"imap-login: Info: Login: user=<([^>]*)>, method=([A-Z0-9-]+),[^\n]*?, TLS[,:]")
_REFUSED = re.compile(r"auth: Info: (?:passwd-file|oauth2)\(([^,]*),[^)]*\): ([^\n]*)")


def _quote(value: str) -> str:
    """A Dovecot configuration value in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DovecotServer:
    """``with DovecotServer(test_ca, users={...}, idp=idp) as imap: imap.deliver(user, message)``."""

    def __init__(self, ca: TestCA, *, users: dict[str, str] | None = None,
                 idp: IdentityProvider | None = None) -> None:
        need_root("Dovecot starts as root and drops privileges itself")
        self.binary = need_program("dovecot", "dovecot-imapd")
        if not Path("/usr/lib/dovecot/imap").exists():
            unavailable("Dovecot's IMAP server is missing: apt-get install dovecot-imapd")
        self.ca, self.users, self.idp = ca, dict(users or {}), idp
        self.starttls_port, self.tls_port = free_port(), free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="smtpconf-dovecot-"))
        self.log_path = self.prefix / "dovecot.log"
        self.mail = self.prefix / "mail"
        self.process: subprocess.Popen[bytes] | None = None

    # -- configuration ------------------------------------------------------------------------

    def _write_config(self) -> Path:
        prefix = self.prefix
        prefix.chmod(0o711)  # the auth process (user dovecot) reads the passdb files in it
        internal = pwd.getpwnam("dovecot")
        mail_uid, mail_gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        self.mail.mkdir()
        os.chown(self.mail, mail_uid, mail_gid)
        cert, key = self.ca.cert_pem_paths(["localhost", LOOPBACK])
        passdbs, mechanisms = [], []
        if self.idp is not None:
            oauth = prefix / "oauth2.conf.ext"
            # The resource's credentials go in the URL: Dovecot sends them as HTTP Basic.
            url = self.idp.introspection_url.replace(
                "http://", f"http://{self.idp.resource_id}:{self.idp.resource_secret}@", 1)
            oauth.write_text(
                "introspection_mode = post\n"
                f"introspection_url = {url}\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
                "timeout_msecs = 10000\n", encoding="utf-8")
            os.chown(oauth, internal.pw_uid, internal.pw_gid)
            oauth.chmod(0o600)
            passdbs.append(f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                           f"  args = {oauth}\n}}\n")
            mechanisms += ["xoauth2", "oauthbearer"]
        if self.users:
            users = prefix / "users"
            users.write_text("".join(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in self.users.items()),
                             encoding="utf-8")
            os.chown(users, internal.pw_uid, internal.pw_gid)
            users.chmod(0o600)
            passdbs.append(f"passdb {{\n  driver = passwd-file\n  mechanisms = plain login\n  args = {users}\n}}\n")
            mechanisms += ["plain", "login"]
        if not passdbs:
            raise ValueError("a DovecotServer needs users or an idp")
        conf = prefix / "dovecot.conf"
        conf.write_text(f"""# A private Dovecot for smtpconf's tests; nothing of /etc/dovecot is read.
instance_name = smtpconf-test-{prefix.name}
base_dir = {prefix}/run
state_dir = {prefix}/state
log_path = {self.log_path}
protocols = imap
listen = {LOOPBACK}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = {" ".join(mechanisms)}
auth_verbose = yes
auth_failure_delay = 0  # no 2 s pause before each refusal: neomutt retries a refused login
mail_location = maildir:{self.mail}/%u
{"".join(passdbs)}userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={self.mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {self.tls_port}
    ssl = yes
  }}
}}
""", encoding="utf-8")
        return conf

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> DovecotServer:
        conf = self._write_config()
        check = subprocess.run(["doveconf", "-c", str(conf), "-n"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"doveconf refused the configuration:\n{check.stderr}")
        # -F: stay in the foreground, so the fixture owns the master process.
        self.process = subprocess.Popen([self.binary, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        waiting = [self.starttls_port, self.tls_port]
        while waiting and time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited: {error}{self.log()}")
            try:
                socket.create_connection((LOOPBACK, waiting[0]), timeout=0.5).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        if waiting:
            self.stop()
            raise RuntimeError(f"dovecot did not start listening:\n{self.log()}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master stops its children, then exits
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- mail and what happened ---------------------------------------------------------------

    def deliver(self, user: str, message: bytes, name: str = "1.smtpconf-test") -> Path:
        """Put ``message`` in ``user``'s INBOX (a new message of the Maildir), owned by the mail user."""
        uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
        maildir = self.mail / user
        for part in ("", "cur", "new", "tmp"):
            (maildir / part).mkdir(exist_ok=True)
            os.chown(maildir / part, uid, gid)
        path = maildir / "new" / name
        path.write_bytes(message)
        os.chown(path, uid, gid)
        return path

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def logins(self) -> list[tuple[str, str]]:
        """(user, SASL mechanism) of every IMAP login Dovecot let in, over TLS, in order."""
        return [(m[1], m[2]) for m in _LOGIN.finditer(self.log())]

    def refusals(self) -> list[tuple[str, str]]:
        """(user, Dovecot's reason) of every login a passdb refused, in order (``auth_verbose``)."""
        return [(m[1], m[2]) for m in _REFUSED.finditer(self.log())]
