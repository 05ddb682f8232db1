"""A ZeroMQ socket driven directly by the asyncio event loop.

    chan = Channel(zmq.DEALER, "ipc:///tmp/front.sock", on_message=print)
    chan.send([b"calc", payload])   # never blocks, never awaits
    chan.close()

Internal. The socket is a plain (synchronous) pyzmq socket whose ``ZMQ_FD`` is
watched with ``loop.add_reader``; every wake-up drains everything the socket has
(``recv_multipart(NOBLOCK)`` until ``EAGAIN``) and writes whatever is queued, all on
the loop thread with no per-message future or task. ``ZMQ_FD`` is edge-triggered:
any operation on the socket (a send included) may consume the edge, so after every
send the channel schedules one more look at ``ZMQ_EVENTS`` (at most one per loop
iteration, however many messages were sent).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Callable, Optional, Sequence

import zmq

from . import curve

log = logging.getLogger("plexus")

#: the reserved recipient of publications (a plexus router fans them out to subscribers)
PUBLISH = b"*"


def dealer_options(identity: Optional[bytes] = None,
                   address: Optional[str] = None) -> dict[int, object]:
    """Socket options of the package's DEALERs (a Client's and a Service's): probe the
    router on connect, drop unsent messages at close, deep queues, heartbeats that
    notice a dead router within 3 s; ``identity`` if given; and for a tcp:// ``address``
    with ``PLEXUS_SECRET`` or ``PLEXUS_SECRET_FILE`` set, the CURVE keys of that secret
    (plexus.curve)."""
    options: dict[int, object] = {
        zmq.PROBE_ROUTER: 1,
        zmq.LINGER: 0,
        zmq.SNDHWM: 100_000,
        zmq.RCVHWM: 100_000,
        zmq.HEARTBEAT_IVL: 1000,
        zmq.HEARTBEAT_TIMEOUT: 3000,
    }
    if identity:
        options[zmq.IDENTITY] = identity
    if address is not None and address.startswith("tcp://"):
        secret = curve.secret_from_environment()
        if secret is not None:
            options.update(curve.curve_client_options(secret))
    return options


class AsyncOpenClose:
    """``async with obj`` for the package's socket owners: entering awaits the
    coroutine method named by ``_OPEN`` (and returns what it returns, the object
    itself), leaving awaits the one named by ``_CLOSE``, whatever happened inside."""

    _OPEN = "start"
    _CLOSE = "close"

    async def __aenter__(self):
        return await getattr(self, self._OPEN)()

    async def __aexit__(self, *exc_info) -> None:
        await getattr(self, self._CLOSE)()

OnMessage = Callable[[list], None]
OnEvent = Callable[[int, int], None]

# Plain ints: pyzmq's constants are enums, and enum arithmetic per message is
# measurable at these rates.
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_Again = zmq.Again

# The Cython socket methods, called directly: pyzmq's Python-level wrappers
# (sugar.Socket.send/recv_multipart) cost more than the send itself.
try:
    from zmq.backend import Socket as _Backend

    if not issubclass(zmq.Socket, _Backend):
        raise ImportError
    _send = _Backend.send
    _recv = _Backend.recv
    _get = _Backend.get
except ImportError:  # another pyzmq backend: the public methods do the same
    _send = zmq.Socket.send
    _recv = zmq.Socket.recv
    _get = zmq.Socket.getsockopt


def _send_multipart(sock: zmq.Socket, frames: Sequence[bytes]) -> None:
    """All frames or none (ZeroMQ accepts the rest once it took the first); Again if full."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        _send(sock, frame, _MORE_NOBLOCK if i < last else _NOBLOCK)


def _recv_multipart(sock: zmq.Socket) -> list:
    parts = [_recv(sock, _NOBLOCK)]
    while _get(sock, _RCVMORE):
        parts.append(_recv(sock, _NOBLOCK))
    return parts


