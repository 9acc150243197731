"""Wait until a Kafka broker really answers: an admin client lists its topics.

A TCP connect is not enough (the socket opens before the broker has caught up with its
metadata log), so this asks for metadata the way the services will.

    uv run python deploy/local/wait_kafka.py [--bootstrap 127.0.0.1:9092]
                                             [--timeout 60] [--pid PID]

Exit 0 when the broker answered, 1 on timeout, 3 when --pid died while we waited
(the broker crashed on start: the caller shows its log).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _list_topics(bootstrap: str, timeout_s: float) -> list[str]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        connections_max_idle_ms=60_000,
    )
    try:
        await asyncio.wait_for(client.start(), timeout_s)
        topics = await asyncio.wait_for(client.list_topics(), timeout_s)
        return sorted(topics)
    finally:
        await client.close()


async def wait(bootstrap: str, timeout_s: float, pid: int | None) -> int:
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if not _alive(pid):
            print(f"broker process {pid} exited while starting", file=sys.stderr)
            return 3
        try:
            topics = await _list_topics(bootstrap, min(5.0, max(1.0, deadline - time.monotonic())))
        except Exception as exc:  # any failure means "not yet"; keep the last for the message
            last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)
            continue
        print(f"kafka answers on {bootstrap} ({len(topics)} topics)")
        return 0
    print(
        f"kafka on {bootstrap} did not answer within {timeout_s:.0f}s (last error: {last_error})",
        file=sys.stderr,
    )
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--pid", type=int, default=None)
    args = parser.parse_args()
    # aiokafka logs every refused connection at ERROR while the broker starts: noise here.
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(wait(args.bootstrap, args.timeout, args.pid)))


if __name__ == "__main__":
    main()
