"""A TCP proxy that adds a fixed delay to every HTTP/1.1 request, to bench over a "far" endpoint.

    python bench/_latency_proxy.py --port 9001 --upstream-port 9000 --latency-ms 40

Each client connection gets its own upstream connection (keep-alive works as it would without
the proxy). The client->server stream is followed just enough to find where each request
starts (request head, then a `Content-Length` or chunked body); the first bytes of every
request are held for `--latency-ms` before they are forwarded, so each request pays the delay
once, whatever its size. Everything else (bodies in both directions, responses) is forwarded
as it arrives, in bounded chunks: nothing is buffered whole. Stdlib only.

This models per-request round-trip latency (what makes small-object copies slow against a
far-away object store), not a bandwidth-delay product: a stream already flowing is not slowed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

CHUNK = 256 * 1024
MAX_HEAD = 64 * 1024


class RequestFramer:
    """Follows HTTP/1.1 request framing in a client->server byte stream.

    `feed(data)` splits `data` into pieces and says which of them begin a new request. If the
    stream stops looking like HTTP/1.1 (a head over 64 KiB, a bad length), framing is given up
    and the rest is passed through without further delays.
    """

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts = counts if counts is not None else {}  # requests seen, by method
        self.state = "head"  # head | body | chunk-size | chunk-data | chunk-end | trailer | raw
        self.head = bytearray()  # the current head (or chunk-size/trailer line), bounded
        self.left = 0  # body or chunk bytes still to pass

    def feed(self, data: bytes) -> list[tuple[bool, bytes]]:
        out: list[tuple[bool, bytes]] = []
        view = memoryview(data)
        while view:
            if self.state == "raw":
                out.append((False, bytes(view)))
                break
            if self.state in ("body", "chunk-data"):
                n = min(self.left, len(view))
                out.append((False, bytes(view[:n])))
                view = view[n:]
                self.left -= n
                if self.left == 0:
                    self.state = "head" if self.state == "body" else "chunk-end"
                continue
            # Line-oriented states: pass bytes up to and including the terminator we wait for.
            starts = self.state == "head" and not self.head
            end = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            old = len(self.head)
            self.head += view
            i = self.head.find(end, max(0, old - len(end) + 1))
            if i < 0:
                out.append((starts, bytes(view)))
                if len(self.head) > MAX_HEAD:
                    self.state = "raw"
                break
            take = i + len(end) - old
            del self.head[i + len(end) :]
            out.append((starts, bytes(view[:take])))
            view = view[take:]
            self._line_done()
        return out

    def _line_done(self) -> None:
        text = bytes(self.head)
        self.head.clear()
        if self.state == "head":
            self._head_done(text)
        elif self.state == "chunk-size":
            try:
                size = int(text.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.state = "raw"
                return
            self.state, self.left = ("trailer", 0) if size == 0 else ("chunk-data", size)
        elif self.state == "chunk-end":
            self.state = "chunk-size"
        elif self.state == "trailer" and text == b"\r\n":
            self.state = "head"  # an empty line ends the trailers and the request

    def _head_done(self, head: bytes) -> None:
        if not head.strip():  # stray CRLF between requests
            return
        method = head.lstrip().split(b" ", 1)[0].decode("ascii", "replace")
        self.counts[method] = self.counts.get(method, 0) + 1
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self.state = "raw"
                    return
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            self.state = "chunk-size"
        elif length > 0:
            self.state, self.left = "body", length


async def _pump_requests(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    counts: dict[str, int],
) -> None:
    framer = RequestFramer(counts)
    try:
        while data := await reader.read(CHUNK):
            for starts, piece in framer.feed(data):
                if starts and delay > 0:
                    await asyncio.sleep(delay)
                writer.write(piece)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def serve(port: int, upstream_host: str, upstream_port: int, latency: float) -> None:
    """Proxy until SIGTERM/SIGINT, then print the requests forwarded (the bench reads it)."""
    counts: dict[str, int] = {}

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            c_writer.close()
            return
        try:
            up = asyncio.create_task(_pump_requests(c_reader, u_writer, latency, counts))
            down = asyncio.create_task(_pump(u_reader, c_writer))
            # The server closing ends the exchange; a client EOF only half-closes upstream.
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down.done():
                up.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            for w in (u_writer, c_writer):
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=CHUNK)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"latency proxy 127.0.0.1:{port} -> {upstream_host}:{upstream_port}, "
        f"+{latency * 1000:g} ms per request",
        flush=True,
    )
    async with server:
        await stop.wait()
    by_method = ", ".join(f"{m} {n}" for m, n in sorted(counts.items()))
    print(f"requests: {sum(counts.values())} ({by_method})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=40.0, help="delay per request")
    args = parser.parse_args()
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    asyncio.run(serve(args.port, args.upstream_host, args.upstream_port, args.latency_ms / 1000))


if __name__ == "__main__":
    main()
