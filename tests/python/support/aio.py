"""Helpers the Python tests share: unique names, running a coroutine with a deadline,
and a barrier that waits until a subscriber gets what a client publishes.

    name = unique_name("pysvc")                 # used by one test only
    arun(main())                                # asyncio.run with a 30 s deadline
    await wait_subscribed(sub, client)          # sub now receives client's publications
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Coroutine

_names = iter(range(1, 1 << 30))


def unique_name(prefix: str) -> str:
    """A service name used by one test only (no stale registrations between tests)."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


def arun(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
    """Run a coroutine to completion with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_subscribed(sub, client, prefix: str = "_sync.", timeout: float = 10.0) -> None:
    """Until the router delivers to ``sub``: ``client`` publishes a fresh marker topic
    under ``prefix`` until it arrives (every 50 ms; AssertionError after ``timeout``).

    Also a barrier: everything ``client`` published before has reached ``sub`` by then.
    """
    marker = prefix + unique_name("sync")
    got = asyncio.Event()
    sub.subscribe(marker, lambda topic, *args: got.set())
    deadline = time.monotonic() + timeout
    try:
        while not got.is_set():
            if time.monotonic() > deadline:
                raise AssertionError(f"no marker publication reached the subscriber within "
                                     f"{timeout} s (received {sub.received})")
            await client.publish(marker)
            try:
                await asyncio.wait_for(got.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
    finally:
        sub.unsubscribe(marker)
