"""An independent, minimal client and service that follow seed 001 exactly.

Written from the seed's description (shared/seeds/001), not from plexus: it does not
import the plexus package. It is the yardstick of compatibility: whatever these
peers do must work through the plexus router unchanged.

    async with SeedClient("ipc:///tmp/p/front.sock") as c:
        print(await c.issue_call("calc", "add", 1, 2))
    # service:  python3 seed_peer.py serve --backend ipc:///tmp/p/back.sock --name svc

What 001 specifies and this follows:
- sockets: a client DEALER with ``ZMQ_PROBE_ROUTER = 1`` connects to the router's
  frontend and sends ``[recipient_id, payload]``; it receives
  ``[sender_id, payload]``. A service DEALER whose identity is its name (and
  ``ZMQ_PROBE_ROUTER = 1``) connects to the backend, receives
  ``[sender_id, payload]`` and answers ``[sender_id, payload]``.
- payload: CBOR ``[0, msgid, method, params]``, ``[1, msgid, error, result]``,
  ``[2, method, params]``; ``error`` is null or ``[message, context]``.
- ``RequestTracker``: a random msgid in ``[0, 2**32 - 1]`` not in flight.
- ``Client.issue_call``: ``asyncio.wait_for(result, timeout)`` (default 5 s); an error
  response raises ``RemoteCallError(message, **context)``.
- ``Handler.dispatch``: unknown method -> ``RemoteCallError('no such method exists',
  method=...)``; async methods awaited, plain ones run with ``asyncio.to_thread``;
  a timeout -> ``'method timed out'`` with ``timeout``; any other exception
  (RemoteCallError included) -> ``'method produced an error'`` with an empty context.
  ``passthrough_errors=True`` is the one deliberate extension: RemoteCallErrors raised
  by a method are sent as they are, so a seed-style service can report plexus error
  codes (``RemoteCallError('...', code='invalid_argument')``).
- ``Service``: answers requests only; notifications are dispatched, never answered.
- encode/decode with cbor2 (inline here; 001 hops to a thread, which changes
  nothing on the wire).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import random
import signal
import sys
import time
from typing import Any, Callable, Optional

import cbor2
import zmq
import zmq.asyncio

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


class RemoteCallError(Exception):
    """001's error: a message plus keyword context."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


def route(method_or_name):
    """001's decorator marking handler methods (optionally under another name)."""
    if isinstance(method_or_name, str):
        def decorator(method):
            method.__remote__ = method_or_name
            return method
        return decorator
    method_or_name.__remote__ = method_or_name.__name__
    return method_or_name


class SeedHandler:
    """001's Handler: bound methods marked with :func:`route`."""

    passthrough_errors = False

    def _method_table(self) -> dict:
        table = {}
        for attr, func in inspect.getmembers(type(self), inspect.isfunction):
            if hasattr(func, "__remote__"):
                table[func.__remote__] = getattr(self, attr)
        return table

    async def dispatch(self, method: str, *args: Any, timeout: float = 30) -> Any:
        func = self._method_table().get(method)
        if not func:
            raise RemoteCallError("no such method exists", method=method)
        try:
            if inspect.iscoroutinefunction(func):
                call = func(*args)
            else:
                call = asyncio.to_thread(func, *args)
            return await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError as exc:
            raise RemoteCallError("method timed out", timeout=timeout) from exc
        except RemoteCallError:
            if self.passthrough_errors:
                raise
            raise RemoteCallError("method produced an error")
        except Exception as exc:
            raise RemoteCallError("method produced an error") from exc


def socket_node(endpoint: str, identity: Optional[bytes] = None) -> zmq.asyncio.Socket:
    """001's SocketNode: a DEALER with ``ZMQ_PROBE_ROUTER = 1`` (and ``identity``, if
    given) connected to ``endpoint``."""
    sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    if identity:
        sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.PROBE_ROUTER, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def start_workers(receive: Callable[[], Any], process: Callable[[], Any],
                  concurrency: int) -> list:
    """001's Endpoint: one receive task and ``concurrency`` tasks processing what it queues."""
    return [asyncio.create_task(receive())] + [
        asyncio.create_task(process()) for _ in range(concurrency)
    ]


