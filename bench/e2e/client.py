"""A small HTTP/1.1 keep-alive client for open-loop load: a fixed pool of connections per
target, each a worker taking requests from one queue.

Why not httpx.AsyncClient: measured here, once the server falls behind and requests pile
up, httpcore's pool spends its time in `_assign_requests_to_connections` (quadratic in the
queued requests: py-spy showed the generator's single core busy there and no request sent
for minutes), so the generator, not the system, becomes the bottleneck. A queue in front
of N connections costs O(1) per request; latency is still measured from each request's
scheduled time, so waiting in the queue counts (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

Done = Callable[[int | str, float], None]  # (status or error name, perf_counter when answered)


class Pool:
    def __init__(self, base_url: str, connections: int, timeout_s: float = 30) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.connections = connections
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[tuple[bytes, Done] | None] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.connections)]

    def submit(
        self, method: str, path: str, headers: dict[str, str], body: bytes, done: Done
    ) -> None:
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.hostport}",
            f"Content-Length: {len(body)}",
        ]
        head += [
            f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")
        ]
        self.queue.put_nowait(("\r\n".join(head).encode() + b"\r\n\r\n" + body, done))

    async def close(self) -> None:
        for _ in self.workers:
            self.queue.put_nowait(None)
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def _worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while True:
            item = await self.queue.get()
            if item is None:
                break
            raw, done = item
            for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
                try:
                    if writer is None or writer.is_closing():
                        reader, writer = await asyncio.wait_for(
                            asyncio.open_connection(self.host, self.port), self.timeout_s
                        )
                    assert reader is not None
                    writer.write(raw)
                    status, close = await asyncio.wait_for(_response(reader), self.timeout_s)
                    done(status, time.perf_counter())
                    if close:
                        writer.close()
                        writer = None
                    break
                except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                    if writer is not None:
                        writer.close()
                    writer = None
                    if attempt == 2:
                        done(type(exc).__name__, time.perf_counter())
                except TimeoutError:
                    if writer is not None:
                        writer.close()
                    writer = None
                    done("timeout", time.perf_counter())
                    break
        if writer is not None:
            writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readuntil(b"\r\n")
    if not status_line:
        raise ConnectionResetError("closed")
    status = int(status_line.split(b" ", 2)[1])
    length, close, chunked = 0, False, False
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close
