"""The plexus Python package (python/plexus): Client, Service, errors, wire helpers.

- unit tests (no processes)
- plexus.Client -> plexus router -> C++ calc
- `plexus call` (C++ client) -> plexus router -> plexus.Service in a subprocess
- plexus.Client <-> plexus.Service in one process, over the plexus router AND over the
  stand-in seed-001 Router (the package must work with both)
- cross-compatibility with the independent seed peers, and a killed service
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import plexus
from plexus import wire
from plexus.service import _Route
from conformance.seed_peer import RemoteCallError, SeedClient, SeedService, ConformanceHandler
from conftest import service_process, start_pkg_service
from support.aio import arun, unique_name
from support.values import ECHO_VALUES, JSON_VALUES, same


async def wait_routable(client: plexus.Client, service: str, timeout: float = 10.0) -> None:
    """Until a request reaches ``service`` (any answer but no-route / silence)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.call(service, "__probe__", timeout=0.2)
            return
        except (plexus.Unavailable, plexus.DeadlineExceeded):
            if time.monotonic() > deadline:
                raise
        except plexus.RemoteError:
            return


# -- unit tests ---------------------------------------------------------------------------


def test_error_classes_follow_codes():
    e = plexus.RemoteError("x", code="not_found", context={"method": "m"})
    assert type(e) is plexus.NotFound and isinstance(e, LookupError)
    assert (e.message, e.code, e.context) == ("x", "not_found", {"method": "m", "code": "not_found"})
    assert isinstance(plexus.DeadlineExceeded("late"), TimeoutError)
    assert isinstance(plexus.Unavailable("gone"), ConnectionError)
    assert isinstance(plexus.InvalidArgument("bad"), ValueError)
    assert plexus.RemoteError("x", code="bogus").code == "internal"
    assert plexus.RemoteError("x").code == "internal"
    assert str(plexus.Unavailable("no route")) == "no route (unavailable)"
    w = plexus.error_from_wire(["no route to x", {"code": "unavailable", "service": "x"}])
    assert type(w) is plexus.Unavailable and w.context["service"] == "x"
    assert type(plexus.error_from_wire(["m", {}])) is plexus.Internal
    assert type(plexus.error_from_wire(["m", {"code": "weird"}])) is plexus.Internal
    assert type(plexus.error_from_wire("garbage")) is plexus.Internal
    assert set(plexus.CODES) == {"invalid_argument", "not_found", "unavailable",
                                 "deadline_exceeded", "resource_exhausted", "unimplemented",
                                 "permission_denied", "internal"}


def test_permission_denied_is_a_code_and_a_permission_error():
    w = plexus.error_from_wire(["plexus.stop is allowed only to the user running the router",
                                {"code": "permission_denied", "service": "plexus",
                                 "method": "stop"}])
    assert type(w) is plexus.PermissionDenied
    assert isinstance(w, PermissionError) and isinstance(w, plexus.RemoteError)
    assert (w.code, w.context["method"]) == ("permission_denied", "stop")
    e = plexus.RemoteError("no", code="permission_denied")
    assert type(e) is plexus.PermissionDenied
    assert e.to_wire() == ["no", {"code": "permission_denied"}]
    assert str(plexus.PermissionDenied("no")) == "no (permission_denied)"


def test_wire_helpers_match_the_seed_format():
    assert wire.decode(wire.encode_request(7, "add", (1, 2))) == [0, 7, "add", [1, 2]]
    assert wire.decode(wire.encode_response(7, None, 3)) == [1, 7, None, 3]
    assert wire.decode(wire.encode_notification("n", [])) == [2, "n", []]
    assert wire.peek_request_id(wire.encode_request(2**32 - 1, "x", [])) == 2**32 - 1
    assert wire.peek_request_id(wire.encode_request(300, "x", [])) == 300
    assert wire.peek_request_id(b"\x84\x00\x05garbage") == 5
    assert wire.peek_request_id(wire.encode_response(1, None, 1)) is None


def test_msgids_are_unique_in_flight_and_wrap_at_uint32():
    async def main():
        c = plexus.Client("ipc:///nonexistent/plexus-test.sock")
        c._next_id = 2**32 - 2
        c._pending = {2**32 - 1: None, 1: None, 2: None}  # in flight
        assert c._new_id() == 2**32 - 2
        assert c._new_id() == 3  # skips 2**32-1 (in use), wraps, skips 1 and 2
        assert c._new_id() == 4

    arun(main())


