"""A real authoritative DNS server (Debian's NSD) serving test zones on loopback.

Tests that exercise DNS checks (SPF, DMARC, MX, RFC 6186 SRV records) point dnspython at this
server instead of mocking resolvers, so zone-file syntax, long TXT strings and SRV rdata go
through a real implementation.

Usage::

    zones = {"example.test": zone_text("example.test", [
        ("@", "MX", "10 mx.example.test."),
        ("mx", "A", "127.0.0.1"),
        ("@", "TXT", "v=spf1 include:_spf.example.net ~all"),
    ])}
    with NsdServer(zones) as dns_server:
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = dns_server.port

Each instance runs in its own temporary directory (nsd.conf, zone files, pid file, log) and
never touches /etc/nsd or the system NSD service. Tests use a free high port; a benchmark against
a tool that can only query port 53 may pass ``port=53`` (see :func:`port_is_free`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence, Union

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.support.gate import need_program

HOST = "127.0.0.1"
DEFAULT_TTL = 300


class NsdError(RuntimeError):
    """NSD could not be started, or did not answer for its zones."""


class ZoneError(NsdError):
    """A zone file was rejected by ``nsd-checkzone`` or failed to load in NSD."""


# --------------------------------------------------------------------------------------------
# Zone text helpers
# --------------------------------------------------------------------------------------------


class Record(NamedTuple):
    """One resource record in zone-file presentation format.

    ``owner`` is relative to the zone origin (``"@"``, ``"www"``, ``"_submission._tcp"``) or
    absolute with a trailing dot. ``rdata`` is presentation format, except that TXT/SPF rdata not
    starting with a double quote is quoted and split for you (see :func:`txt_rdata`).
    """

    owner: str
    rtype: str
    rdata: str
    ttl: Union[int, None] = None


RecordLike = Union[Record, Sequence[object]]


def txt_rdata(text: str) -> str:
    """Return ``text`` as TXT rdata: quoted, escaped, and split into <=255-byte strings.

    A DNS character-string holds at most 255 bytes (RFC 1035 3.3), so a long SPF policy must be
    written as several adjacent quoted strings; resolvers concatenate them (RFC 7208 3.3).
    NSD rejects a single over-long quoted string, which is why this splitting is not optional.
    """
    raw = text.encode("utf-8")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join('"' + _escape_character_string(chunk) + '"' for chunk in chunks)


def _escape_character_string(chunk: bytes) -> str:
    out: list[str] = []
    for byte in chunk:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            # Non-printable and non-ASCII bytes use the portable \DDD decimal escape so a
            # chunk boundary inside a UTF-8 sequence cannot corrupt the zone file.
            out.append(f"\\{byte:03d}")
    return "".join(out)


def zone_text(
    origin: str,
    records: Iterable[RecordLike] = (),
    *,
    ttl: int = DEFAULT_TTL,
    serial: int = 1,
    nameserver: str = "ns1",
    nameserver_address: str = HOST,
) -> str:
    """Build a complete zone file for ``origin`` with a default SOA and NS record.

    ``records`` are :class:`Record` values or plain ``(owner, type, rdata[, ttl])`` tuples.
    The NS host gets an A record (``nameserver_address``) unless the records define one,
    so the zone is self-consistent and passes ``nsd-checkzone``.
    """
    origin = origin.rstrip(".") + "."
    parsed = [_as_record(r) for r in records]
    lines = [
        f"$ORIGIN {origin}",
        f"$TTL {ttl}",
        # SOA timers are irrelevant for a single authoritative test server; the minimum (last
        # field) is the negative-caching TTL, kept short like the default TTL.
        f"@ IN SOA {nameserver} hostmaster {serial} 3600 600 86400 {ttl}",
        f"@ IN NS {nameserver}",
    ]
    has_ns_address = any(
        r.owner.lower() in (nameserver.lower(), f"{nameserver}.{origin}".lower())
        and r.rtype.upper() in ("A", "AAAA")
        for r in parsed
    )
    if not nameserver.endswith(".") and not has_ns_address:
        lines.append(f"{nameserver} IN A {nameserver_address}")
    for record in parsed:
        rtype = record.rtype.upper()
        rdata = record.rdata
        if rtype in ("TXT", "SPF") and not rdata.lstrip().startswith('"'):
            rdata = txt_rdata(rdata)
        ttl_field = f" {record.ttl}" if record.ttl is not None else ""
        lines.append(f"{record.owner}{ttl_field} IN {rtype} {rdata}")
    return "\n".join(lines) + "\n"


def _as_record(value: RecordLike) -> Record:
    if isinstance(value, Record):
        return value
    items = list(value)
    if len(items) not in (3, 4):
        raise ValueError(f"record must be (owner, type, rdata[, ttl]), got {value!r}")
    owner, rtype, rdata = (str(x) for x in items[:3])
    ttl = int(items[3]) if len(items) == 4 and items[3] is not None else None  # type: ignore[arg-type]
    return Record(owner, rtype, rdata, ttl)


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when both UDP and TCP ``host:port`` can be bound right now (DNS needs both)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # Match what a server does, so a port in TIME_WAIT counts as free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = HOST) -> int:
    """A high port currently free for both UDP and TCP on ``host``.

    The kernel picks a free TCP port; we then confirm UDP is free on the same number. There is
    an unavoidable race until NSD binds it, so :meth:`NsdServer.start` retries on EADDRINUSE.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port_is_free(port, host):
            return port
    raise NsdError("could not find a port free for both UDP and TCP")


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class NsdServer:
    """A private NSD instance serving ``zones`` (zone name -> zone file text) on loopback.

    ``port=None`` picks a free high port; pass ``port=53`` only for tools that cannot be told
    another port. The server answers over both UDP and TCP. Use as a context manager, or call
    :meth:`start` / :meth:`stop` yourself (stop is idempotent).
    """

    def __init__(
        self,
        zones: Mapping[str, str],
        *,
        port: Union[int, None] = None,
        host: str = HOST,
        startup_timeout: float = 15.0,
    ) -> None:
        if not zones:
            raise ValueError("NsdServer needs at least one zone")
        self.nsd = need_program("nsd", "nsd")
        self.nsd_checkzone = need_program("nsd-checkzone", "nsd")
        self.nsd_checkconf = need_program("nsd-checkconf", "nsd")
        self.host = host
        self.zones: dict[str, str] = {_zone_name(name): text for name, text in zones.items()}
        self._fixed_port = port
        self.port: int = port if port is not None else 0
        self.startup_timeout = startup_timeout
        self.directory: Union[Path, None] = None
        self._process: Union[subprocess.Popen[bytes], None] = None
        # Our nsd.conf path, unique per instance: identifies this instance's processes.
        self._conf_needle: bytes = b""

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> NsdServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- paths -----------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self._dir / "nsd.conf"

    @property
    def log_path(self) -> Path:
        return self._dir / "nsd.log"

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise NsdError("NsdServer has not been started")
        return self.directory

    def log_text(self) -> str:
        """NSD's own log file plus anything it printed on stdout/stderr."""
        parts = []
        for name in ("nsd.log", "nsd.stderr"):
            path = self._dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NsdServer:
        if self.running:
            return self
        if self.directory is None:
            # Short path under /tmp; the directory holds everything NSD writes.
            self.directory = Path(tempfile.mkdtemp(prefix="smtpconf-nsd-"))
            self._conf_needle = str(self.conf_path).encode()
        try:
            self._start_on(self._fixed_port)
        except BaseException:
            # __exit__ does not run when __enter__ raises: clean up here.
            self.stop()
            raise
        return self

    def _start_on(self, port: Union[int, None]) -> None:
        self._write_zones()
        last_error: Union[NsdError, None] = None
        for _ in range(1 if port is not None else 5):
            self.port = port if port is not None else free_port(self.host)
            self._write_conf()
            try:
                self._launch()
                self.wait_ready()
                return
            except _PortInUse as error:
                # Lost the race for a picked port to another process: pick again.
                last_error = error
                self._terminate()
            except BaseException:
                self._terminate()
                raise
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Stop NSD (all of its processes) and delete its directory. Safe to call twice."""
        self._terminate()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def restart(self, zones: Union[Mapping[str, str], None] = None) -> None:
        """Restart on the same port, optionally with new zones.

        A changed *set* of zones needs a restart: NSD's SIGHUP rereads changed zone files but
        not the zone list in nsd.conf, and a restart costs well under a second.
        """
        if zones is not None:
            self.zones = {_zone_name(name): text for name, text in zones.items()}
        if self.directory is None:
            self.start()
            return
        self._terminate()
        self._start_on(self.port or self._fixed_port)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> Union[int, None]:
        return self._process.pid if self._process is not None else None

    def wait_ready(self, timeout: Union[float, None] = None) -> None:
        """Block until NSD answers authoritatively (AA, NOERROR) for every zone's SOA over UDP,
        and for the first zone over TCP; raise with NSD's log if it exits or a zone fails."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.startup_timeout)
        pending = list(self.zones)
        while pending:
            self._raise_if_exited()
            zone = pending[0]
            try:
                response = dns.query.udp(
                    dns.message.make_query(zone, dns.rdatatype.SOA),
                    self.host,
                    port=self.port,
                    timeout=0.5,
                )
            except (dns.exception.Timeout, OSError):
                # Not listening yet (ICMP port unreachable shows up as OSError on Linux).
                response = None
            if response is not None:
                rcode = response.rcode()
                if rcode == dns.rcode.NOERROR and response.flags & dns.flags.AA and response.answer:
                    pending.pop(0)
                    continue
                if rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED) and self._log_has_zone_error(
                    zone
                ):
                    # NSD keeps running with a broken zone and answers SERVFAIL for it, so the
                    # log is the only place that says why.
                    raise ZoneError(f"NSD failed to load zone {zone!r}:\n{self._zone_errors(zone)}")
            if time.monotonic() > deadline:
                raise NsdError(
                    f"NSD on {self.host}:{self.port} did not answer for zone {zone!r} within "
                    f"the timeout (last rcode: "
                    f"{dns.rcode.to_text(response.rcode()) if response else 'no answer'}).\n"
                    f"log:\n{self.log_text()}"
                )
            time.sleep(0.05)
        first = next(iter(self.zones))
        try:
            dns.query.tcp(
                dns.message.make_query(first, dns.rdatatype.SOA),
                self.host,
                port=self.port,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except (dns.exception.Timeout, OSError) as error:
            raise NsdError(
                f"NSD answers over UDP but not TCP on port {self.port}: {error}"
            ) from error

    # -- internals -------------------------------------------------------------------------

    def _write_zones(self) -> None:
        for old in self._dir.glob("*.zone"):
            old.unlink()
        errors = []
        for index, (zone, text) in enumerate(self.zones.items()):
            path = self._dir / self._zone_file(index, zone)
            path.write_text(text)
            # nsd-checkzone gives a precise, early error (file:line: reason) on stderr and a
            # summary on stdout; NSD itself would start anyway and just SERVFAIL the zone.
            result = subprocess.run(
                [self.nsd_checkzone, zone, str(path)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if result.returncode != 0:
                errors.append(
                    f"zone {zone}: {result.stdout.strip()}\n{_strip_log_prefix(result.stderr)}"
                )
        if errors:
            raise ZoneError("nsd-checkzone rejected test zones:\n" + "\n".join(errors))

    @staticmethod
    def _zone_file(index: int, zone: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", zone.rstrip(".")) or "root"
        return f"{index:02d}-{safe}.zone"

    def _write_conf(self) -> None:
        d = self._dir
        zone_blocks = "".join(
            f'zone:\n    name: "{zone}"\n    zonefile: "{self._zone_file(i, zone)}"\n'
            for i, zone in enumerate(self.zones)
        )
        # Every path NSD would otherwise take from its compiled-in defaults (/var/lib/nsd,
        # /run/nsd, /etc/nsd) is redirected into our directory, so several instances can run
        # next to each other and next to a system NSD.
        conf = f"""\
server:
    ip-address: {self.host}@{self.port}
    port: {self.port}
    do-ip4: yes
    do-ip6: no
    # Run as the invoking user (root in CI) without chroot: dropping to the 'nsd' user would
    # make our root-owned temp directory unreadable, and a chroot would hide it.
    username: ""
    chroot: ""
    zonesdir: "{d}"
    pidfile: "{d}/nsd.pid"
    # No nsd.db: zones are read straight from the zone files on every start.
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
    # Answer ANY normally; some checkers still ask for it.
    refuse-any: no
    # No response rate limiting: every client here is a test on loopback, and RRL's dropped and
    # truncated answers (200 a second per client by default) would look like a lossy network.
    rrl-ratelimit: 0

# No control channel: we stop NSD with a signal, so no nsd-control keys or port are needed.
remote-control:
    control-enable: no

{zone_blocks}"""
        self.conf_path.write_text(conf)
        result = subprocess.run(
            [self.nsd_checkconf, str(self.conf_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise NsdError(
                f"nsd-checkconf rejected {self.conf_path}:\n{result.stdout}{result.stderr}"
            )

    def _launch(self) -> None:
        for name in ("nsd.log", "nsd.stderr"):
            (self._dir / name).write_text("")
        stderr = open(self._dir / "nsd.stderr", "wb")
        try:
            # -d: stay in the foreground so the Popen handle *is* NSD's main process and we
            # never need a pid file or a process-name search to find it. A new session gives
            # NSD (main, server child and xfrd) its own process group for a clean kill.
            self._process = subprocess.Popen(
                [self.nsd, "-d", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()

    def _raise_if_exited(self) -> None:
        if self._process is None or self._process.poll() is None:
            return
        log = self.log_text()
        if "already in use" in log or "Address in use" in log:
            raise _PortInUse(f"port {self.port} on {self.host} is already in use:\n{log}")
        raise NsdError(f"nsd exited with status {self._process.returncode} during startup:\n{log}")

    def _log_has_zone_error(self, zone: str) -> bool:
        return bool(self._zone_errors(zone))

    def _zone_errors(self, zone: str) -> str:
        if self.directory is None:
            return ""
        index = list(self.zones).index(zone)
        file_name = self._zone_file(index, zone)
        lines = [
            line
            for line in self.log_text().splitlines()
            if "error" in line and (file_name in line or f"zone {zone} " in line)
        ]
        return "\n".join(lines)

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            # SIGTERM to the main process makes NSD stop its server and xfrd children and exit.
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # The leader is not reaped yet, so its process group id still names only
                # NSD's processes (we started it as a session leader).
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Belt and braces: any process still running with *our* nsd.conf (a unique temp path)
        # on its command line is a leftover child of this instance.
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _leftover_pids(self) -> list[int]:
        needle = self._conf_needle
        if not needle:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if needle in (entry / "cmdline").read_bytes() and not _is_zombie(entry):
                    pids.append(int(entry.name))
            except OSError:
                continue  # exited while we looked
        return pids

    def processes(self) -> list[int]:
        """PIDs of live (non-zombie) processes of this instance; empty once stopped."""
        return self._leftover_pids()


def _is_zombie(proc_entry: Path) -> bool:
    # /proc/PID/stat is "pid (comm) STATE ..."; comm may contain spaces, so split after ")".
    stat = (proc_entry / "stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class _PortInUse(NsdError):
    pass


def _zone_name(name: str) -> str:
    return name.rstrip(".").lower() or "."


def _strip_log_prefix(text: str) -> str:
    # "[2026-01-01 12:00:00.000] nsd-checkzone[123]: error: file:4: reason" -> "error: file:4: reason"
    return "\n".join(
        re.sub(r"^\[[^\]]*\]\s+\S+\[\d+\]:\s*", "", line) for line in text.splitlines()
    )


__all__ = [
    "HOST",
    "NsdError",
    "NsdServer",
    "Record",
    "ZoneError",
    "free_port",
    "port_is_free",
    "txt_rdata",
    "zone_text",
]
