"""A service built with the plexus Python package, run as a process by the tests.

    python3 pkg_service.py --backend ipc:///tmp/p/back.sock --name pysvc [--timeout 30]
    # prints "pysvc ready" once started; SIGTERM stops it gracefully
    plexus call pysvc add 1 2 --router ipc:///tmp/p/native.sock   # 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "python"))

import plexus  # noqa: E402


def build(backend: str, name: str, timeout: float) -> plexus.Service:
    svc = plexus.Service(backend, name, timeout=timeout)
    notes: list = []

    @svc.route(inline=True)
    def echo(value: Any) -> Any:
        return value

    @svc.route
    async def echo_async(value: Any) -> Any:
        return value

    @svc.route(inline=True)
    def add(a: Any, b: Any) -> Any:
        return a + b

    @svc.route(inline=True)
    def blob(n: int) -> bytes:
        return bytes(i & 0xFF for i in range(n))

    @svc.route
    def fail(text: str) -> None:
        raise ValueError(text)

    @svc.route
    def refuse(value: Any) -> None:
        raise plexus.RemoteError(f"refused {value!r}", code="invalid_argument",
                                 context={"value": value})

    @svc.route
    def sleep(seconds: float) -> float:  # blocking: runs in the thread pool
        time.sleep(seconds)
        return seconds

    barriers: dict[str, threading.Barrier] = {}
    barriers_lock = threading.Lock()

    @svc.route
    def rendezvous(key: str, parties: int) -> bool:  # blocking: returns once `parties` wait
        with barriers_lock:
            barrier = barriers.setdefault(key, threading.Barrier(parties))
        barrier.wait(timeout=20)  # raises BrokenBarrierError if the calls run one by one
        return True

    @svc.route
    async def nap(seconds: float) -> float:
        print(f"nap {seconds}", flush=True)
        await asyncio.sleep(seconds)
        return seconds

    @svc.route(inline=True)
    def pid() -> int:
        return os.getpid()

    @svc.route(inline=True)
    def note(value: Any) -> None:
        notes.append(value)

    @svc.route("notes-seen", inline=True)
    def notes_seen() -> list:
        return list(notes)

    @svc.route(inline=True)
    def greet(name: str, greeting: str = "hello") -> str:
        return f"{greeting} {name}"

    return svc


async def serve(backend: str, name: str, timeout: float) -> None:
    svc = build(backend, name, timeout)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with svc:
        print(f"{name} ready", flush=True)
        await stop


def main() -> int:
    ap = argparse.ArgumentParser(description="a plexus package service for the tests")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    asyncio.run(serve(args.backend, args.name, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