def test_route_arity_and_signatures():
    def f(a, b=1, *, k=2):
        pass

    r = _Route("f", f, inline=True)
    assert (r.min_args, r.max_args, r.describe_arity()) == (1, 2, "1 to 2 arguments")
    assert r.signature == "(a, b=1, *, k=2)"
    r = _Route("g", lambda *xs: None, inline=False)
    assert (r.min_args, r.max_args, r.describe_arity()) == (0, None, "at least 0 arguments")

    async def h(x: int) -> int:
        return x

    r = _Route("h", h, inline=False)
    assert r.describe() == {"name": "h", "signature": "(x: int) -> int", "blocking": False}
    assert _Route("s", lambda: 1, inline=False).describe()["blocking"] is True
    with pytest.raises(ValueError):
        _Route("k", lambda *, k: None, inline=False)
    with pytest.raises(ValueError):
        _Route("h", h, inline=True)


def test_service_registration_forms():
    svc = plexus.Service("ipc:///nonexistent/plexus-test.sock", "forms")

    @svc.route
    def plain(x):
        return x

    @svc.route("other-name")
    def named():
        return 1

    @svc.route(inline=True)
    def fast():
        return 2

    @svc.route(name="kw-name")
    async def coro():
        return 3

    svc.route(lambda: 4, name="lam")
    assert [m["name"] for m in svc.methods] == ["fast", "kw-name", "lam", "other-name", "plain"]
    assert plain(5) == 5  # decorators return the function unchanged
    with pytest.raises(ValueError):
        plexus.Service("ipc:///x", "plexus")
    with pytest.raises(ValueError):
        plexus.Service("ipc:///x", "")
    with pytest.raises(ValueError):
        plexus.Service("ipc:///x", "n" * 256)


async def all_unavailable(*calls) -> None:
    """Every one of ``calls`` (awaited in order) fails with plexus.Unavailable."""
    for call in calls:
        with pytest.raises(plexus.Unavailable):
            await call


def test_client_not_connected_is_unavailable():
    c = plexus.Client("ipc:///nonexistent/plexus-test.sock")
    arun(all_unavailable(c.call("calc", "add", 1, 2)))


# -- plexus.Client -> plexus router -> C++ calc ---------------------------------------------


