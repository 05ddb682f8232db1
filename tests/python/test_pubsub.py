"""Publish/subscribe with the Python package: plexus.Client.publish, plexus.Subscriber,
plexus.DatagramSender, against the real plexus router and its C++ CLI.

- unit tests (no processes): UDP addresses, the datagram size limit, the subscriber's
  message checks and bounded queues
- Python publish -> router -> `plexus subscribe` (C++)
- `plexus publish` (C++) -> router -> plexus.Subscriber
- seed-style raw PUB -> router --zmq-publishers -> plexus.Subscriber, a raw seed-style
  SUB and `plexus subscribe`
- prefix filtering, handlers, unsubscribe; a slow Python subscriber drops and counts
- DatagramSender -> router --udp (unicast and multicast on loopback) -> subscribers

PUB/SUB connections and subscriptions come up asynchronously, so a Python subscriber is
"ready" once a marker publication has gone all the way round (wait_subscribed: publish
a fresh topic until it arrives, with a deadline). The same marker is the barrier for
negative checks: publications on one connection reach a subscriber in order, so when a
marker published after them has arrived, anything they would have delivered has too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import cbor2
import pytest
import zmq

import plexus
from plexus import pubsub
from conftest import PLEXUS, START_TIMEOUT, Proc, run
from support.aio import arun, unique_name, wait_subscribed


def drain(sub: plexus.Subscriber) -> list:
    """What the ``async for`` queue holds now, without waiting."""
    out = []
    while sub.queued:
        out.append(sub._inbox.items.popleft())
    return out


def cli_lines(p: Proc, count: int, timeout: float = START_TIMEOUT) -> list:
    p.wait_for("stdout", "topic", timeout, count=count)
    return [json.loads(ln) for ln in p.lines["stdout"]]


# -- unit tests ---------------------------------------------------------------------------


def test_udp_address_parsing():
    parse = pubsub.parse_udp_address
    assert parse("udp://127.0.0.1:9000") == ("127.0.0.1", 9000, None, 1)
    assert parse("udp://[::1]:9") == ("::1", 9, None, 1)
    assert parse("udp://239.1.2.3:9000?interface=127.0.0.1&ttl=0") == ("239.1.2.3", 9000,
                                                                       "127.0.0.1", 0)
    assert parse("udp://localhost:1")[0] == "localhost"
    assert parse("udp://*:9") == ("*", 9, None, 1)
    for bad, why in [("tcp://127.0.0.1:9", "udp://"), ("udp://127.0.0.1", "no port"),
                     ("udp://127.0.0.1:0", "1 to 65535"), ("udp://127.0.0.1:x", "not a number"),
                     ("udp://:9", "no host"), ("udp://[::1:9", "[addr]:port"),
                     ("udp://1.2.3.4:9?ttl=300", "ttl"), ("udp://1.2.3.4:9?interface=eth0", "IPv4"),
                     ("udp://1.2.3.4:9?colour=red", "unknown option")]:
        with pytest.raises(plexus.InvalidArgument) as info:
            parse(bad)
        assert why in info.value.message and bad in info.value.message
        assert isinstance(info.value, ValueError)
    with pytest.raises(plexus.InvalidArgument):
        plexus.DatagramSender("udp://no-such-host.invalid:9")


def _payload_of_size(size: int) -> tuple[str, tuple]:
    """A (topic, args) whose notification encodes to exactly ``size`` bytes."""
    topic = "big"
    k = size
    while True:
        n = len(cbor2.dumps([2, topic, [b"x" * k]]))
        if n == size:
            return topic, (b"x" * k,)
        k -= n - size


def test_datagram_sender_refuses_oversize_and_never_truncates():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    port = rx.getsockname()[1]
    try:
        with plexus.DatagramSender(f"udp://127.0.0.1:{port}") as tx:
            topic, args = _payload_of_size(plexus.MAX_DATAGRAM_BYTES)
            assert tx.send(topic, *args) == 65507                    # the limit itself: sent
            got = rx.recv(1 << 17)
            assert len(got) == 65507 and cbor2.loads(got) == [2, topic, list(args)]

            topic, args = _payload_of_size(65508)
            with pytest.raises(plexus.ResourceExhausted) as info:  # one byte over: refused
                tx.send(topic, *args)
            assert "at most 65,507 bytes" in info.value.message and "65,508" in info.value.message
            assert info.value.context == {"code": "resource_exhausted", "size": 65508,
                                          "limit": 65507}
            with pytest.raises(plexus.ResourceExhausted):
                tx.send("huge", b"y" * 1_000_000)
            with pytest.raises(plexus.ResourceExhausted):
                tx.send_encoded(b"\0" * 65508)
            assert tx.sent == 1

            tx.send("after", 1)                  # the next datagram on the wire is this one
            assert cbor2.loads(rx.recv(1 << 17)) == [2, "after", [1]]

            with plexus.DatagramSender(f"udp://*:{port}") as tx2:       # "*": this host
                tx2.send("wild")
            assert cbor2.loads(rx.recv(1 << 17)) == [2, "wild", []]

            with pytest.raises(plexus.InvalidArgument):
                tx.send("x", object())
            with pytest.raises(plexus.InvalidArgument):
                tx.send(b"bytes-topic")  # type: ignore[arg-type]
        with pytest.raises(plexus.Unavailable):
            tx.send("closed")
    finally:
        rx.close()


def test_subscriber_checks_messages_and_bounds_its_queue():
    async def main():
        # Never connects anywhere that answers: messages are fed to the reader directly.
        sub = plexus.Subscriber("ipc:///nonexistent/plexus-test-subs.sock", queue_size=3)
        seen = []
        sub.subscribe("a")
        sub.subscribe("h", lambda topic, *args: seen.append((topic, args)))
        with pytest.raises(TypeError):
            sub.subscribe(b"bytes")  # type: ignore[arg-type]
        async with sub:
            note = lambda topic, *args: [topic.encode(), cbor2.dumps([2, topic, list(args)])]
            sub._on_message([b"a", cbor2.dumps([0, 1, "a", []])])        # a request
            sub._on_message([b"a", b"\xff"])                             # not CBOR
            sub._on_message([b"a", cbor2.dumps([2, "a", []]), b"x"])     # three frames
            sub._on_message([b"a", cbor2.dumps([2, "a", "not-a-list"])])
            assert sub.malformed == 4 and sub.received == 0
            for i in range(5):
                sub._on_message(note(f"a{i}", i))
            sub._on_message(note("h1", 1, "two"))
            sub._on_message(note("zzz"))   # subscribed to nothing matching: ignored
            assert sub.received == 7
            assert (sub.queued, sub.dropped) == (3, 2)             # bounded: newest dropped
            assert seen == [("h1", (1, "two"))]
            assert await sub.receive(1) == ("a0", [0])
            assert [await sub.receive(1), await sub.receive(1)] == [("a1", [1]), ("a2", [2])]
            with pytest.raises(plexus.DeadlineExceeded):
                await sub.receive(0.01)
            sub._on_message(note("a5", 5))
            assert sub.queued == 1
            await sub.close()
            assert [x async for x in sub] == [("a5", [5])]  # queued ones, then the end
            with pytest.raises(plexus.Unavailable):
                await sub.receive(1)
            with pytest.raises(plexus.Unavailable):
                sub.subscribe("again")

    arun(main())


def test_client_publish_needs_a_connection_and_a_text_topic():
    async def main():
        c = plexus.Client("ipc:///nonexistent/plexus-test.sock")
        with pytest.raises(plexus.Unavailable):
            await c.publish("t", 1)
        async with c:
            with pytest.raises(plexus.InvalidArgument):
                await c.publish(b"t")  # type: ignore[arg-type]
            with pytest.raises(plexus.InvalidArgument):
                await c.publish("t", object())

    arun(main())


# -- through the router -------------------------------------------------------------------


def test_python_publish_reaches_cli_subscriber(pubsub_router):
    r = pubsub_router
    before = r.stats()
    cli = r.cli_subscriber("sensor.", count=2)  # subscribed at the router when this returns

    async def main():
        async with plexus.Client(r.frontend) as c:
            await c.publish("sensor.temp", 21.5, "hall")
            await c.publish("other.temp", 1)               # no subscriber
            await c.publish("sensor.hum", {"k": [1, None, True]})
            await c.ping()  # everything sent before has reached the router

    try:
        arun(main())
        assert cli_lines(cli, 2) == [
            {"topic": "sensor.temp", "params": [21.5, "hall"]},
            {"topic": "sensor.hum", "params": [{"k": [1, None, True]}]},
        ]
        assert cli.popen.wait(timeout=10) == 0
    finally:
        cli.kill()
    after = r.stats()
    assert after["published"] - before["published"] == 3
    assert after["delivered"] - before["delivered"] >= 2


def test_cli_publish_reaches_python_subscriber(pubsub_router):
    r = pubsub_router
    topic = unique_name("cli.")

    async def main():
        async with plexus.Client(r.frontend) as c, plexus.Subscriber(r.subscribers) as sub:
            sub.subscribe("cli.")
            await sub.wait_connected(START_TIMEOUT)
            assert sub.connections == 1
            await wait_subscribed(sub, c)
            p = await asyncio.to_thread(
                run, [PLEXUS, "publish", topic, "1", "two", '{"k":[1,2]}', "--router", r.native],
                timeout=20)
            assert p.returncode == 0, p.stderr
            assert await sub.receive(10) == (topic, [1, "two", {"k": [1, 2]}])

    arun(main())


def test_seed_pub_reaches_python_cli_and_seed_sub(pubsub_router):
    """A seed-style PUB client (raw pyzmq) -> --zmq-publishers; subscribers of every kind."""
    r = pubsub_router
    cli = r.cli_subscriber("seed.", count=1)
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(r.publishers)
    seed_sub = ctx.socket(zmq.SUB)  # a seed-style SUB service on --zmq-subscribers
    seed_sub.setsockopt(zmq.LINGER, 0)
    seed_sub.setsockopt(zmq.SUBSCRIBE, b"seed.")
    seed_sub.connect(r.subscribers)

    async def main():
        async with plexus.Subscriber(r.subscribers) as sub:
            sub.subscribe("seed.")
            got_raw = None
            got_py = None
            deadline = time.monotonic() + START_TIMEOUT
            i = 0
            # PUB drops until the router's subscription reaches it: send until all three
            # subscribers have one.
            while got_py is None or got_raw is None or not cli.lines["stdout"]:
                assert time.monotonic() < deadline, (got_py, got_raw, cli.output())
                i += 1
                pub.send_multipart([b"seed.temp", cbor2.dumps([2, "seed.temp", [i, "c"]])])
                try:
                    got = await sub.receive(0.05)
                    got_py = got_py or got
                except plexus.DeadlineExceeded:
                    pass
                while got_raw is None and seed_sub.poll(0):
                    got_raw = seed_sub.recv_multipart()
            assert got_py[0] == "seed.temp" and got_py[1][1] == "c"
            assert got_raw[0] == b"seed.temp"
            assert cbor2.loads(got_raw[1])[:2] == [2, "seed.temp"]

    try:
        arun(main())
        [line] = cli_lines(cli, 1)
        assert line["topic"] == "seed.temp" and line["params"][1] == "c"
        assert cli.popen.wait(timeout=10) == 0
    finally:
        cli.kill()
        pub.close()
        seed_sub.close()


def test_prefix_filtering_handlers_and_unsubscribe(pubsub_router):
    r = pubsub_router

    async def main():
        sync_got, async_got = [], []

        def on_ab(topic, *args):
            sync_got.append((topic, args))

        async def on_z(topic, n):
            await asyncio.sleep(0)
            async_got.append((topic, n))

        def broken(topic, *args):
            raise RuntimeError("handler failure")

        async with plexus.Client(r.frontend) as c, plexus.Subscriber(r.subscribers) as sub:
            sub.subscribe("pf.a.b", on_ab)
            sub.subscribe("pf.a.")           # the queue...
            sub.subscribe("pf.a.b")          # ...twice for pf.a.b*: still delivered once
            sub.subscribe("pf.z", on_z)
            sub.subscribe("pf.z", broken)
            await wait_subscribed(sub, c)
            assert sub.prefixes == ["pf.a.", "pf.a.b", "pf.z"]
            for t in ["pf.a.b.c", "pf.a.x", "pf.ab", "pf.b", "PF.a.b", "pf.z1", "pf.z2", "pf.a"]:
                await c.publish(t, t)
            await wait_subscribed(sub, c)                           # barrier
            assert drain(sub) == [("pf.a.b.c", ["pf.a.b.c"]), ("pf.a.x", ["pf.a.x"])]
            assert sync_got == [("pf.a.b.c", ("pf.a.b.c",))]
            deadline = time.monotonic() + 5
            while len(async_got) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert async_got == [("pf.z1", "pf.z1"), ("pf.z2", "pf.z2")]   # in order
            assert sub.errors == 2                                   # broken, twice
            # a handler with the wrong arity is an error too, and later ones still arrive
            await c.publish("pf.z3", 1, 2)
            await c.publish("pf.z4", 4)
            await wait_subscribed(sub, c)
            while len(async_got) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert async_got[2:] == [("pf.z4", 4)] and sub.errors == 5

            sub.unsubscribe("pf.a.")        # the pf.a.b queue subscription remains
            sub.unsubscribe("pf.z", broken)
            assert sub.prefixes == ["pf.a.b", "pf.z"]
            await c.publish("pf.a.x2", 0)
            await c.publish("pf.a.b2", 0)
            await wait_subscribed(sub, c)
            assert drain(sub) == [("pf.a.b2", [0])]
            assert sync_got[-1] == ("pf.a.b2", (0,))
            assert sub.dropped == 0

    arun(main())


def test_slow_python_subscriber_drops_and_counts(pubsub_router):
    """Bounded local queues: a subscriber that does not read keeps queue_size, counts the rest."""
    r = pubsub_router

    async def main():
        gate = asyncio.Event()
        handled = []

        async def slow(topic, i):
            await gate.wait()
            handled.append(i)

        async with plexus.Client(r.frontend) as c, \
                plexus.Subscriber(r.subscribers, queue_size=50) as sub:
            sub.subscribe("slow.q.")
            sub.subscribe("slow.h.", slow)
            await wait_subscribed(sub, c)
            base = sub.received
            for i in range(300):
                await c.publish(f"slow.q.{i}", i)
                await c.publish(f"slow.h.{i}", i)
            await wait_subscribed(sub, c)                           # barrier
            assert sub.received - base > 600                        # all, and the marker
            assert sub.queued == 50
            assert [x async for x in _take(sub, 50)] == [(f"slow.q.{i}", [i]) for i in range(50)]
            # the async handler holds one publication in hand and 50 queued
            assert 250 + 249 <= sub.dropped <= 250 + 250
            gate.set()
            deadline = time.monotonic() + 5
            # every publication was read (50), handled (50 or 51) or dropped; in order,
            # the 50 oldest first (the one in hand may have made room for a later one)
            while 50 + len(handled) + sub.dropped < 600 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert 50 + len(handled) + sub.dropped == 600
            assert handled[:50] == list(range(50)) and handled == sorted(set(handled))
        stats = r.stats()
        assert stats["dropped_by_zmq_subscribers"] == 0              # no loss on the way

    arun(main())


async def _take(sub: plexus.Subscriber, n: int):
    async for item in sub:
        yield item
        n -= 1
        if n == 0:
            return


def test_datagram_sender_through_router(pubsub_router):
    r = pubsub_router
    cli = r.cli_subscriber("udp.", count=1)

    async def main():
        async with plexus.Client(r.frontend) as c, plexus.Subscriber(r.subscribers) as sub:
            sub.subscribe("udp.")
            await wait_subscribed(sub, c)
            with plexus.DatagramSender(r.udp) as tx:
                got = None
                deadline = time.monotonic() + START_TIMEOUT
                while got is None:  # best effort: resend until one arrives
                    assert time.monotonic() < deadline, cli.output()
                    tx.send("udp.temp", 21.5, "hall")
                    try:
                        got = await sub.receive(0.1)
                    except plexus.DeadlineExceeded:
                        pass
                assert got == ("udp.temp", [21.5, "hall"])
                before = r.stats()
                with pytest.raises(plexus.ResourceExhausted):
                    tx.send("udp.big", "x" * 70_000)
                tx.send("udp.marker")
                while True:
                    topic, _ = await sub.receive(5)
                    assert topic != "udp.big"
                    if topic == "udp.marker":
                        break
                after = r.stats()
                assert after["malformed"] == before["malformed"]    # nothing truncated arrived

    try:
        arun(main())
        assert cli_lines(cli, 1)[0] == {"topic": "udp.temp", "params": [21.5, "hall"]}
        assert cli.popen.wait(timeout=10) == 0
    finally:
        cli.kill()


@pytest.mark.zmq_router
def test_multicast_datagram_on_loopback(pubsub_router, tmp_path):
    """A router joined to a multicast group on the loopback interface."""
    group = "239.255.71.24"
    proc = Proc([PLEXUS, "router", "--zmq-subscribers", f"ipc://{tmp_path}/subs.sock",
                 "--udp", f"udp://{group}:0?interface=127.0.0.1"], name="multicast router")
    try:
        lines = proc.wait_for("stderr", "plexus router listening on", START_TIMEOUT, count=2)
        [udp] = [ln.split()[-1] for ln in lines if "udp://" in ln]
        port = udp.rsplit(":", 1)[1].split("?")[0]

        async def main():
            async with plexus.Subscriber(f"ipc://{tmp_path}/subs.sock") as sub:
                sub.subscribe("mc.")
                with plexus.DatagramSender(
                        f"udp://{group}:{port}?interface=127.0.0.1&ttl=0") as tx:
                    deadline = time.monotonic() + START_TIMEOUT
                    while True:  # until the SUB connection and the datagrams are through
                        assert time.monotonic() < deadline, proc.output()
                        tx.send("mc.x", 1)
                        try:
                            return await sub.receive(0.1)
                        except plexus.DeadlineExceeded:
                            pass

        assert arun(main()) == ("mc.x", [1])
    finally:
        proc.kill()
