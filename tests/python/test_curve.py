"""CURVE on the router's ZeroMQ tcp endpoints (docs/security.md, "TCP authentication").

A real ``plexus router`` started with ``PLEXUS_SECRET`` and a zmq-frontend on
tcp://127.0.0.1:*: a pyzmq DEALER with the keys ``plexus.curve_keys`` derives from the
secret is answered; one with other keys, or none, is not. Also: a router asked to
bind ZeroMQ or native tcp beyond loopback without a secret refuses to start.
"""

from __future__ import annotations

import os
import time

import cbor2
import pytest
import zmq

import plexus
from conftest import PLEXUS
from support.procs import Proc, run

SECRET = "a secret shared by the router and its pyzmq peers"


@pytest.fixture
def curve_router(tmp_path):
    env = dict(os.environ, PLEXUS_SECRET=SECRET)
    env.pop("PLEXUS_SECRET_FILE", None)
    p = Proc([PLEXUS, "router", "--listen", f"ipc://{tmp_path}/native.sock",
              "--zmq-frontend", "tcp://127.0.0.1:*"], name="router", env=env)
    try:
        lines = p.wait_for("stderr", "plexus router listening on", 10.0, count=2)
        yield lines[1].rsplit(" ", 1)[1]
    finally:
        p.kill()


def ping(address: str, options: dict, timeout_ms: int) -> object:
    """Sends plexus.ping through the frontend; the result, or None without an answer."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    try:
        s.setsockopt(zmq.LINGER, 0)
        for opt, value in options.items():
            s.setsockopt(opt, value)
        s.connect(address)
        s.send_multipart([b"plexus", plexus.wire.encode_request(1, "ping", [])])
        if not s.poll(timeout_ms, zmq.POLLIN):
            return None
        frames = s.recv_multipart()
        return cbor2.loads(frames[-1])[3]
    finally:
        s.close(0)


def test_a_client_with_the_derived_keys_is_answered(curve_router) -> None:
    assert ping(curve_router, plexus.curve_client_options(SECRET), 5000) == "pong"


def test_a_client_with_other_keys_or_none_gets_no_answer(curve_router) -> None:
    public, secret = zmq.curve_keypair()
    other = {zmq.CURVE_SERVERKEY: plexus.curve_keys(SECRET)["server_public"],
             zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}
    assert ping(curve_router, other, 700) is None
    assert ping(curve_router, plexus.curve_client_options(SECRET + " but not quite"), 700) is None
    assert ping(curve_router, {}, 700) is None
    # ... and the router still serves the right key afterwards
    assert ping(curve_router, plexus.curve_client_options(SECRET), 5000) == "pong"


def test_the_client_helper_takes_the_secret_from_the_environment(monkeypatch) -> None:
    from plexus._channel import dealer_options
    monkeypatch.setenv("PLEXUS_SECRET", SECRET)
    opts = dealer_options(None, "tcp://127.0.0.1:5560")
    assert opts[zmq.CURVE_SERVERKEY] == plexus.curve_keys(SECRET)["server_public"]
    assert zmq.CURVE_SERVERKEY not in dealer_options(None, "ipc:///tmp/x")
    monkeypatch.delenv("PLEXUS_SECRET")
    assert zmq.CURVE_SERVERKEY not in dealer_options(None, "tcp://127.0.0.1:5560")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        plexus.curve_keys("short")


@pytest.mark.parametrize("flag,address", [("--zmq-frontend", "tcp://0.0.0.0:*"),
                                          ("--listen", "tcp://0.0.0.0:0")])
def test_beyond_loopback_without_a_secret_the_router_does_not_start(tmp_path, flag,
                                                                    address) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXUS_SECRET")}
    args = [PLEXUS, "router", "--listen", f"ipc://{tmp_path}/n.sock", flag, address]
    r = run(args, timeout=10, env=env)
    assert r.returncode != 0
    assert "without authentication" in r.stderr and "PLEXUS_SECRET" in r.stderr, r.stderr
