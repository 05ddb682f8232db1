"""Seed-001 conformance, both directions, through the real plexus router.

1. seed Python client (tests/python/conformance/seed_peer.py, independent of the plexus
   package) -> plexus router ZeroMQ frontend -> C++ calc (native).
2. C++ client (`plexus call`, native) -> plexus router -> seed Python service on the
   ZeroMQ backend.
3. a ZeroMQ-connected Python service killed mid-call: its callers get `unavailable`
   within well under a second.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest

from conformance.seed_peer import RemoteCallError, SeedClient
from conftest import service_process, start_seed_service
from support.aio import arun
from support.values import ECHO_VALUES, JSON_VALUES, same


# -- 1. seed client -> plexus router -> C++ calc ------------------------------------------


def test_seed_client_add(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            assert await c.issue_call("calc", "add", 1, 2) == 3
            assert await c.issue_call("calc", "add", 1.5, 2) == 3.5
            assert await c.issue_call("calc", "add", -(2**62), -(2**62)) == -(2**63)

    arun(main())


def test_seed_client_sees_the_name_it_addressed_as_sender_and_can_send_to_it(calc):
    # A seed router hands a client [sender, payload] with the identity the client
    # addressed; seed programs reply to / call again whatever sender they received.
    async def main():
        async with SeedClient(calc.frontend) as c:
            assert await c.issue_call("calc", "add", 1, 2) == 3
            sender, _ = c.received[-1]
            assert sender == b"calc"
            assert await c.issue_call(sender.decode(), "add", 3, 4) == 7
            assert c.received[-1][0] == b"calc"
            assert await c.issue_call("plexus", "ping") == "pong"
            assert c.received[-1][0] == b"plexus"
            with pytest.raises(RemoteCallError):
                await c.issue_call("calc", "div", 1, 0)
            assert c.received[-1][0] == b"calc"
            assert not c.unexpected

    arun(main())


def test_seed_client_router_own_service(calc):
    async def main():
        async with SeedClient(calc.frontend, identity=b"an-explicit-client-id") as c:
            assert await c.issue_call("plexus", "ping") == "pong"
            services = await c.issue_call("plexus", "services")
            assert "calc" in [s["name"] for s in services]

    arun(main())


@pytest.mark.parametrize("name", list(ECHO_VALUES))
def test_seed_client_echo_every_cbor_type(calc, name):
    value = ECHO_VALUES[name]

    async def main():
        async with SeedClient(calc.frontend) as c:
            got = await c.issue_call("calc", "echo", value)
            assert same(got, value), (name, repr(got)[:200])

    arun(main())


def test_seed_client_echo_many_in_flight(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            got = await asyncio.gather(*[c.issue_call("calc", "echo", [i, str(i)])
                                         for i in range(200)])
            assert got == [[i, str(i)] for i in range(200)]

    arun(main())


# calc's errors as a seed client sees them: method, arguments, context entries the error
# carries, its exact message (or None) and a text the message mentions (or None).
CALC_ERRORS = {
    "div_error_has_message_and_code":
        ("div", (1, 0), {"code": "invalid_argument"}, "division by zero", None),
    "unknown_method_is_not_found":
        ("nosuch", (1,), {"code": "not_found", "method": "nosuch"}, None, "nosuch"),
    "wrong_arity_is_invalid_argument": ("add", (1,), {"code": "invalid_argument"}, None, None),
}


@pytest.mark.parametrize("case", list(CALC_ERRORS))
def test_seed_client_calc_error(calc, case):
    method, args, context, message, mentions = CALC_ERRORS[case]

    async def main():
        async with SeedClient(calc.frontend) as c:
            with pytest.raises(RemoteCallError) as info:
                await c.issue_call("calc", method, *args)
            assert {k: info.value.context.get(k) for k in context} == context
            if message is not None:
                assert info.value.message == message
            if mentions is not None:
                assert mentions in info.value.message
            assert await c.issue_call("calc", "div", 1, 4) == 0.25  # the client still works

    arun(main())


def test_seed_client_unknown_service_is_unavailable_fast(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            await c.issue_call("calc", "add", 0, 0)  # connected
            t0 = time.monotonic()
            with pytest.raises(RemoteCallError) as info:
                await c.issue_call("nosuch-service", "x", timeout=5)
            elapsed = time.monotonic() - t0
            assert info.value.context["code"] == "unavailable"
            assert info.value.context["service"] == "nosuch-service"
            assert info.value.message == "no route to nosuch-service"
            assert elapsed < 1.0, elapsed  # the deadline is 5 s

    arun(main())


def test_seed_client_notification_gets_no_response(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            await c.issue_call("calc", "echo", "warm-up")
            before = len(c.received)
            # A notification to a real method, one to an unknown method and one to an
            # unknown service: none is ever answered, not even with an error.
            await c.issue_call("calc", "echo", "n1", notification=True)
            await c.issue_call("calc", "nosuch", notification=True)
            await c.issue_call("nosuch-service", "x", notification=True)
            # The next call is answered correctly, and it is the only message that came.
            assert await c.issue_call("calc", "echo", "after") == "after"
            assert await c.issue_call("calc", "add", 2, 3) == 5
            assert len(c.received) == before + 2, c.received[before:]
            assert c.unexpected == []

    arun(main())


def test_seed_client_deadline(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await c.issue_call("calc", "nap", 2, timeout=0.2)
            elapsed = time.monotonic() - t0
            assert 0.19 <= elapsed < 1.5, elapsed  # not the 2 s nap
            # the client is still usable
            assert await c.issue_call("calc", "add", 1, 1) == 2

    arun(main())


def test_seed_client_blocking_and_coroutine_handlers(calc):
    async def main():
        async with SeedClient(calc.frontend) as c:
            got = await asyncio.gather(c.issue_call("calc", "sleep", 0.05),
                                       c.issue_call("calc", "nap", 0.05),
                                       c.issue_call("calc", "pid"))
            assert got[:2] == [0.05, 0.05]
            assert got[2] == calc.calc.pid

    arun(main())


# -- 2. C++ client (plexus call) -> plexus router -> seed Python service ---------------------


@pytest.mark.parametrize("name", list(JSON_VALUES))
def test_cli_echo_through_seed_service(seed_service, name):
    r, svc, _ = seed_service
    value = JSON_VALUES[name]
    arg = json.dumps(value, ensure_ascii=False)
    for method in ("echo", "echo_async"):
        res = r.call(svc, method, arg)
        assert res.returncode == 0, (res.stdout, res.stderr)
        got = json.loads(res.stdout)
        if isinstance(value, float) and not isinstance(got, float):
            pytest.fail(f"float {value!r} came back as {got!r}")
        assert same(got, value) or (isinstance(value, float) and math.isclose(got, value)), \
            (value, res.stdout)


def test_cli_add_and_bytes_from_seed_service(seed_service):
    r, svc, _ = seed_service
    res = r.call(svc, "add", "2", "40")
    assert (res.returncode, res.stdout.strip()) == (0, "42"), res.stderr
    res = r.call(svc, "add", '"ab"', '"cd"')
    assert (res.returncode, json.loads(res.stdout)) == (0, "abcd"), res.stderr
    res = r.call(svc, "with-dash")
    assert (res.returncode, json.loads(res.stdout)) == (0, "dash"), res.stderr
    # bytes reach the C++ client as bytes; the CLI prints them in nlohmann's JSON form
    res = r.call(svc, "blob", "3")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out == {"bytes": [0, 1, 2], "subtype": None}, res.stdout


def test_cli_error_from_seed_service_carries_message_and_code(seed_service):
    r, svc, _ = seed_service
    res = r.call(svc, "refuse", "-1")
    assert res.returncode == 1, (res.stdout, res.stderr)
    err = json.loads(res.stderr)
    assert err["error"] == "refused -1"
    assert err["code"] == "invalid_argument"
    assert err["context"]["value"] == -1
    # and the human form
    res = r.call(svc, "refuse", "7", json_errors=False)
    assert res.returncode == 1
    assert "refused 7 (invalid_argument)" in res.stderr


# 001 wraps every handler exception as 'method produced an error' with an empty
# context, and sends no code at all: plexus reads the missing code as internal.
# Method, argument, the error's text, context entries it carries.
SEED_CLI_ERRORS = {
    "seed_handler_exception_is_internal": ("fail", '"boom"', "method produced an error", {}),
    "unknown_method_on_seed_service":
        ("nosuch", "1", "no such method exists", {"method": "nosuch"}),
}


@pytest.mark.parametrize("case", list(SEED_CLI_ERRORS))
def test_cli_seed_error_is_internal(seed_service, case):
    method, arg, text, context = SEED_CLI_ERRORS[case]
    r, svc, _ = seed_service
    res = r.call(svc, method, arg)
    assert res.returncode == 1, (res.stdout, res.stderr)
    err = json.loads(res.stderr)
    assert err["error"] == text
    assert {k: err["context"].get(k) for k in context} == context
    assert err["code"] == "internal"


def test_cli_deadline_against_seed_service(seed_service):
    r, svc, _ = seed_service
    t0 = time.monotonic()
    res = r.call(svc, "sleep", "3", timeout=0.3)
    elapsed = time.monotonic() - t0
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert json.loads(res.stderr)["code"] == "deadline_exceeded"
    assert elapsed < 2.0, elapsed
    # the service is still fine afterwards
    res = r.call(svc, "echo", "1")
    assert (res.returncode, res.stdout.strip()) == (0, "1"), res.stderr


def test_seed_client_to_seed_service_through_plexus(seed_service):
    """ZeroMQ client -> plexus router -> ZeroMQ service (both seed peers)."""
    r, svc, _ = seed_service

    async def main():
        async with SeedClient(r.frontend) as c:
            assert await c.issue_call(svc, "echo", ECHO_VALUES["nested"]) == ECHO_VALUES["nested"]
            big = ECHO_VALUES["bytes_1mib"]
            assert await c.issue_call(svc, "echo", big) == big
            await c.issue_call(svc, "note", "n-1", notification=True)
            assert await c.issue_call(svc, "notes_seen") == ["n-1"]
            assert c.unexpected == []

    arun(main())


# -- 3. a ZeroMQ-connected service killed mid-call ------------------------------------------


def test_killed_seed_service_fails_zmq_caller_unavailable_fast(router):
    async def main(name, svc):
        async with SeedClient(router.frontend) as c:
            call = asyncio.ensure_future(c.issue_call(name, "nap", 30, timeout=10))
            await asyncio.to_thread(svc.wait_for, "stdout", "nap 30", 5)  # in its hands
            t0 = time.monotonic()
            svc.kill()
            with pytest.raises(RemoteCallError) as info:
                await call
            elapsed = time.monotonic() - t0
            assert info.value.context["code"] == "unavailable", info.value.context
            assert elapsed < 0.8, elapsed  # "well under a second" (10 s deadline)
            # later calls fail fast too: the route is gone
            t0 = time.monotonic()
            with pytest.raises(RemoteCallError) as info:
                await c.issue_call(name, "pid", timeout=5)
            assert info.value.context["code"] == "unavailable"
            assert time.monotonic() - t0 < 1.0  # not the 5 s deadline

    with service_process(start_seed_service, router, "doomed") as (name, svc):
        arun(main(name, svc))


def test_killed_seed_service_fails_native_caller_unavailable_fast(router):
    import subprocess
    from support.procs import Proc
    from conftest import PLEXUS

    caller = None
    with service_process(start_seed_service, router, "doomed") as (name, svc):
        try:
            caller = Proc([PLEXUS, "call", name, "nap", "30", "--router", router.native,
                           "--timeout", "10", "--json"], name="plexus call")
            svc.wait_for("stdout", "nap 30", 5)  # the request is in the service's hands
            t0 = time.monotonic()
            svc.kill()
            try:
                rc = caller.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pytest.fail(f"plexus call still waiting 5 s after the service died\n"
                            f"{caller.output()}")
            elapsed = time.monotonic() - t0
            caller.kill()
            assert rc == 3, caller.output()
            err = json.loads(caller.lines["stderr"][-1])
            assert err["code"] == "unavailable", err
            assert elapsed < 0.8, elapsed  # "well under a second"
        finally:
            if caller is not None:
                caller.kill()
