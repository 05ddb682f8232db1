"""The plexus client: remote calls and notifications through a router's ZeroMQ frontend.

    async with plexus.Client("ipc:///run/plexus/front.sock") as client:
        print(await client.call("calc", "add", 1, 2))           # 3
        await client.notify("logger", "line", "hello")          # no answer
        await client.publish("sensor.temp", 21.5)               # to its subscribers
        await client.log("info", "started", port=80)            # a record under log.<process>

One DEALER socket (``ZMQ_PROBE_ROUTER`` set, any identity) sends
``[service_name, payload]`` and receives ``[sender_id, payload]``, exactly the
frames of seed 001, so the same client also works against the seed's own
Router. Everything runs on the event loop thread: encoding, decoding and the
matching of responses to calls happen inline in one reader callback, with one
future per call and one loop timer for all deadlines (a heap of them).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
from typing import Any, Callable, Optional, Union

import zmq

from . import supervision, wire
from ._channel import PUBLISH, AsyncOpenClose, Channel, dealer_options
from .errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable, error_from_wire

__all__ = ["Client"]

_MSGID_MAX = wire.MSGID_MAX
_RESPONSE = wire.RESPONSE
_loads = wire.decode
_dumps = wire.encode

#: in-flight calls one client may have (as the C++ client)
MAX_IN_FLIGHT = 1 << 20


class _ServiceProxy:
    """``client.service("calc").add(1, 2)`` is ``client.call("calc", "add", 1, 2)``."""

    def __init__(self, client: "Client", name: str, timeout: Optional[float]) -> None:
        self._client = client
        self._name = name
        self._timeout = timeout

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("__"):
            raise AttributeError(method)
        return self[method]

    def __getitem__(self, method: str) -> Callable[..., Any]:
        return functools.partial(self._client.call, self._name, method, timeout=self._timeout)


class Client(AsyncOpenClose):
    """Calls services through a plexus (or seed 001) router's ZeroMQ frontend.

    Parameters:
        frontend: the router's frontend endpoint, e.g. ``ipc:///tmp/p/front.sock``
            or ``tcp://127.0.0.1:5555``.
        timeout: default deadline of a call in seconds (``call(..., timeout=)``
            overrides it per call).
        identity: optional ZeroMQ identity of the socket (bytes or str).

    Every call ends by its deadline: with the result, with the service's or the
    router's error as a :class:`plexus.RemoteError` subclass, or with
    :class:`plexus.DeadlineExceeded`. Use as ``async with Client(addr) as c`` or
    ``await c.connect()`` / ``await c.close()``.
    """

    _OPEN = "connect"

    def __init__(
        self,
        frontend: str,
        *,
        timeout: float = 5.0,
        identity: Union[bytes, str, None] = None,
        context: Optional[zmq.Context] = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.frontend = frontend
        self.timeout = float(timeout)
        self._identity = identity.encode() if isinstance(identity, str) else identity
        self._context = context
        self._chan: Optional[Channel] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # msgid -> future of the call in flight under that id
        self._pending: dict[int, asyncio.Future] = {}
        # Deadlines: one heap of (deadline, seq, msgid, future, service, method, timeout)
        # and one loop timer for its earliest entry, instead of a TimerHandle per call.
        # Answered calls stay in the heap until their deadline passes or the heap is
        # compacted (when it holds more than twice the calls in flight).
        self._deadlines: list = []
        self._seq = itertools.count()
        self._sweep_at = float("inf")
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        self._next_id = 1
        self._names: dict[str, bytes] = {}
        #: responses that matched no call in flight (late answers after a deadline)
        self.unexpected = 0
        #: frames that were not a well-formed response
        self.malformed = 0

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> "Client":
        if self._chan is not None:
            return self
        self._loop = asyncio.get_running_loop()
        self._chan = Channel(
            zmq.DEALER, self.frontend, self._on_message, options=dealer_options(self._identity, self.frontend),
            loop=self._loop, context=self._context,
        )
        return self

    async def close(self) -> None:
        """Fail the calls in flight with Unavailable and close the socket.

        Notifications already sent are handed to ZeroMQ, which keeps trying to
        deliver them for up to 200 ms after the close.
        """
        chan, self._chan = self._chan, None
        pending, self._pending = self._pending, {}
        self._deadlines = []
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self._sweep_at = float("inf")
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(Unavailable("the client was closed before the answer arrived"))
        if chan is not None:
            chan._flush()
            chan.close(linger=200)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # -- calls ---------------------------------------------------------------------

    def _name(self, service: str) -> bytes:
        name = self._names.get(service)
        if name is None:
            if isinstance(service, bytes):
                name = service
            else:
                name = service.encode()
            if not name:
                raise InvalidArgument("the service name is empty")
            if len(self._names) < 4096:
                self._names[service] = name
        return name

    def _new_id(self) -> int:
        pending = self._pending
        i = self._next_id
        if i in pending:
            if len(pending) >= MAX_IN_FLIGHT:
                raise ResourceExhausted(
                    f"too many calls in flight ({len(pending)})", context={"limit": MAX_IN_FLIGHT}
                )
            while i in pending:
                i = i + 1 if i < _MSGID_MAX else 1
        self._next_id = i + 1 if i < _MSGID_MAX else 1
        return i

    def _start(
        self, service: str, method: str, args: tuple, timeout: Optional[float]
    ) -> tuple[int, asyncio.Future]:
        chan = self._chan
        if chan is None:
            raise Unavailable("the client is not connected (use `async with Client(...)`)")
        pending = self._pending
        if len(pending) >= MAX_IN_FLIGHT:
            raise ResourceExhausted(
                f"too many calls in flight ({len(pending)})", context={"limit": MAX_IN_FLIGHT}
            )
        msgid = self._new_id()
        try:
            payload = _dumps([0, msgid, method, args])
        except Exception as exc:
            raise InvalidArgument(
                f"cannot encode the arguments of {service}.{method}: {exc}",
                context={"service": service, "method": method},
            ) from exc
        name = self._name(service)
        loop = self._loop
        fut = loop.create_future()  # type: ignore[union-attr]
        t = self.timeout if timeout is None else timeout
        deadline = loop.time() + t  # type: ignore[union-attr]
        deadlines = self._deadlines
        if len(deadlines) > 2 * len(pending) + 1024:
            self._compact()
        heapq.heappush(deadlines, (deadline, next(self._seq), msgid, fut, service, method, t))
        if deadline < self._sweep_at:
            self._arm(deadline)
        pending[msgid] = fut
        chan.send((name, payload))
        return msgid, fut

    def call_future(
        self, service: str, method: str, *args: Any, timeout: Optional[float] = None
    ) -> asyncio.Future:
        """Send a request now; return the future of its result (no coroutine needed).

        The future fails with a :class:`plexus.RemoteError` subclass exactly as
        :meth:`call` raises it. Cancelling the future abandons the call.
        """
        return self._start(service, method, args, timeout)[1]

    async def call(
        self, service: str, method: str, *args: Any, timeout: Optional[float] = None
    ) -> Any:
        """Call ``service.method(*args)`` and return its result.

        Raises:
            plexus.DeadlineExceeded: no answer within ``timeout`` seconds (default:
                the client's).
            plexus.Unavailable: no route to the service, its worker went away, the
                client is closed.
            plexus.NotFound / InvalidArgument / Internal / ...: the service's error;
                ``exc.message``, ``exc.code`` and ``exc.context`` carry what it sent.
            plexus.InvalidArgument: also when the arguments cannot be encoded.
        """
        msgid, fut = self._start(service, method, args, timeout)
        try:
            return await fut
        except asyncio.CancelledError:
            if self._pending.get(msgid) is fut:
                del self._pending[msgid]
            raise

    async def notify(self, service: str, method: str, *args: Any) -> None:
        """Send a notification ``[2, method, args]``; it is never answered."""
        chan = self._chan
        if chan is None:
            raise Unavailable("the client is not connected (use `async with Client(...)`)")
        try:
            payload = _dumps([2, method, args])
        except Exception as exc:
            raise InvalidArgument(
                f"cannot encode the arguments of {service}.{method}: {exc}",
                context={"service": service, "method": method},
            ) from exc
        chan.send((self._name(service), payload))

    async def publish(self, topic: str, *args: Any) -> None:
        """Publish ``[2, topic, args]`` to every subscriber of a prefix of ``topic``.

        Sent through the frontend to the reserved name ``"*"`` (a plexus router, not
        a seed 001 Router); never answered. Subscribers: native peers
        (``plexus subscribe``), :class:`plexus.Subscriber` and seed-style SUB sockets
        on the router's ``--zmq-subscribers`` endpoint. Best effort: a subscriber
        whose subscription has not reached the router yet, or that reads too slowly,
        does not get it.
        """
        chan = self._chan
        if chan is None:
            raise Unavailable("the client is not connected (use `async with Client(...)`)")
        payload = wire.encode_publication(topic, args)
        chan.send((PUBLISH, payload))

    async def log(self, level: str, message: str, /, **fields: Any) -> None:
        """Publish a structured log record under ``log.<process>`` (see
        :meth:`plexus.Service.log`): the process is ``$PLEXUS_PROCESS`` (set by
        ``plexus run``), else the client's identity, else ``"python"``.

        Raises:
            ValueError: ``level`` is not one of :data:`plexus.LOG_LEVELS`.
            plexus.Unavailable / InvalidArgument: as :meth:`publish`.
        """
        fallback = self._identity.decode(errors="replace") if self._identity else "python"
        await self.publish(*supervision.log_publication(level, message, fields, fallback))

    def service(self, name: str, *, timeout: Optional[float] = None) -> _ServiceProxy:
        """``await client.service("calc").add(1, 2)``."""
        return _ServiceProxy(self, name, timeout)

    async def ping(self, *, timeout: Optional[float] = None) -> Any:
        """Ask the plexus router itself (service ``plexus``); returns ``"pong"``."""
        return await self.call("plexus", "ping", timeout=timeout)

    # -- the receive side ----------------------------------------------------------

    def _arm(self, when: float) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        self._sweep_at = when
        self._sweep_handle = self._loop.call_at(when, self._sweep)  # type: ignore[union-attr]

    def _compact(self) -> None:
        pending = self._pending
        self._deadlines = [e for e in self._deadlines if pending.get(e[2]) is e[3]]
        heapq.heapify(self._deadlines)

    def _sweep(self) -> None:
        """Fail the calls whose deadline passed; re-arm for the next one."""
        self._sweep_handle = None
        self._sweep_at = float("inf")
        deadlines, pending = self._deadlines, self._pending
        now = self._loop.time()  # type: ignore[union-attr]
        while deadlines:
            entry = deadlines[0]
            if pending.get(entry[2]) is not entry[3]:
                heapq.heappop(deadlines)  # answered or abandoned
                continue
            if entry[0] > now:
                self._arm(entry[0])
                return
            heapq.heappop(deadlines)
            _, _, msgid, fut, service, method, t = entry
            del pending[msgid]
            if not fut.done():
                ms = round(t * 1000)
                fut.set_exception(
                    DeadlineExceeded(
                        f"no answer from {service}.{method} within the deadline of {ms} ms",
                        context={"deadline_ms": ms, "service": service, "method": method},
                    )
                )

    def _on_message(self, frames: list) -> None:
        # frames: [sender, payload]; for a response the sender is the name the request
        # addressed (as a seed router does); it is not needed here.
        if len(frames) != 2:
            self.malformed += 1
            return
        try:
            msg = _loads(frames[1])
            if msg[0] != _RESPONSE or len(msg) != 4:
                raise ValueError
            fut = self._pending.pop(msg[1], None)
        except Exception:
            self.malformed += 1
            return
        if fut is None:
            self.unexpected += 1
            return
        if fut.done():  # cancelled by its caller
            return
        error = msg[2]
        if error is None:
            fut.set_result(msg[3])
        else:
            fut.set_exception(error_from_wire(error))
