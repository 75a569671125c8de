"""Shared benchmark helpers: servers on loopback, a lean HTTP/1.1 load client, presigning, tables.

The load client is deliberately minimal (raw asyncio sockets, keep-alive, body bytes received
into one reused buffer and discarded) so that the client is not what limits the measurement:
every server in a comparison is driven by the same client in the same run, on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

MIB = 1024 * 1024
RECV_BUFFER = 1 * MIB
SEND_CHUNK = 1 * MIB


class BenchError(RuntimeError):
    """A server failed to start or answered a request with an error: the run is invalid."""


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Wait until `proc` accepts TCP connections on loopback `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}:\n{tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise BenchError(f"nothing listened on 127.0.0.1:{port} within {timeout}s:\n{tail(log)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@dataclass
class Server:
    """A server subprocess on 127.0.0.1 that the benchmark started and must stop."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after 10 s."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextlib.contextmanager
def server(
    name: str,
    argv: Sequence[str],
    port: int,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[Server]:
    """Run `argv` in its own process group (so workers die with it) and wait for `port`."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=workdir,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    srv = Server(name=name, port=port, proc=proc, log=log)
    try:
        wait_tcp(port, proc, log, timeout)
        yield srv
    except BenchError:
        # The server's own account of a failed request is the most useful part of the report.
        print(f"--- last lines of the {name} log ({log}):\n{tail(log, 40)}", file=sys.stderr)
        raise
    finally:
        srv.stop()


def require_tool(name: str) -> str:
    exe = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else "")
    if not exe:
        raise BenchError(f"{name} is required for this benchmark and is not installed")
    return exe


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[Server]:
    port = free_port()
    argv = [require_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with server("moto", argv, port, workdir) as srv:
        srv.access_key = srv.secret_key = "testing"
        yield srv


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(root: Path, workdir: Path, *, workers: int = 2) -> Iterator[Server]:
    """nginx serving `root` (inside `workdir`) read-only: the ceiling for plain HTTP GETs."""
    if not root.resolve().is_relative_to(workdir.resolve()):
        raise BenchError(f"nginx root {root} must be inside the benchmark's work dir {workdir}")
    port = free_port()
    conf_dir = workdir / "nginx"
    conf_dir.mkdir(exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, dir=conf_dir, port=port, root=root))
    argv = [require_tool("nginx"), "-p", str(conf_dir), "-c", str(conf), "-e", "stderr"]
    # Started as root, nginx workers run as `nobody`: let them traverse and read the tree.
    workdir.chmod(0o755)
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with server("nginx", argv, port, workdir) as srv:
        yield srv


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """One prepared HTTP request: target is path + query (e.g. a presigned URL's)."""

    method: str
    target: str
    body_size: int = 0
    headers: tuple[tuple[str, str], ...] = ()


def presigner(srv: Server) -> Callable[[str, str, str], Request]:
    """Return `sign(method, bucket, key)` -> a presigned path-style request valid for 2 hours.

    Signing happens before the timed loop, so its cost is the same (zero) for every server.
    """
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name=srv.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    ops = {"GET": "get_object", "PUT": "put_object"}

    def sign(method: str, bucket: str, key: str) -> Request:
        url = client.generate_presigned_url(
            ops[method], Params={"Bucket": bucket, "Key": key}, ExpiresIn=7200
        )
        parts = urlsplit(url)
        return Request(method, f"{parts.path}?{parts.query}")

    return sign


def plain(method: str, path: str, body_size: int = 0) -> Request:
    return Request(method, path, body_size)


# --------------------------------------------------------------------------- load client


class _Connection:
    """One keep-alive HTTP/1.1 connection; bodies are counted and discarded, never kept."""

    def __init__(self, port: int, payload: memoryview) -> None:
        self.port = port
        self.payload = payload
        self.sock: socket.socket | None = None
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        self.pending = bytearray()  # received but not yet parsed

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        self.pending.clear()
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def _recv(self) -> int:
        assert self.sock is not None
        n = await asyncio.get_running_loop().sock_recv_into(self.sock, self.buf)
        if n == 0:
            raise ConnectionResetError("server closed the connection")
        return n

    async def _fill(self) -> None:
        n = await self._recv()
        self.pending += self.view[:n]

    async def _readline(self) -> bytes:
        while (i := self.pending.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self.pending[:i])
        del self.pending[: i + 2]
        return line

    async def _skip(self, n: int, keep: bytearray | None = None) -> None:
        """Consume `n` body bytes; keep up to 4 KiB of them in `keep` (for error messages)."""
        take = min(n, len(self.pending))
        if keep is not None and len(keep) < 4096:
            keep += self.pending[: min(take, 4096 - len(keep))]
        del self.pending[:take]
        n -= take
        while n > 0:
            got = await self._recv()
            if got > n:  # never happens without pipelining; keep the surplus to be safe
                self.pending += self.view[n:got]
                got = n
            if keep is not None and len(keep) < 4096:
                keep += self.view[: min(got, 4096 - len(keep))]
            n -= got

    async def request(self, req: Request) -> tuple[int, int, bytes]:
        """Send `req`, read the whole response; returns (status, body bytes, error snippet)."""
        loop = asyncio.get_running_loop()
        if self.sock is None:
            self.sock = await self._connect()
        head = [f"{req.method} {req.target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in req.headers]
        if req.method in ("PUT", "POST"):
            head.append(f"Content-Length: {req.body_size}")
        await loop.sock_sendall(self.sock, ("\r\n".join(head) + "\r\n\r\n").encode())
        left = req.body_size
        while left > 0:
            n = min(left, len(self.payload))
            await loop.sock_sendall(self.sock, self.payload[:n])
            left -= n

        status_line = await self._readline()
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        while line := await self._readline():
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                close = True
        keep = bytearray() if status >= 300 else None
        total = 0
        if req.method == "HEAD" or status in (204, 304):
            pass
        elif chunked:
            while size := int((await self._readline()).split(b";")[0], 16):
                await self._skip(size, keep)
                await self._readline()
                total += size
            while await self._readline():  # trailers
                pass
        elif length is not None:
            await self._skip(length, keep)
            total = length
        else:  # body until close
            close = True
            with contextlib.suppress(ConnectionResetError):
                while True:
                    self.pending.clear()
                    total += await self._recv()
        if close:
            self.close()
        return status, total, bytes(keep or b"")


@dataclass
class LoadResult:
    """What one load run did: completed requests, body bytes moved, wall time."""

    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mib_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.seconds else 0.0


async def run_load(
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    warmup: int = 0,
    request_timeout: float = 120.0,
) -> LoadResult:
    """Replay `requests` over `concurrency` keep-alive connections.

    Each connection first sends `warmup` untimed requests; the clock starts when all are ready.
    Stops after `max_requests` or `max_seconds`, whichever comes first (bounded either way).
    Any non-2xx answer aborts the run with the server's error body: a benchmark that measures
    error responses is worse than none.
    """
    payload = memoryview(os.urandom(SEND_CHUNK))
    result = LoadResult()
    issued = ready = 0
    all_ready, start = asyncio.Event(), asyncio.Event()
    deadline = float("inf")

    async def worker(w: int) -> None:
        nonlocal issued, ready
        # Each connection cycles through its own share of the requests, so that two
        # connections never write the same key at the same time (moto answers 500 to that).
        mine = requests[w % len(requests) :: concurrency]
        conn = _Connection(port, payload)
        try:
            for i in range(warmup):
                await _checked(conn, mine[i % len(mine)], request_timeout)
            ready += 1
            if ready == concurrency:
                all_ready.set()
            await start.wait()
            n = 0
            while issued < max_requests and time.perf_counter() < deadline:
                req = mine[n % len(mine)]
                issued += 1
                n += 1
                t0 = time.perf_counter()
                body = await _checked(conn, req, request_timeout)
                result.latencies.append(time.perf_counter() - t0)
                result.requests += 1
                result.bytes += body if req.method == "GET" else req.body_size
        finally:
            conn.close()

    tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
    waiter = asyncio.create_task(all_ready.wait())
    try:
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not waiter and (exc := t.exception()) is not None:
                raise exc
        t0 = time.perf_counter()
        deadline = t0 + max_seconds
        start.set()
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - t0
    finally:
        for t in (waiter, *tasks):
            t.cancel()
        await asyncio.gather(waiter, *tasks, return_exceptions=True)
    return result


async def _checked(conn: _Connection, req: Request, limit: float) -> int:
    """One request with a time limit; a non-2xx status raises BenchError with the body."""
    async with asyncio.timeout(limit):
        status, body, err = await conn.request(req)
    if not 200 <= status < 300:
        snippet = err.decode(errors="replace").strip()
        raise BenchError(f"{req.method} {req.target[:80]} -> HTTP {status}: {snippet[:600]}")
    return body


# --------------------------------------------------------------------------- memory


class PeakRss:
    """Samples the summed RSS of a process and its children in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        import threading

        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0

    def current(self) -> int:
        import psutil

        total = 0
        procs = [self._root]
        with contextlib.suppress(psutil.Error):
            procs += self._root.children(recursive=True)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


# --------------------------------------------------------------------------- files and output


def write_random_file(path: Path, size: int) -> None:
    """Write `size` random bytes in 1 MiB chunks (never the whole file in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    with path.open("wb") as f:
        left = size
        while left > 0:
            n = min(left, MIB)
            f.write(block[:n])
            left -= n
            block = block[1:] + block[:1]  # cheap variation between blocks


def upload_file(srv: Server, bucket: str, key: str, path: Path, *, create: bool = False) -> None:
    """Upload with boto3 (streamed from disk, multipart above 64 MiB) to set up a run."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name=srv.region,
    )
    if create:
        client.create_bucket(Bucket=bucket)
    config = TransferConfig(multipart_threshold=1024 * MIB, use_threads=False)
    client.upload_file(str(path), bucket, key, Config=config)


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def fmt_bytes(n: float) -> str:
    return f"{n / MIB:,.0f} MiB"


@dataclass(frozen=True)
class Ratio:
    """A measured ratio against a reference measured in the same run, with its target."""

    name: str
    value: float | None
    target: str = ""
    passed: bool | None = None


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    out: IO[str] = sys.stdout
    print(f"\n{title}", file=out)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)), file=out)


def print_ratios(ratios: Sequence[Ratio]) -> None:
    rows = []
    for r in ratios:
        value = "n/a" if r.value is None else f"{r.value:.2f}"
        verdict = {True: "meets target", False: "BELOW TARGET", None: ""}[r.passed]
        rows.append((r.name, value, r.target, verdict))
    print_table("Ratios (same machine, same run)", ("ratio", "value", "target", ""), rows)


def ratio(
    name: str,
    num: float | None,
    den: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
) -> Ratio:
    """num/den with an optional target; n/a when either side was not measured."""
    if num is None or den is None or den == 0:
        return Ratio(name, None, _target(at_least, at_most))
    value = num / den
    passed: bool | None = None
    if at_least is not None:
        passed = value >= at_least
    if at_most is not None:
        passed = (passed is not False) and value <= at_most
    return Ratio(name, value, _target(at_least, at_most), passed)


def _target(at_least: float | None, at_most: float | None) -> str:
    if at_least is not None:
        return f">= {at_least:g}"
    if at_most is not None:
        return f"<= {at_most:g}"
    return ""


def describe_machine() -> str:
    import platform

    cpus = os.cpu_count() or 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {cpus} CPUs, load average {load}, Python {platform.python_version()}"
    )
