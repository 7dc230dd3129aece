"""A real nginx (Debian's package) serving a rendered ``site/nginx/DOMAIN.conf`` on loopback.

The wrapper changes only what a test machine needs: the ``listen`` lines become 127.0.0.1 high
ports (``listen 443 ssl`` → ``listen 127.0.0.1:PORT ssl``; the IPv6 ones are dropped), and a main
``nginx.conf`` of its own gives the pid file, the logs and the temporary directories in a private
prefix. The server blocks, paths, media types and certificate paths are the rendered ones (the
test file's ``site:`` names a trustme certificate). The system nginx is never used.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tests.support.gate import need_program
from tests.support.nsd import free_port

HOST = "127.0.0.1"


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def loopback_conf(conf: str, https_port: int, http_port: int) -> str:
    """The rendered server blocks with listen addresses on loopback high ports, nothing else changed."""
    conf = re.sub(r"^(\s*)listen 443 ssl;$", rf"\1listen {HOST}:{https_port} ssl;", conf, flags=re.M)
    conf = re.sub(r"^(\s*)listen 80;$", rf"\1listen {HOST}:{http_port};", conf, flags=re.M)
    return re.sub(r"^\s*listen \[::\]:\d+( ssl)?;\n", "", conf, flags=re.M)


class NginxServer:
    """``with NginxServer(conf_path) as web: web.get("autoconfig.example.com", "/mail/...")``."""

    def __init__(self, conf_path: Path, ca_file: Path) -> None:
        self.binary = need_program("nginx", "nginx")
        self.conf_path, self.ca_file = conf_path, ca_file
        self.https_port, self.http_port = free_port(), free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="smtpconf-nginx-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NginxServer:
        sites = self.prefix / "site.conf"
        sites.write_text(loopback_conf(self.conf_path.read_text(encoding="utf-8"), self.https_port, self.http_port),
                         encoding="utf-8")
        main = self.prefix / "nginx.conf"
        # user root: the test's files live in pytest's private (0700) temporary directories.
        main.write_text(f"""
user root;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {self.prefix}/access.log;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    include {sites};
}}
""", encoding="utf-8")
        test = subprocess.run([self.binary, "-t", "-p", str(self.prefix), "-c", str(main), "-e", str(self.prefix / "error.log")],
                              capture_output=True, text=True, timeout=30)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{test.stderr}")
        self.process = subprocess.Popen([self.binary, "-p", str(self.prefix), "-c", str(main),
                                         "-e", str(self.prefix / "error.log"), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode() if self.process.stderr else ''}")
            try:
                socket.create_connection((HOST, self.https_port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def request(self, host: str, path: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None, https: bool = True) -> Response:
        """One request to ``host`` (the Host header and the TLS server name) at this nginx,
        verifying its certificate against the test CA as a client would."""
        if https:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            connection: http.client.HTTPConnection = _NamedHTTPS(host, self.https_port, context)
        else:
            connection = http.client.HTTPConnection(HOST, self.http_port, timeout=10)
        try:
            connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            reply = connection.getresponse()
            return Response(reply.status, reply.getheader("Content-Type", ""), reply.read(),
                            {k.lower(): v for k, v in reply.getheaders()})
        finally:
            connection.close()

    def get(self, host: str, path: str) -> Response:
        return self.request(host, path)


class _NamedHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the server name (SNI and certificate check) of ``host``."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(HOST, port, timeout=10, context=context)
        self._name = host
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((HOST, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self._name)
