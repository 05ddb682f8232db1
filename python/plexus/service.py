"""The plexus service: handlers called through a router's ZeroMQ backend.

    svc = plexus.Service("ipc:///run/plexus/back.sock", "greeter")
    svc.route(lambda who: f"hello {who}", name="hello")       # or @svc.route
    await svc.serve()                                          # until cancelled

One DEALER socket whose ZeroMQ identity is the service name (``ZMQ_PROBE_ROUTER``
set, so the router learns the name as soon as the connection is up) receives
``[sender_id, payload]`` and answers ``[sender_id, payload]``: the frames of seed
001. Async handlers run as tasks on the loop; plain functions run in a thread pool
(they may block) unless registered with ``inline=True``, which runs them directly on
the loop (for quick, non-blocking functions: the fastest path). Every request is
answered (a result or an error); notifications never are.

Under ``plexus run`` ($PLEXUS_NOTIFY_FD set, see :mod:`plexus.supervision`) the service
pings the router after each connection's probe; the answer confirms the registration,
and the service then writes ``READY=1`` (once) and a ``HEALTH=`` report every
$PLEXUS_HEALTH_INTERVAL_MS (default 1000 ms) until it stops. :meth:`Service.log`
publishes structured log records under ``log.<process>``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import inspect
import itertools
import logging
import os
import threading
from typing import Any, Callable, Optional, Union

import zmq

from . import supervision, wire
from ._channel import PUBLISH, AsyncOpenClose, Channel, dealer_options
from .errors import RemoteError, Unavailable, error_from_wire
from .http import Request, Response

__all__ = ["Service"]

log = logging.getLogger("plexus")

_INLINE, _ASYNC, _THREAD = 0, 1, 2
_KIND_NAMES = {_INLINE: "inline", _ASYNC: "async", _THREAD: "thread"}

_dumps = wire.encode
_loads = wire.decode
_MSGID_MAX = wire.MSGID_MAX
_RESPONSE = wire.RESPONSE
_ROUTER = b"plexus"  # the router's own service


class _Route:
    __slots__ = ("name", "func", "kind", "min_args", "max_args", "signature")

    def __init__(self, name: str, func: Callable[..., Any], inline: bool) -> None:
        if not callable(func):
            raise TypeError(f"route {name!r}: {func!r} is not callable")
        self.name = name
        self.func = func
        if _is_async(func):
            if inline:
                raise ValueError(f"route {name!r}: inline=True is for plain functions")
            self.kind = _ASYNC
        else:
            self.kind = _INLINE if inline else _THREAD
        try:
            try:
                sig = inspect.signature(func, eval_str=True)
            except Exception:  # string annotations that do not evaluate here
                sig = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have no signature
            self.min_args, self.max_args, self.signature = 0, None, "(...)"
            return
        lo, hi = 0, 0
        unbounded = False
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                hi += 1
                if p.default is p.empty:
                    lo += 1
            elif p.kind is p.VAR_POSITIONAL:
                unbounded = True
            elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                raise ValueError(
                    f"route {name!r}: keyword-only parameter {p.name!r} has no default; "
                    "remote calls pass positional arguments only"
                )
        self.min_args = lo
        self.max_args = None if unbounded else hi
        self.signature = str(sig)

    def describe_arity(self) -> str:
        lo, hi = self.min_args, self.max_args
        if hi is None:
            n = f"at least {lo}"
        elif lo == hi:
            n = str(lo)
        else:
            n = f"{lo} to {hi}"
        return f"{n} argument{'' if n.split()[-1] == '1' else 's'}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "signature": self.signature, "blocking": self.kind == _THREAD}


def _is_async(func: Any) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)
    )


class _Call:
    """A request being handled off the fast path (async or in a thread)."""

    __slots__ = ("sender", "msgid", "method", "future", "timer", "answered")

    def __init__(self, sender: bytes, msgid: Optional[int], method: str) -> None:
        self.sender = sender
        self.msgid = msgid
        self.method = method
        self.future: Optional[asyncio.Future] = None
        self.timer: Optional[asyncio.TimerHandle] = None
        self.answered = False


def error_for(exc: BaseException, method: str) -> list:
    """The wire ``[message, context]`` for an exception raised by handler ``method``."""
    if isinstance(exc, RemoteError):
        ctx = dict(exc.context)
        ctx["code"] = exc.code
        ctx.setdefault("method", method)
        return [exc.message, ctx]
    name = type(exc).__name__
    return [str(exc) or name, {"code": "internal", "exception": name, "method": method}]


class Service(AsyncOpenClose):
    """Serves handlers under one service name through a router's ZeroMQ backend.

    Parameters:
        backend: the router's backend endpoint, e.g. ``ipc:///tmp/p/back.sock``.
        name: the service name (also the socket's ZeroMQ identity), 1-255 bytes.
        timeout: handler deadline in seconds; a handler still running then is
            answered with ``deadline_exceeded`` (an async one is also cancelled).
        concurrency: async/thread handlers running at once; further requests wait
            in arrival order (inline handlers are not counted: they finish before
            the next message is read).
        workers: threads for plain (blocking) handlers; default min(32, cpus + 4).
        executor: use this executor for plain handlers instead of an own pool.

    Register handlers with :meth:`route`, then ``await svc.serve()`` (runs until
    cancelled) or ``async with svc: ...``.
    """

    _CLOSE = "stop"

    def __init__(
        self,
        backend: str,
        name: str,
        *,
        timeout: float = 30.0,
        concurrency: int = 256,
        workers: Optional[int] = None,
        executor: Optional[concurrent.futures.Executor] = None,
        context: Optional[zmq.Context] = None,
    ) -> None:
        ident = name.encode() if isinstance(name, str) else bytes(name)
        if not 1 <= len(ident) <= 255:
            raise ValueError("a service name is 1 to 255 bytes")
        if ident == b"plexus":
            raise ValueError('"plexus" is the router\'s own service name')
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.backend = backend
        self.name = ident.decode(errors="replace")
        self.timeout = float(timeout)
        self.concurrency = concurrency
        self._ident = ident
        self._routes: dict[str, _Route] = {}
        self._workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._executor = executor
        self._own_executor = executor is None
        self._context = context
        self._chan: Optional[Channel] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._active = 0
        self._calls: set[_Call] = set()
        self._backlog: collections.deque = collections.deque()
        self._draining = False
        self._idle: Optional[asyncio.Event] = None
        self._connected: Optional[asyncio.Event] = None
        self._loop_thread: Optional[int] = None
        # Under plexus run: the msgid of the ping that confirms the registration, the
        # READY=1 already written, and the health report timer.
        self._probe_ids = itertools.count(1)
        self._probe_id: Optional[int] = None
        # HTTP routes (docs/gateway.md): declared to the router after each connection;
        # the msgid of that declaration, and what serve() waits on (a refusal ends it).
        self._http_routes: list[dict[str, Any]] = []
        self._routes_id: Optional[int] = None
        self._failed: Optional[asyncio.Future] = None
        #: the router's refusal of the HTTP routes (a RemoteError), if it refused them
        self.refused: Optional[RemoteError] = None
        self._ready_sent = False
        self._health: Optional[asyncio.TimerHandle] = None
        self._health_interval = 1.0
        #: connections made to the backend (reconnections included)
        self.connections = 0
        #: counters
        self.requests = 0
        self.notifications = 0
        self.malformed = 0

    # -- registration ----------------------------------------------------------------

    def route(
        self,
        name_or_func: Union[str, Callable[..., Any], None] = None,
        /,
        *,
        name: Optional[str] = None,
        inline: bool = False,
    ) -> Any:
        """Register a handler. Forms::

            @svc.route                      # name = the function's name
            @svc.route("non-identifier")    # explicit name
            @svc.route(inline=True)         # plain function run on the loop
            svc.route(func, name="x")       # no decorator

        Async functions become tasks; plain functions run in the thread pool unless
        ``inline=True``. The decorator returns the function unchanged.
        """
        if callable(name_or_func):
            self.add(name or name_or_func.__name__, name_or_func, inline=inline)
            return name_or_func
        explicit = name_or_func if name_or_func is not None else name

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self.add(explicit or func.__name__, func, inline=inline)
            return func

        return decorator

    def add(self, name: str, func: Callable[..., Any], *, inline: bool = False) -> None:
        """Register ``func`` under ``name`` (replacing an earlier one)."""
        if not isinstance(name, str):
            raise TypeError("a method name is a str")
        self._routes[name] = _Route(name, func, inline)

    def http(self, verb: str, pattern: str, *, inline: bool = False) -> Callable:
        """Declare an HTTP route that ``plexus run``'s gateway serves (docs/gateway.md)::

            @svc.http("GET", "/api/counter/{id}")
            def counter(request):                   # a plexus.Request
                return {"id": request.params["id"]}   # JSON; or str, bytes, a Response

        ``verb`` is GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS; ``pattern`` an
        absolute path whose ``{name}`` segments are parameters. The handler runs like a
        :meth:`route` handler (async, thread pool, or ``inline=True`` on the loop); an
        exception becomes a 500 with its message and code. The route is declared to the
        router once connected, with the handler's file and line; a route another
        running service declared is refused, naming both, and :meth:`serve` then raises
        that error (see also :attr:`refused`).
        """
        if not isinstance(verb, str) or not isinstance(pattern, str):
            raise TypeError("an HTTP route is (verb: str, pattern: str)")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            method = f"http {verb} {pattern}"
            code = getattr(inspect.unwrap(func), "__code__", None)
            where = f"{code.co_filename}:{code.co_firstlineno}" if code else repr(func)
            if _is_async(func):
                async def handler(request: Any) -> dict:
                    return Response.of(await func(Request.from_wire(request))).to_wire()
            else:
                def handler(request: Any) -> dict:
                    return Response.of(func(Request.from_wire(request))).to_wire()
            self.add(method, handler, inline=inline)
            self._http_routes = [r for r in self._http_routes if r["method"] != method]
            self._http_routes.append({"verb": verb, "pattern": pattern, "kind": "plain",
                                      "method": method, "where": where, "deadline_ms": 0})
            if self._chan is not None:  # already connected: declare the new list now
                self._declare_routes()
            return func

        return decorator

    @property
    def methods(self) -> list[dict[str, Any]]:
        """``[{"name", "signature", "blocking"}]`` for every route, sorted by name."""
        return [self._routes[k].describe() for k in sorted(self._routes)]

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> "Service":
        """Connect to the backend; requests are served from now on."""
        if self._chan is not None:
            return self
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix=f"plexus-{self.name}"
            )
            self._own_executor = True
        self._connected = asyncio.Event()
        self._chan = Channel(
            zmq.DEALER, self.backend, self._on_message, options=dealer_options(self._ident, self.backend),
            loop=self._loop, context=self._context, on_event=self._on_socket_event,
            events=zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED,
        )
        return self

    def _on_socket_event(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.connections += 1
            self._connected.set()
            if self.connections > 1 and self._chan is not None:
                # libzmq sends the ZMQ_PROBE_ROUTER probe only on the first connection;
                # after a reconnect (a restarted router) announce the name again.
                self._chan.send((b"",))
            if self._chan is not None and supervision.supervised():
                # The router registers the name when the probe arrives; its answer to a
                # ping sent after the probe on the same connection confirms that.
                self._probe_id = next(self._probe_ids) & _MSGID_MAX
                self._chan.send((_ROUTER, _dumps([0, self._probe_id, "ping", []])))
            self._declare_routes()
        elif event == zmq.EVENT_DISCONNECTED:
            self._connected.clear()

    def _declare_routes(self) -> None:
        """Send the HTTP routes to the router (after the probe, on the same connection,
        so the router knows this service when they arrive)."""
        if not self._http_routes or self._chan is None:
            return
        self._routes_id = next(self._probe_ids) & _MSGID_MAX
        self._chan.send((_ROUTER, _dumps([0, self._routes_id, "declare_routes",
                                          [self._http_routes]])))

    def _on_routes_answer(self, error: Any) -> None:
        self._routes_id = None
        if error is None:
            return
        self.refused = error_from_wire(error)
        log.error("plexus service %s: the router refused its HTTP routes: %s", self.name,
                  self.refused.message)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(self.refused)

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Wait until the connection to the router's backend is up (the router learns
        the service name right after). Raises asyncio.TimeoutError."""
        if self._chan is None:
            raise RuntimeError("the service is not started")
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self, grace: float = 1.0) -> None:
        """Stop serving: requests arriving from now on are answered ``unavailable``;
        handlers still running after ``grace`` seconds are cancelled and their callers
        answered ``unavailable``; then the socket is closed."""
        chan = self._chan
        if chan is None:
            return
        self._draining = True
        self._probe_id = None
        if self._health is not None:
            self._health.cancel()
            self._health = None
        while self._backlog:
            sender, msgid, method, _ = self._backlog.popleft()
            self._reply(sender, msgid, self._draining_error(method), None, method)
        if self._active and self._idle is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except asyncio.TimeoutError:
                pass
        for call in list(self._calls):
            if not call.answered:
                call.answered = True
                if call.timer:
                    call.timer.cancel()
                if call.future is not None:
                    call.future.cancel()
                self._reply(call.sender, call.msgid, self._draining_error(call.method), None,
                            call.method)
        self._calls.clear()
        self._active = 0
        self._chan = None
        chan._flush()
        chan.close(linger=500)
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def serve(self) -> None:
        """Serve until cancelled (then stop gracefully). Raises the router's error if it
        refuses the service's HTTP routes (a route another service declared)."""
        await self.start()
        self._failed = asyncio.get_running_loop().create_future()
        try:
            if self.refused is not None:
                raise self.refused
            await self._failed  # ends only with the router's refusal, or cancelled
        finally:
            self._failed = None
            await self.stop()

    @property
    def active(self) -> int:
        """Async and thread handlers running now."""
        return self._active

    # -- publications, logs and supervision --------------------------------------

    def publish(self, topic: str, *args: Any) -> None:
        """Publish ``[2, topic, args]`` to every subscriber of a prefix of ``topic``.

        Sent through the backend to the reserved name ``"*"`` (a plexus router, not a
        seed 001 Router); never answered, best effort (see :meth:`Client.publish`).
        Never blocks and may be called from any thread (a blocking handler's included).

        Raises:
            plexus.Unavailable: the service is not started.
            plexus.InvalidArgument: ``topic`` is not a str or ``args`` cannot be encoded.
        """
        if self._chan is None:
            raise Unavailable(f"the service {self.name} is not started")
        payload = wire.encode_publication(topic, args)
        if threading.get_ident() == self._loop_thread:
            self._send_publication(payload)
        else:
            try:
                self._loop.call_soon_threadsafe(self._send_publication, payload)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed
                raise Unavailable(f"the service {self.name} is not started") from None

    def _send_publication(self, payload: bytes) -> None:
        chan = self._chan
        if chan is not None and not chan.closed:
            chan.send((PUBLISH, payload))

    def log(self, level: str, message: str, /, **fields: Any) -> None:
        """Publish a structured log record under ``log.<process>``.

        ``level`` is one of :data:`plexus.LOG_LEVELS` (``trace`` … ``critical``; another
        raises ValueError); the process is ``$PLEXUS_PROCESS`` (set by ``plexus run``),
        else the service's name. The record is :func:`plexus.log_record`'s; ``plexus run``
        writes it to the process's log file and ``plexus logs`` shows it. Never blocks;
        may be called from any thread. Raises like :meth:`publish` otherwise.
        """
        self.publish(*supervision.log_publication(level, message, fields, self.name))

    def _on_registered(self) -> None:
        """The router answered the ping sent after the probe: the name is registered."""
        self._probe_id = None
        if self._chan is None or self._draining:
            return
        if not self._ready_sent:  # once per process: a reconnection is not news
            self._ready_sent = True
            supervision.notify_ready()
        if self._health is None:
            self._health_interval = supervision.health_interval()
            self._report_health()

    def health(self) -> dict[str, Any]:
        """What the periodic health report (under ``plexus run``) says: handlers
        running (``in_flight``), requests waiting for a slot (``backlog``), messages
        not yet handed to ZeroMQ (``queued_messages``), the thread pool's size
        (``worker_threads``) and the counters ``requests`` and ``notifications``."""
        chan = self._chan
        return {
            "in_flight": self._active,
            "backlog": len(self._backlog),
            "queued_messages": chan.queued if chan is not None else 0,
            "worker_threads": self._workers,
            "requests": self.requests,
            "notifications": self.notifications,
        }

    def _report_health(self) -> None:
        self._health = None
        if self._chan is None or self._draining:
            return
        supervision.notify_health(self.health())
        self._health = self._loop.call_later(  # type: ignore[union-attr]
            self._health_interval, self._report_health
        )

    # -- the receive side ----------------------------------------------------------

    def _on_message(self, frames: list) -> None:
        if len(frames) != 2:
            if frames != [b""]:
                self.malformed += 1
            return
        sender, payload = frames
        try:
            msg = _loads(payload)
            kind = msg[0]
            if kind == _RESPONSE and self._probe_id is not None and len(msg) == 4 \
                    and msg[1] == self._probe_id:
                self._on_registered()
                return
            if kind == _RESPONSE and self._routes_id is not None and len(msg) == 4 \
                    and msg[1] == self._routes_id:
                self._on_routes_answer(msg[2])
                return
            if kind == 0:
                _, msgid, method, params = msg
                if type(msgid) is not int or not 0 <= msgid <= _MSGID_MAX:
                    raise ValueError(f"msgid must be an unsigned 32-bit integer, got {msgid!r}")
            elif kind == 2:
                _, method, params = msg
                msgid = None
            else:
                raise ValueError(f"a service receives requests and notifications, got kind {kind!r}")
            if type(method) is not str:
                raise ValueError(f"method must be text, got {type(method).__name__}")
            if type(params) is not list:
                raise ValueError(f"params must be an array, got {type(params).__name__}")
        except Exception as exc:
            self.malformed += 1
            msgid = wire.peek_request_id(payload)
            if msgid is not None:
                text = f"malformed request: {exc}"
                self._reply(sender, msgid, [text, {"code": "invalid_argument"}], None, "")
            else:
                log.warning("plexus service %s: dropped a malformed message: %s", self.name, exc)
            return
        if msgid is None:
            self.notifications += 1
        else:
            self.requests += 1
        if self._draining:
            self._reply(sender, msgid, self._draining_error(method), None, method)
        elif self._active >= self.concurrency:
            self._backlog.append((sender, msgid, method, params))
        else:
            self._dispatch(sender, msgid, method, params)

    def _draining_error(self, method: str) -> list:
        return [f"service {self.name} is draining",
                {"code": "unavailable", "service": self.name, "method": method}]

    def _dispatch(self, sender: bytes, msgid: Optional[int], method: str, params: list) -> None:
        route = self._routes.get(method)
        if route is None:
            self._reply(sender, msgid, [
                f"service {self.name} has no method '{method}'",
                {"code": "not_found", "service": self.name, "method": method,
                 "methods": sorted(self._routes)},
            ], None, method)
            return
        n = len(params)
        if n < route.min_args or (route.max_args is not None and n > route.max_args):
            self._reply(sender, msgid, [
                f"{method} expects {route.describe_arity()} {route.signature}, got {n}",
                {"code": "invalid_argument", "method": method, "signature": route.signature,
                 "expected": route.describe_arity(), "got": n},
            ], None, method)
            return
        kind = route.kind
        loop = self._loop
        assert loop is not None
        if kind == _INLINE:
            try:
                result = route.func(*params)
            except Exception as exc:
                self._reply(sender, msgid, error_for(exc, method), None, method)
                return
            if not inspect.isawaitable(result):
                self._reply(sender, msgid, None, result, method)
                return
            fut: asyncio.Future = asyncio.ensure_future(result)
        elif kind == _ASYNC:
            try:
                fut = loop.create_task(route.func(*params))
            except Exception as exc:
                self._reply(sender, msgid, error_for(exc, method), None, method)
                return
        else:
            fut = loop.run_in_executor(self._executor, route.func, *params)
        call = _Call(sender, msgid, method)
        call.future = fut
        call.timer = loop.call_later(self.timeout, self._expire, call)
        self._active += 1
        self._calls.add(call)
        if self._idle is not None:
            self._idle.clear()
        fut.add_done_callback(functools.partial(self._finished, call))

    def _release(self, call: _Call) -> None:
        self._calls.discard(call)
        self._active -= 1
        backlog = self._backlog
        while backlog and self._active < self.concurrency and not self._draining:
            self._dispatch(*backlog.popleft())
        if self._active == 0 and self._idle is not None:
            self._idle.set()

    def _expire(self, call: _Call) -> None:
        if call.answered:
            return
        call.answered = True
        ms = round(self.timeout * 1000)
        self._reply(call.sender, call.msgid, [
            f"{call.method} did not finish within the handler deadline of {ms} ms",
            {"code": "deadline_exceeded", "method": call.method, "deadline_ms": ms},
        ], None, call.method)
        if call.future is not None and not call.future.done():
            call.future.cancel()  # a thread cannot be stopped; its result is dropped
        self._release(call)

    def _finished(self, call: _Call, fut: asyncio.Future) -> None:
        if call.timer is not None:
            call.timer.cancel()
        if fut.cancelled():
            exc: Optional[BaseException] = asyncio.CancelledError()
        else:
            exc = fut.exception()
        if call.answered:
            return
        call.answered = True
        if exc is None:
            self._reply(call.sender, call.msgid, None, fut.result(), call.method)
        elif isinstance(exc, asyncio.CancelledError):
            self._reply(call.sender, call.msgid, [
                f"{call.method} was cancelled", {"code": "unavailable", "method": call.method}
            ], None, call.method)
        else:
            self._reply(call.sender, call.msgid, error_for(exc, call.method), None, call.method)
        self._release(call)

    def _reply(
        self, sender: bytes, msgid: Optional[int], error: Optional[list], result: Any, method: str
    ) -> None:
        if msgid is None:  # a notification: never answered
            if error is not None:
                log.warning("plexus service %s: notification %s failed: %s",
                            self.name, method, error[0])
            return
        chan = self._chan
        if chan is None:
            return
        try:
            payload = _dumps([1, msgid, error, result])
        except Exception as exc:
            if error is not None:
                error = [str(error[0]), {"code": str(error[1].get("code", "internal")),
                                         "method": method}]
            else:
                error = [f"cannot encode the result of {method}: {exc}",
                         {"code": "internal", "method": method}]
            payload = _dumps([1, msgid, error, None])
        chan.send((sender, payload))