class Channel:
    """One connected ZeroMQ socket serviced on the running event loop."""

    #: messages read per wake-up before yielding to other callbacks
    batch = 512

    def __init__(
        self,
        socket_type: int,
        address: str,
        on_message: OnMessage,
        *,
        options: Optional[dict[int, object]] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        context: Optional[zmq.Context] = None,
        on_event: Optional[OnEvent] = None,
        events: int = 0,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._on_message = on_message
        self._ctx = context or zmq.Context.instance()
        sock = self._ctx.socket(socket_type)
        self._monitor: Optional[_Monitor] = None
        try:
            for opt, value in (options or {}).items():
                sock.setsockopt(opt, value)  # type: ignore[arg-type]
            # The monitor must exist before connect(): an event of a connection made
            # before it (a fast local handshake) would never be reported.
            if on_event is not None and events:
                self._monitor = _Monitor(self._loop, sock, events, on_event)
            sock.connect(address)
        except Exception:
            if self._monitor is not None:
                self._monitor.close()
            sock.close(linger=0)
            raise
        self._sock = sock
        self._fd = _get(sock, int(zmq.FD))
        self._out: collections.deque[Sequence[bytes]] = collections.deque()
        self._scheduled = False
        self._closed = False
        self.address = address
        self.sent = 0
        self.received = 0
        self._loop.add_reader(self._fd, self._service)
        self._schedule()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        """Messages accepted by :meth:`send` but not yet handed to ZeroMQ."""
        return len(self._out)

    def send(self, frames: Sequence[bytes]) -> None:
        """Queue one multipart message; it is written now if ZeroMQ takes it."""
        if self._closed:
            raise RuntimeError("channel is closed")
        if self._out:
            self._out.append(frames)
        else:
            try:
                _send_multipart(self._sock, frames)
                self.sent += 1
            except _Again:
                self._out.append(frames)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._service)

    def close(self, linger: int = 0) -> None:
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            self._monitor.close()
        try:
            self._loop.remove_reader(self._fd)
        except Exception:  # loop already closed
            pass
        self._sock.close(linger=linger)
        self._out.clear()

    # -- internals -------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._scheduled and not self._closed:
            self._scheduled = True
            self._loop.call_soon(self._service)

    def _flush(self) -> None:
        out, sock = self._out, self._sock
        while out:
            try:
                _send_multipart(sock, out[0])
            except _Again:
                return
            out.popleft()
            self.sent += 1

    def _service(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        sock = self._sock
        on_message = self._on_message
        budget = self.batch
        while True:
            events = _get(sock, _EVENTS)
            if events & _POLLOUT and self._out:
                self._flush()
            if not events & _POLLIN:
                return
            if budget <= 0:
                self._schedule()  # more to read: continue on the next iteration
                return
            while budget > 0:
                try:
                    frames = _recv_multipart(sock)
                except _Again:
                    break
                budget -= 1
                self.received += 1
                try:
                    on_message(frames)
                except Exception:  # a bad message never stops the channel
                    log.exception("plexus: error while handling a message")
                if self._closed:
                    return


class _Monitor:
    """A socket's monitor (``zmq_socket_monitor``) read on the loop: (event, value)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: zmq.Socket, events: int,
                 on_event: OnEvent) -> None:
        self._loop = loop
        self._target = sock
        self._on_event = on_event
        self._sock = sock.get_monitor_socket(events)
        self._fd = _get(self._sock, int(zmq.FD))
        self._closed = False
        loop.add_reader(self._fd, self._drain)
        loop.call_soon(self._drain)

    def _drain(self) -> None:
        sock = self._sock
        while not self._closed:
            try:
                parts = _recv_multipart(sock)
            except _Again:
                if not _get(sock, _EVENTS) & _POLLIN:
                    return
                continue
            if len(parts) != 2 or len(parts[0]) != 6:
                continue
            event = int.from_bytes(parts[0][:2], "little")
            value = int.from_bytes(parts[0][2:], "little", signed=True)
            try:
                self._on_event(event, value)
            except Exception:
                log.exception("plexus: error in a socket event handler")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.remove_reader(self._fd)
        except Exception:
            pass
        try:
            self._target.disable_monitor()
        except zmq.ZMQError:
            pass
        self._sock.close(linger=0)