def test_client_calls_calc(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            assert await c.call("calc", "add", 1, 2) == 3
            assert await c.service("calc").add(2, 3) == 5
            assert await c.service("calc")["echo"]("x") == "x"
            assert await c.ping() == "pong"
            assert await c.call("calc", "pid") == calc.calc.pid
            assert await c.call("calc", "sleep", 0.01) == 0.01
            assert await c.call("calc", "nap", 0.01) == 0.01

    arun(main())


def test_client_remote_error_from_calc(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            with pytest.raises(plexus.InvalidArgument) as info:
                await c.call("calc", "div", 1, 0)
            e = info.value
            assert isinstance(e, plexus.RemoteError)
            assert e.message == "division by zero"
            assert e.code == "invalid_argument"
            assert e.context["dividend"] == 1.0
            with pytest.raises(plexus.NotFound) as info:
                await c.call("calc", "nosuch")
            assert info.value.context["method"] == "nosuch"
            assert "add" in info.value.context["methods"]
            with pytest.raises(plexus.InvalidArgument) as info:
                await c.call("calc", "add", 1)
            assert "signature" in info.value.context

    arun(main())


@pytest.mark.parametrize("name", list(ECHO_VALUES))
def test_client_echo_every_cbor_type(calc, name):
    value = ECHO_VALUES[name]

    async def main():
        async with plexus.Client(calc.frontend) as c:
            got = await c.call("calc", "echo", value)
            assert same(got, value), (name, repr(got)[:200])

    arun(main())


def test_client_unknown_service_is_unavailable_fast(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            await c.ping()
            t0 = time.monotonic()
            with pytest.raises(plexus.Unavailable) as info:
                await c.call("nosuch-service", "x")
            assert time.monotonic() - t0 < 1.0  # not the 5 s deadline
            assert info.value.message == "no route to nosuch-service"
            assert info.value.context["service"] == "nosuch-service"

    arun(main())


def test_client_deadline(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            t0 = time.monotonic()
            with pytest.raises(plexus.DeadlineExceeded) as info:
                await c.call("calc", "nap", 2, timeout=0.2)
            elapsed = time.monotonic() - t0
            assert 0.19 <= elapsed < 1.5, elapsed  # not the 2 s nap
            assert isinstance(info.value, TimeoutError)
            assert info.value.context["deadline_ms"] == 200
            assert c.in_flight == 0
            # the late answer of an expired call is dropped, never given to another call
            late = c.call_future("calc", "nap", 0.3, timeout=0.05)
            with pytest.raises(plexus.DeadlineExceeded):
                await late
            assert await c.call("calc", "nap", 0.5) == 0.5  # the late answer came first
            assert c.unexpected == 1

    arun(main())


def test_client_default_timeout(calc):
    async def main():
        async with plexus.Client(calc.frontend, timeout=0.15) as c:
            with pytest.raises(plexus.DeadlineExceeded):
                await c.call("calc", "nap", 1)

    arun(main())


def test_client_notification_then_call(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            await c.ping()
            received = c._chan.received
            await c.notify("calc", "echo", "n")
            await c.notify("calc", "nosuch")
            await c.notify("nosuch-service", "x")
            assert await c.call("calc", "add", 20, 22) == 42
            assert c._chan.received == received + 1  # only the call's answer came
            assert c.unexpected == 0 and c.malformed == 0

    arun(main())


def test_client_many_calls_in_flight(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            futs = [c.call_future("calc", "echo", [i, "x" * (i % 50)]) for i in range(2000)]
            assert c.in_flight == 2000
            got = await asyncio.gather(*futs)
            assert got == [[i, "x" * (i % 50)] for i in range(2000)]
            assert c.in_flight == 0

    arun(main())


def test_client_close_fails_calls_in_flight(calc):
    async def main():
        c = await plexus.Client(calc.frontend).connect()
        fut = c.call_future("calc", "nap", 5)
        await c.close()
        await all_unavailable(fut, c.call("calc", "add", 1, 2))

    arun(main())


def test_client_cancelled_call_frees_its_id(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            task = asyncio.ensure_future(c.call("calc", "nap", 5))
            await asyncio.sleep(0)  # let the request go out
            assert c.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert c.in_flight == 0

    arun(main())


def test_client_unencodable_argument_is_invalid_argument(calc):
    async def main():
        async with plexus.Client(calc.frontend) as c:
            with pytest.raises(plexus.InvalidArgument):
                await c.call("calc", "echo", object())
            assert c.in_flight == 0
            assert await c.call("calc", "echo", 1) == 1

    arun(main())


# -- plexus call (C++ client) -> plexus router -> plexus.Service subprocess ----------------


def test_cli_array_argument_is_one_argument(calc):
    # `plexus call` documents each argument as one JSON value; CLI11 must not split
    # an argument written as a JSON array into several arguments.
    from support.procs import run
    from conftest import PLEXUS

    res = run([PLEXUS, "call", "calc", "echo", '[1,"a,b"]', "--router", calc.native])
    assert (res.returncode, res.stdout.strip()) == (0, '[1,"a,b"]'), res.stderr


@pytest.mark.parametrize("name", ["int64_max", "int64_min", "uint64_max", "float_0_1",
                                  "text_non_ascii", "array_mixed", "map", "nested", "null",
                                  "true"])
def test_cli_calls_package_service_echo(pkg_service, name):
    r, svc, _ = pkg_service
    value = JSON_VALUES[name]
    for method in ("echo", "echo_async"):
        res = r.call(svc, method, json.dumps(value, ensure_ascii=False))
        assert res.returncode == 0, (res.stdout, res.stderr)
        assert same(json.loads(res.stdout), value), res.stdout


def test_cli_calls_package_service(pkg_service):
    r, svc, p = pkg_service
    res = r.call(svc, "add", "40", "2")
    assert (res.returncode, res.stdout.strip()) == (0, "42"), res.stderr
    res = r.call(svc, "greet", "ada")
    assert (res.returncode, json.loads(res.stdout)) == (0, "hello ada"), res.stderr
    res = r.call(svc, "greet", "ada", "hi")
    assert (res.returncode, json.loads(res.stdout)) == (0, "hi ada"), res.stderr
    res = r.call(svc, "pid")
    assert (res.returncode, json.loads(res.stdout)) == (0, p.pid), res.stderr
    res = r.call(svc, "blob", "2")
    assert json.loads(res.stdout) == {"bytes": [0, 1], "subtype": None}, res.stdout
    res = r.call(svc, "notes-seen")
    assert (res.returncode, json.loads(res.stdout)) == (0, []), res.stderr


def test_cli_package_service_errors(pkg_service):
    r, svc, _ = pkg_service
    # RemoteError keeps its code and context
    res = r.call(svc, "refuse", "-1")
    err = json.loads(res.stderr)
    assert res.returncode == 1
    assert (err["error"], err["code"]) == ("refused -1", "invalid_argument")
    assert err["context"]["value"] == -1 and err["context"]["method"] == "refuse"
    # any other exception is internal, naming the exception type and the method
    res = r.call(svc, "fail", '"boom"')
    err = json.loads(res.stderr)
    assert res.returncode == 1
    assert (err["error"], err["code"]) == ("boom", "internal")
    assert err["context"]["exception"] == "ValueError" and err["context"]["method"] == "fail"
    # unknown method
    res = r.call(svc, "nosuch")
    err = json.loads(res.stderr)
    assert res.returncode == 1 and err["code"] == "not_found"
    assert err["context"]["method"] == "nosuch" and "echo" in err["context"]["methods"]
    # wrong arity names the signature
    res = r.call(svc, "add", "1")
    err = json.loads(res.stderr)
    assert res.returncode == 1 and err["code"] == "invalid_argument"
    assert err["error"] == "add expects 2 arguments (a: Any, b: Any) -> Any, got 1"
    assert err["context"]["signature"] == "(a: Any, b: Any) -> Any"
    res = r.call(svc, "greet")
    assert "greet expects 1 to 2 arguments" in json.loads(res.stderr)["error"]


def test_cli_package_service_handler_deadline(pkg_service):
    # the fixture's service has a 2 s handler deadline; the caller waits up to 5 s
    r, svc, _ = pkg_service
    for method in ("nap", "sleep"):  # coroutine (cancelled) and thread (abandoned)
        t0 = time.monotonic()
        res = r.call(svc, method, "4", timeout=5)
        elapsed = time.monotonic() - t0
        assert res.returncode == 3, (res.stdout, res.stderr)
        err = json.loads(res.stderr)
        assert err["code"] == "deadline_exceeded"
        assert err["context"] == {"code": "deadline_exceeded", "method": method,
                                  "deadline_ms": 2000}
        assert 1.9 < elapsed < 4.0, elapsed


def test_cli_package_service_client_deadline(pkg_service):
    r, svc, _ = pkg_service
    t0 = time.monotonic()
    res = r.call(svc, "nap", "1.5", timeout=0.2)
    assert res.returncode == 3
    assert json.loads(res.stderr)["code"] == "deadline_exceeded"
    assert time.monotonic() - t0 < 1.2


def test_package_service_blocking_handlers_run_in_parallel(pkg_service):
    # Four blocking handlers meet at a barrier: they all return only if they run at
    # the same time (one after another, the first would wait in vain and fail).
    r, svc, _ = pkg_service
    import subprocess
    from conftest import PLEXUS

    procs = [subprocess.Popen([str(PLEXUS), "call", svc, "rendezvous", "parallel-4", "4",
                               "--timeout", "30", "--router", r.native],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert all(o[0].strip() == "true" for o in outs), outs


# -- plexus.Client <-> plexus.Service in one process, over either router ----------------


def _make_service(backend: str, name: str, **kw) -> plexus.Service:
    svc = plexus.Service(backend, name, **kw)
    seen: list = []
    svc.seen = seen  # type: ignore[attr-defined]

    @svc.route
    def blocking(x):
        time.sleep(0.01)
        return ("thread", x)

    @svc.route(inline=True)
    def inline(x):
        return ("inline", x)

    @svc.route
    async def coro(x):
        await asyncio.sleep(0.01)
        return ("async", x)

    @svc.route("dash-name", inline=True)
    def dash():
        return "dash"

    @svc.route(inline=True)
    def defaults(a, b=2, *rest):
        return [a, b, list(rest)]

    @svc.route(inline=True)
    def boom():
        raise KeyError("k")

    @svc.route
    async def refuse(v):
        raise plexus.RemoteError("nope", code="resource_exhausted", context={"v": v})

    @svc.route(inline=True)
    def record(v):
        seen.append(v)

    @svc.route
    async def nap(s):
        await asyncio.sleep(s)
        return s

    @svc.route(inline=True)
    def unencodable():
        return object()

    return svc


def test_package_client_and_service(any_router):
    r = any_router
    name = unique_name("pair")

    async def main():
        async with _make_service(r.backend, name, timeout=0.5) as svc, \
                plexus.Client(r.frontend) as c:
            await svc.wait_connected(5)
            assert svc.connections == 1
            await wait_routable(c, name)
            s = c.service(name)
            assert await s.blocking(1) == ["thread", 1]
            assert await s.inline(2) == ["inline", 2]
            assert await s.coro(3) == ["async", 3]
            assert await s["dash-name"]() == "dash"
            assert await s.defaults(1) == [1, 2, []]
            assert await s.defaults(1, 3, 4, 5) == [1, 3, [4, 5]]
            with pytest.raises(plexus.InvalidArgument) as info:
                await s.defaults()
            assert info.value.message == "defaults expects at least 1 argument (a, b=2, *rest), got 0"
            with pytest.raises(plexus.Internal) as info:
                await s.boom()
            assert info.value.context == {"code": "internal", "exception": "KeyError",
                                          "method": "boom"}
            with pytest.raises(plexus.ResourceExhausted) as info:
                await s.refuse(9)
            assert info.value.message == "nope"
            assert info.value.context == {"code": "resource_exhausted", "v": 9, "method": "refuse"}
            with pytest.raises(plexus.NotFound) as info:
                await s.missing()
            assert info.value.context["methods"][:2] == ["blocking", "boom"]
            with pytest.raises(plexus.Internal) as info:
                await s.unencodable()
            assert "cannot encode the result of unencodable" in info.value.message
            # handler deadline (0.5 s) answers before the client's (5 s)
            with pytest.raises(plexus.DeadlineExceeded) as info:
                await s.nap(3)
            assert info.value.context == {"code": "deadline_exceeded", "method": "nap",
                                          "deadline_ms": 500}
            # notifications run the handler and are never answered
            received = c._chan.received
            await c.notify(name, "record", "n1")
            await c.notify(name, "boom")
            await c.notify(name, "missing")
            assert await s.inline("after") == ["inline", "after"]
            assert svc.seen == ["n1"]
            assert c._chan.received == received + 1
            big = ECHO_VALUES["bytes_1mib"]
            assert await s.inline(big) == ["inline", big]
            got = await asyncio.gather(*[s.coro(i) for i in range(300)])
            assert got == [["async", i] for i in range(300)]
            assert svc.active == 0

    arun(main())


def test_package_service_concurrency_limit(any_router):
    r = any_router
    name = unique_name("limit")

    async def main():
        svc = plexus.Service(r.backend, name, concurrency=3)
        running = 0
        peak = 0

        @svc.route
        async def work(i):
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            return i

        async with svc, plexus.Client(r.frontend) as c:
            await wait_routable(c, name)
            got = await asyncio.gather(*[c.call(name, "work", i) for i in range(40)])
            assert got == list(range(40))
            assert peak == 3

    arun(main())


def test_package_service_stop_answers_calls_in_flight(any_router):
    r = any_router
    name = unique_name("stopping")

    async def main():
        svc = plexus.Service(r.backend, name)

        @svc.route
        async def hang():
            await asyncio.sleep(30)

        async with plexus.Client(r.frontend) as c:
            await svc.start()
            await wait_routable(c, name)
            fut = c.call_future(name, "hang")
            while svc.active == 0:
                await asyncio.sleep(0.005)
            await svc.stop(grace=0.05)
            await all_unavailable(fut)

    arun(main())


def test_serve_runs_until_cancelled(any_router):
    name = unique_name("serve")

    async def main():
        svc = plexus.Service(any_router.backend, name)
        svc.route(lambda: "up", name="up", inline=True)
        task = asyncio.ensure_future(svc.serve())
        async with plexus.Client(any_router.frontend) as c:
            await wait_routable(c, name)
            assert await c.call(name, "up") == "up"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    arun(main())


def test_seed_client_calls_package_service(any_router):
    r = any_router
    name = unique_name("pkg4seed")

    async def main():
        async with _make_service(r.backend, name) as svc, plexus.Client(r.frontend) as c:
            await wait_routable(c, name)
            async with SeedClient(r.frontend) as sc:
                assert await sc.issue_call(name, "inline", 5) == ["inline", 5]
                assert await sc.issue_call(name, "coro", ECHO_VALUES["nested"]) == \
                    ["async", ECHO_VALUES["nested"]]
                with pytest.raises(RemoteCallError) as info:
                    await sc.issue_call(name, "refuse", 1)
                assert info.value.context["code"] == "resource_exhausted"
                await sc.issue_call(name, "record", "seed", notification=True)
                assert await sc.issue_call(name, "inline", 0) == ["inline", 0]
                assert svc.seen == ["seed"] and sc.unexpected == []

    arun(main())


def test_package_client_calls_seed_service(any_router):
    r = any_router
    name = unique_name("seed4pkg")

    async def main():
        async with SeedService(r.backend, name, ConformanceHandler()), \
                plexus.Client(r.frontend) as c:
            await wait_routable(c, name)
            assert await c.call(name, "add", 1, 2) == 3
            assert await c.call(name, "echo", ECHO_VALUES["map"]) == ECHO_VALUES["map"]
            with pytest.raises(plexus.InvalidArgument) as info:
                await c.call(name, "refuse", 3)
            assert info.value.context["value"] == 3
            with pytest.raises(plexus.Internal) as info:  # 001: no code -> internal
                await c.call(name, "nosuch")
            assert info.value.message == "no such method exists"

    arun(main())


def test_unknown_service_through_seed_router_hits_the_deadline(seed_router):
    # The seed's Router drops what it cannot route (the plexus router answers
    # unavailable at once): the client's deadline still ends the call.
    async def main():
        async with plexus.Client(seed_router.frontend) as c:
            t0 = time.monotonic()
            with pytest.raises(plexus.DeadlineExceeded):
                await c.call("nosuch-service", "x", timeout=0.2)
            assert time.monotonic() - t0 < 1.0

    arun(main())


# -- a killed service ----------------------------------------------------------------------


def test_killed_package_service_fails_caller_unavailable_fast(router):
    async def main(name, svc):
        async with plexus.Client(router.frontend) as c:
            calls = [c.call_future(name, "nap", 30, timeout=10) for _ in range(3)]
            await asyncio.to_thread(svc.wait_for, "stdout", "nap 30", 5, 3)
            t0 = time.monotonic()
            svc.kill()
            await all_unavailable(*calls)
            elapsed = time.monotonic() - t0
            assert elapsed < 0.8, elapsed  # "well under a second" (10 s deadline)
            await all_unavailable(c.call(name, "pid"))

    with service_process(start_pkg_service, router, "doomedpkg") as (name, svc):
        arun(main(name, svc))


def test_service_and_client_survive_a_router_restart(tmp_path):
    """ZeroMQ reconnects by itself: after the router is killed and started again on
    the same addresses, the service's probe registers it again and calls work."""
    from conftest import PLEXUS, router_supports_zmq, START_TIMEOUT
    from support.procs import Proc

    problem = router_supports_zmq()
    if problem:
        pytest.fail(problem, pytrace=False)
    native, front, back = (f"ipc://{tmp_path}/{n}.sock" for n in ("native", "front", "back"))

    def start_router() -> Proc:
        p = Proc([PLEXUS, "router", "--listen", native, "--zmq-frontend", front,
                  "--zmq-backend", back], name="plexus router")
        p.wait_for("stderr", "plexus router listening on", START_TIMEOUT, count=3)
        return p

    router = start_router()
    try:
        async def main():
            nonlocal router
            svc = plexus.Service(back, "phoenix")
            svc.route(lambda x: x, name="echo", inline=True)
            async with svc, plexus.Client(front) as c:
                await wait_routable(c, "phoenix")
                assert await c.call("phoenix", "echo", 1) == 1
                await asyncio.to_thread(router.kill)
                with pytest.raises(plexus.DeadlineExceeded):
                    await c.call("phoenix", "echo", 2, timeout=0.2)  # nobody to answer
                router = await asyncio.to_thread(start_router)
                await wait_routable(c, "phoenix", timeout=10)
                assert await c.call("phoenix", "echo", 3) == 3
                assert svc.connections == 2  # reconnected (and announced itself again)

        arun(main())
    finally:
        router.kill()
