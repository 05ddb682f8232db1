"""Publish/subscribe through a plexus router: topics are notification methods.

    # publish: any plexus.Client, through the router's frontend
    await client.publish("sensor.temp", 21.5, "hall")

    # subscribe: a SUB socket on the router's --zmq-subscribers endpoint
    async with plexus.Subscriber("ipc:///tmp/p/subs.sock") as sub:
        sub.subscribe("sensor.", on_sensor)      # on_sensor(topic, *args), sync or async
        sub.subscribe("alarm")                   # no handler: for `async for`
        async for topic, args in sub:
            ...

    # UDP: one CBOR notification per datagram, to a router's --udp endpoint
    with plexus.DatagramSender("udp://127.0.0.1:9000") as tx:
        tx.send("sensor.temp", 21.5)

A publication is the notification ``[2, topic, params]``. The router sends it to every
subscriber of a prefix of its topic: native peers, and the seed-style SUB sockets
connected to its ``--zmq-subscribers`` endpoint, which receive ``[topic, notification]``
(ZeroMQ filters by prefix on the topic frame). Delivery is best effort everywhere: a
publication sent before a subscription has reached the router is not delivered to it,
and a subscriber that falls behind loses publications instead of slowing anyone down.

A :class:`Subscriber` holds at most ``queue_size`` publications per queue (the one
``async for`` reads, and one per async handler); more are dropped and counted in
:attr:`Subscriber.dropped`. ZeroMQ's own queues are bounded too (``ZMQ_RCVHWM`` here,
``ZMQ_SNDHWM`` in the router, which drops silently when a SUB socket is not read).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import logging
import socket
import urllib.parse
from typing import Any, Callable, Optional

import zmq

from . import wire
from ._channel import AsyncOpenClose, Channel
from .errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable
from .service import _is_async

__all__ = ["Subscriber", "DatagramSender", "MAX_DATAGRAM_BYTES", "PUBLISH_NAME"]

log = logging.getLogger("plexus")

#: the reserved recipient name of a publication (Client.publish sends to it)
PUBLISH_NAME = b"*"
#: the largest UDP payload over IPv4; a larger notification is refused, never truncated
MAX_DATAGRAM_BYTES = 65507

_loads = wire.decode
_NOTIFICATION = wire.NOTIFICATION


class _Closed(Exception):
    pass


class _Inbox:
    """A bounded FIFO read by coroutines: full means the new item is dropped and counted."""

    __slots__ = ("size", "items", "dropped", "closed", "_waiters")

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: collections.deque = collections.deque()
        self.dropped = 0
        self.closed = False
        self._waiters: list[asyncio.Future] = []

    def put(self, item: Any) -> None:
        if self.closed:
            return
        if len(self.items) >= self.size:
            self.dropped += 1
            return
        self.items.append(item)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._wake()

    async def get(self) -> Any:
        items = self.items
        while not items:
            if self.closed:
                raise _Closed
            w = asyncio.get_running_loop().create_future()
            self._waiters.append(w)
            try:
                await w
            except asyncio.CancelledError:
                if items:  # it may have been this waiter's item: let another look
                    self._wake()
                raise
        return items.popleft()


class _Subscription:
    __slots__ = ("prefix", "handler", "is_async", "inbox", "task")

    def __init__(self, prefix: str, handler: Optional[Callable[..., Any]],
                 inbox: Optional[_Inbox]) -> None:
        self.prefix = prefix
        self.handler = handler
        self.is_async = handler is not None and _is_async(handler)
        self.inbox = inbox
        self.task: Optional[asyncio.Task] = None


class Subscriber(AsyncOpenClose):
    """Receives publications from a plexus router's ``--zmq-subscribers`` endpoint.

    Parameters:
        address: the router's subscribers endpoint (``plexus router --zmq-subscribers
            ADDR``), e.g. ``ipc:///tmp/p/subs.sock`` or ``tcp://127.0.0.1:5557``.
        queue_size: publications held per local queue (the ``async for`` queue and
            each async handler's); when one is full, new publications for it are
            dropped and counted in :attr:`dropped`.
        hwm: ``ZMQ_RCVHWM`` of the SUB socket (messages ZeroMQ holds for this process
            before the router's side starts dropping).

    :meth:`subscribe` a topic prefix (``""``: every topic) with a handler, or without
    one to read the publications with ``async for topic, args in sub`` /
    :meth:`receive`. Handlers are called as ``handler(topic, *args)``: plain functions
    on the event loop as each publication arrives (they must not block); async
    functions are awaited one at a time per subscription, in arrival order. A handler's
    exception is logged and counted in :attr:`errors`. A publication matching several
    prefixes of one handler (or of the ``async for`` queue) is delivered to it once.
    Use as ``async with Subscriber(addr) as sub`` or ``await sub.start()`` /
    ``await sub.close()``; subscriptions may be made before or after starting.
    """

    def __init__(
        self,
        address: str,
        *,
        queue_size: int = 10_000,
        hwm: int = 10_000,
        context: Optional[zmq.Context] = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if hwm < 1:
            raise ValueError("hwm must be at least 1 (ZeroMQ reads 0 as unbounded)")
        self.address = address
        self.queue_size = queue_size
        self._hwm = hwm
        self._context = context
        self._chan: Optional[Channel] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._subs: list[_Subscription] = []
        self._prefixes: collections.Counter = collections.Counter()
        self._inbox = _Inbox(queue_size)
        self._connected: Optional[asyncio.Event] = None
        self._stopped = False
        self._dropped_gone = 0  # drops counted by the queues of removed subscriptions
        #: publications received from the router
        self.received = 0
        #: messages that were not [topic, notification]
        self.malformed = 0
        #: exceptions raised by handlers
        self.errors = 0
        #: connections made to the router (reconnections included)
        self.connections = 0

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, prefix: str = "", handler: Optional[Callable[..., Any]] = None) -> None:
        """Receive the publications whose topic starts with ``prefix``.

        With ``handler``, each is passed to ``handler(topic, *args)``; without, it is
        queued for ``async for`` / :meth:`receive`. The router starts sending them once
        the subscription has reached it (asynchronously, shortly after the connection
        is up): publications sent before that are not delivered.
        """
        if not isinstance(prefix, str):
            raise TypeError("a topic prefix is a str")
        if handler is not None and not callable(handler):
            raise TypeError(f"{handler!r} is not callable")
        if self._stopped:
            raise Unavailable("the subscriber is closed")
        inbox = None
        if handler is None:
            inbox = self._inbox
        elif _is_async(handler):
            inbox = _Inbox(self.queue_size)
        sub = _Subscription(prefix, handler, inbox)
        self._subs.append(sub)
        if self._chan is not None:
            self._start_task(sub)
        self._prefixes[prefix] += 1
        if self._prefixes[prefix] == 1 and self._chan is not None:
            self._chan._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def unsubscribe(self, prefix: str, handler: Optional[Callable[..., Any]] = None) -> None:
        """Remove the subscriptions of ``prefix`` (only ``handler``'s, if given).

        Publications already queued for a removed async handler are discarded.
        """
        keep, gone = [], []
        for s in self._subs:
            if s.prefix == prefix and (handler is None or s.handler is handler):
                gone.append(s)
            else:
                keep.append(s)
        self._subs = keep
        for s in gone:
            self._stop_task(s)
            self._prefixes[prefix] -= 1
        if gone and self._prefixes[prefix] <= 0:
            del self._prefixes[prefix]
            if self._chan is not None:
                self._chan._sock.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())

    @property
    def prefixes(self) -> list[str]:
        """The subscribed prefixes, sorted."""
        return sorted(self._prefixes)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> "Subscriber":
        if self._chan is not None:
            return self
        if self._stopped:
            raise Unavailable("the subscriber is closed")
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        options: dict[int, object] = {zmq.LINGER: 0, zmq.RCVHWM: self._hwm}
        self._chan = Channel(
            zmq.SUB, self.address, self._on_message, options=options, loop=self._loop,
            context=self._context, on_event=self._on_socket_event,
            events=zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED,
        )
        for prefix in self._prefixes:
            self._chan._sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for s in self._subs:
            self._start_task(s)
        return self

    async def close(self) -> None:
        """Close the socket and cancel async handlers; ``async for`` then ends after
        the publications still queued for it."""
        self._stopped = True
        chan, self._chan = self._chan, None
        tasks = []
        for s in self._subs:
            if s.task is not None:
                tasks.append(s.task)
            self._stop_task(s)
        self._inbox.close()
        if chan is not None:
            chan.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_socket_event(self, event: int, value: int) -> None:
        if self._connected is None:
            return
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.connections += 1
            self._connected.set()
        elif event == zmq.EVENT_DISCONNECTED:
            self._connected.clear()

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Wait until the connection to the router is up (the subscriptions follow it
        asynchronously). Raises asyncio.TimeoutError."""
        if self._connected is None:
            raise RuntimeError("the subscriber is not started")
        await asyncio.wait_for(self._connected.wait(), timeout)

    # -- reading -------------------------------------------------------------------

    def __aiter__(self) -> "Subscriber":
        return self

    async def __anext__(self) -> tuple[str, list]:
        try:
            return await self._inbox.get()
        except _Closed:
            raise StopAsyncIteration from None

    async def receive(self, timeout: Optional[float] = None) -> tuple[str, list]:
        """The next ``(topic, args)`` of the handler-less subscriptions.

        Raises plexus.DeadlineExceeded after ``timeout`` seconds, plexus.Unavailable
        once the subscriber is closed and its queue is empty.
        """
        try:
            if timeout is None:
                return await self._inbox.get()
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except _Closed:
            raise Unavailable("the subscriber is closed") from None
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"no publication within {timeout} s",
                                   context={"timeout_s": timeout}) from None

    @property
    def queued(self) -> int:
        """Publications waiting in the ``async for`` queue."""
        return len(self._inbox.items)

    @property
    def dropped(self) -> int:
        """Publications dropped because a local queue was full."""
        n = self._inbox.dropped
        seen = {id(self._inbox)}
        for s in self._subs:
            if s.inbox is not None and id(s.inbox) not in seen:
                seen.add(id(s.inbox))
                n += s.inbox.dropped
        return n + self._dropped_gone

    # -- internals -----------------------------------------------------------------

    def _start_task(self, s: _Subscription) -> None:
        if s.is_async and s.task is None and self._loop is not None:
            s.task = self._loop.create_task(self._run(s))

    def _stop_task(self, s: _Subscription) -> None:
        if s.inbox is not None and s.inbox is not self._inbox:
            s.inbox.close()
            s.inbox.items.clear()
            self._dropped_gone += s.inbox.dropped
            s.inbox.dropped = 0
        if s.task is not None:
            s.task.cancel()
            s.task = None

    async def _run(self, s: _Subscription) -> None:
        inbox, handler = s.inbox, s.handler
        assert inbox is not None and handler is not None
        while True:
            try:
                topic, args = await inbox.get()
            except _Closed:
                return
            try:
                await handler(topic, *args)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._handler_failed(s, topic)

    def _handler_failed(self, s: _Subscription, topic: str) -> None:
        self.errors += 1
        log.warning("plexus subscriber: handler for prefix %r failed on topic %r", s.prefix,
                    topic, exc_info=True)

    def _on_message(self, frames: list) -> None:
        # frames: [topic, notification]
        try:
            if len(frames) != 2:
                raise ValueError
            msg = _loads(frames[1])
            if type(msg) is not list or len(msg) != 3 or msg[0] != _NOTIFICATION:
                raise ValueError
            _, topic, args = msg
            if type(topic) is not str or type(args) is not list:
                raise ValueError
        except Exception:
            self.malformed += 1
            return
        self.received += 1
        subs = self._subs
        if len(subs) == 1:
            s = subs[0]
            if topic.startswith(s.prefix):
                self._deliver(s, topic, args)
            return
        seen: set = set()
        for s in subs:
            if not topic.startswith(s.prefix):
                continue
            key = id(s.inbox) if s.handler is None else id(s.handler)
            if key in seen:
                continue
            seen.add(key)
            self._deliver(s, topic, args)

    def _deliver(self, s: _Subscription, topic: str, args: list) -> None:
        if s.inbox is not None:
            s.inbox.put((topic, args))
            return
        try:
            s.handler(topic, *args)  # type: ignore[misc]
        except Exception:
            self._handler_failed(s, topic)


# -- UDP ------------------------------------------------------------------------------


def parse_udp_address(address: str) -> tuple[str, int, Optional[str], int]:
    """``udp://host:port[?interface=IPv4&ttl=N]`` -> (host, port, interface, ttl).

    Hosts: a name, an IPv4 address, ``[IPv6]`` or ``*`` (a sender sends to this
    host, 127.0.0.1). Raises plexus.InvalidArgument
    (a ValueError) naming the input.
    """
    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(
            f"bad udp address {address!r}: {why} (expected udp://host:port[?interface=IPv4&ttl=N])",
            context={"address": address},
        )

    if not isinstance(address, str) or not address.startswith("udp://"):
        raise bad("it must start with udp://")
    rest, _, query = address[len("udp://"):].partition("?")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0 or rest[end + 1:end + 2] != ":":
            raise bad("an IPv6 host is written [addr]:port")
        host, port_text = rest[1:end], rest[end + 2:]
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise bad("no port")
    if not host:
        raise bad("no host")
    try:
        port = int(port_text, 10)
    except ValueError:
        raise bad(f"the port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise bad("the port must be 1 to 65535")
    interface: Optional[str] = None
    ttl = 1
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key == "interface":
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise bad(f"interface {value!r} is not an IPv4 address") from None
            interface = value
        elif key == "ttl":
            try:
                ttl = int(value, 10)
            except ValueError:
                ttl = -1
            if not 0 <= ttl <= 255:
                raise bad(f"ttl {value!r} must be 0 to 255")
        else:
            raise bad(f"unknown option {key!r}")
    return host, port, interface, ttl


class DatagramSender:
    """Sends notifications as UDP datagrams, e.g. to a router's ``--udp`` endpoint.

        with plexus.DatagramSender("udp://127.0.0.1:9000") as tx:
            tx.send("sensor.temp", 21.5, "hall")        # [2, "sensor.temp", [21.5, "hall"]]

    One CBOR notification per datagram, best effort: a datagram may be lost,
    duplicated or reordered and nobody is told. Host ``*`` means this host (as for
    a router bound to ``udp://*:PORT``). A multicast address (224.0.0.0/4, ff00::/8)
    is sent to its group; ``?interface=IPv4`` picks the interface and ``?ttl=N`` the
    hops (default 1). :meth:`send` never blocks and never truncates:

    - a notification over 65,507 bytes encoded raises plexus.ResourceExhausted (so
      does a full socket buffer); nothing is sent;
    - arguments cbor2 cannot encode raise plexus.InvalidArgument;
    - a failed send raises plexus.Unavailable (on Linux an earlier datagram to a
      closed port is reported by a later send).
    """

    def __init__(self, address: str) -> None:
        host, port, interface, ttl = parse_udp_address(address)
        if host == "*":  # as in the router: a wildcard bind, and this host for a sender
            host = "127.0.0.1"
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise InvalidArgument(f"cannot resolve udp host {host!r}: {exc}",
                                  context={"address": address}) from None
        family, _, proto, _, target = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            ip = ipaddress.ip_address(target[0].split("%")[0])
            if ip.is_multicast:
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                    if interface:
                        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                        socket.inet_aton(interface))
                else:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.connect(target)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise Unavailable(f"cannot open udp {address}: {exc}",
                              context={"address": address}) from None
        self.address = address
        self._sock = sock
        #: datagrams sent
        self.sent = 0

    def send(self, topic: str, *args: Any) -> int:
        """Send ``[2, topic, args]`` as one datagram; return its size in bytes."""
        if not isinstance(topic, str):
            raise InvalidArgument("a topic is a str")
        try:
            payload = wire.encode([_NOTIFICATION, topic, args])
        except Exception as exc:
            raise InvalidArgument(f"cannot encode the arguments of {topic}: {exc}",
                                  context={"topic": topic}) from exc
        return self.send_encoded(payload)

    def send_encoded(self, payload: bytes) -> int:
        """Send an already encoded message as one datagram (same limits and errors)."""
        n = len(payload)
        if n > MAX_DATAGRAM_BYTES:
            raise ResourceExhausted(
                f"a datagram carries at most {MAX_DATAGRAM_BYTES:,} bytes; this message has "
                f"{n:,}: not sent (publish it through a router connection instead)",
                context={"size": n, "limit": MAX_DATAGRAM_BYTES},
            )
        sock = self._sock
        if sock is None:
            raise Unavailable("the datagram sender is closed")
        try:
            sock.send(payload)
        except BlockingIOError:
            raise ResourceExhausted("the udp send buffer is full; datagram not sent",
                                    context={"size": n}) from None
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise ResourceExhausted(
                    f"a datagram of {n:,} bytes is too large for the path; not sent",
                    context={"size": n, "limit": MAX_DATAGRAM_BYTES},
                ) from None
            raise Unavailable(f"udp send to {self.address} failed: {exc}",
                              context={"address": self.address}) from None
        self.sent += 1
        return n

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> "DatagramSender":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