async def close_node(sock: Optional[zmq.asyncio.Socket], tasks: list) -> None:
    """Cancel ``tasks``, wait until they have ended, close ``sock``."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t
    if sock:
        sock.close()


class _Node:
    """What 001's Client and Service share: a socket node whose receive task hands
    every ``[sender_id, *frames]`` to ``_on_frames``; leaving ``async with`` cancels
    the tasks and closes the socket."""

    sock: Optional[zmq.asyncio.Socket]
    _tasks: list

    async def __aexit__(self, *exc: Any) -> None:
        await close_node(self.sock, self._tasks)

    async def _recv_forever(self) -> None:
        assert self.sock is not None
        while True:
            sender_id, *frames = await self.sock.recv_multipart()
            await self._on_frames(sender_id, frames)

    async def _on_frames(self, sender_id: bytes, frames: list) -> None:
        raise NotImplementedError


class SeedClient(_Node):
    """001's Client over a DEALER SocketNode connected to a router frontend."""

    def __init__(self, frontend: str, *, identity: Optional[bytes] = None) -> None:
        self.frontend = frontend
        self.identity = identity
        self.futures: dict[int, asyncio.Future] = {}
        self.received: list = []  # every (sender_id, message) that arrived
        self.unexpected: list = []
        self.sock: Optional[zmq.asyncio.Socket] = None
        self._tasks: list = []

    async def __aenter__(self) -> "SeedClient":
        self.sock = socket_node(self.frontend, self.identity)
        self._tasks = [asyncio.create_task(self._recv_forever())]
        return self

    async def _on_frames(self, sender_id: bytes, frames: list) -> None:
        payload, *_ = frames
        message_type, *message = cbor2.loads(payload)
        self.received.append((sender_id, [message_type, *message]))
        if message_type != RESPONSE:
            self.unexpected.append((sender_id, [message_type, *message]))
            return
        message_id, error, result = message
        fut = self.futures.get(message_id)
        if fut is None or fut.done():
            self.unexpected.append((sender_id, [message_type, *message]))
            return
        if isinstance(error, list):
            error_message, context = error
            fut.set_exception(RemoteCallError(error_message, **context))
        else:
            fut.set_result(result)

    def _generate_uid(self) -> int:
        for _ in range(10):
            request_id = random.randint(0, (1 << 32) - 1)
            if request_id not in self.futures:
                return request_id
        raise ValueError("unable to generate a request ID")

    async def issue_call(
        self, service: str, method: str, *args: Any,
        notification: bool = False, timeout: float = 5,
    ) -> Any:
        assert self.sock is not None
        address = service.encode()
        if notification:
            request = [NOTIFICATION, method, list(args)]
            await self.sock.send_multipart([address, cbor2.dumps(request)])
            return None
        message_id = self._generate_uid()
        fut = asyncio.get_running_loop().create_future()
        self.futures[message_id] = fut
        try:
            request = [REQUEST, message_id, method, list(args)]
            await self.sock.send_multipart([address, cbor2.dumps(request)])
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.futures.pop(message_id, None)


class SeedService(_Node):
    """001's Service over a DEALER (identity = name) connected to a router backend."""

    def __init__(self, backend: str, name: str, handler: SeedHandler, *,
                 concurrency: int = 8, timeout: float = 30) -> None:
        self.backend = backend
        self.name = name
        self.handler = handler
        self.concurrency = concurrency
        self.timeout = timeout
        self.queue: asyncio.Queue = asyncio.Queue(128)
        self.sock: Optional[zmq.asyncio.Socket] = None
        self._tasks: list = []

    async def __aenter__(self) -> "SeedService":
        self.sock = socket_node(self.backend, self.name.encode())
        self._tasks = start_workers(self._recv_forever, self._process_forever, self.concurrency)
        return self

    async def _on_frames(self, sender_id: bytes, frames: list) -> None:
        await self.queue.put((frames, sender_id))

    async def _process_forever(self) -> None:
        while True:
            frames, address = await self.queue.get()
            try:
                payload, *_ = frames
                message_type, *message = cbor2.loads(payload)
                await self._handle(address, message_type, *message)
            except (ValueError, cbor2.CBORDecodeError, RemoteCallError) as exc:
                print(f"seed service: failed to process a message: {exc!r}", file=sys.stderr)

    async def _handle(self, address: bytes, message_type: int, *message: Any) -> None:
        if message_type == REQUEST:
            message_id, method, args = message
        elif message_type == NOTIFICATION:
            message_id, (method, args) = None, message
        else:
            return
        try:
            result = await self.handler.dispatch(method, *args, timeout=self.timeout)
            error = None
        except RemoteCallError as exc:
            result, error = None, [str(exc), exc.context]
        if message_type == REQUEST:
            response = [RESPONSE, message_id, error, result]
            assert self.sock is not None
            await self.sock.send_multipart([address, cbor2.dumps(response)])


class ConformanceHandler(SeedHandler):
    """The methods the conformance tests call on a seed-style service."""

    passthrough_errors = True

    def __init__(self) -> None:
        self.notes: list = []

    @route
    def echo(self, value: Any) -> Any:
        return value

    @route
    async def echo_async(self, value: Any) -> Any:
        return value

    @route
    def add(self, a: Any, b: Any) -> Any:
        return a + b

    @route
    def blob(self, n: int) -> bytes:
        return bytes(i & 0xFF for i in range(n))

    @route
    def fail(self, text: str) -> None:
        raise ValueError(text)  # 001 wraps it: 'method produced an error'

    @route
    def refuse(self, value: Any) -> None:
        raise RemoteCallError(f"refused {value!r}", code="invalid_argument", value=value)

    @route
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @route
    async def nap(self, seconds: float) -> float:
        print(f"nap {seconds}", flush=True)
        await asyncio.sleep(seconds)
        return seconds

    @route
    def pid(self) -> int:
        return os.getpid()

    @route
    def note(self, value: Any) -> None:
        self.notes.append(value)
        print(f"note {value!r}", flush=True)

    @route
    def notes_seen(self) -> list:
        return list(self.notes)

    @route("with-dash")
    def with_dash(self) -> str:
        return "dash"


async def _serve(backend: str, name: str) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with SeedService(backend, name, ConformanceHandler(), timeout=30):
        print("seed service ready", flush=True)
        await stop


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description="a seed-001 style service for conformance tests")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--backend", required=True)
    s.add_argument("--name", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        asyncio.run(_serve(args.backend, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
