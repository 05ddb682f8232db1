"""Shared fixtures: a real plexus router (native + ZeroMQ endpoints), calc, services.

The router is ``$PLEXUS_BIN_DIR/plexus router --listen ipc://D/native.sock
--zmq-frontend ipc://D/front.sock --zmq-backend ipc://D/back.sock`` (default bin dir:
<repo>/build/bin), ready when it has printed "plexus router listening on" for all
three addresses; calc is ``$PLEXUS_BIN_DIR/calc --router ipc://D/native.sock``, ready at
"calc ready". Both are started once per session and killed by pid at the end. A test
that leaves the router (or calc) dead fails in its teardown with the process's output,
and the next test gets fresh ones.

Tests that need the plexus router's ZeroMQ endpoints get the ``zmq_router`` marker
automatically. If the binary lacks ``--zmq-frontend`` they FAIL (never skip).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import cbor2
import pytest
import zmq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for p in (str(REPO / "python"), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from support.procs import Proc, ProcError, run  # noqa: E402

BIN_DIR = Path(os.environ.get("PLEXUS_BIN_DIR", REPO / "build" / "bin"))
PLEXUS = BIN_DIR / "plexus"
CALC = BIN_DIR / "calc"
PYTHON = sys.executable or "/usr/bin/python3"
SEED_PEER = HERE / "conformance" / "seed_peer.py"
SEED_ROUTER = HERE / "conformance" / "seed_router.py"
PKG_SERVICE = HERE / "support" / "pkg_service.py"

START_TIMEOUT = 10.0

# fixtures whose tests need the real router's ZeroMQ endpoints
_ZMQ_ROUTER_FIXTURES = {"router", "calc", "pubsub_router"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "zmq_router: runs against the real plexus router's ZeroMQ endpoints "
        "(plexus router --zmq-frontend/--zmq-backend); fails if the binary lacks them",
    )
    config.addinivalue_line(
        "markers", "seed_router: runs against the stand-in seed-001 Router (tests/python/conformance)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if names & _ZMQ_ROUTER_FIXTURES or params.get("any_router") == "plexus":
            item.add_marker(pytest.mark.zmq_router)
        if params.get("any_router") == "seed":
            item.add_marker(pytest.mark.seed_router)


def router_supports_zmq() -> Optional[str]:
    """None if ``plexus router`` has the ZeroMQ flags, else why not."""
    if not PLEXUS.exists():
        return f"{PLEXUS} does not exist (build plexus or set PLEXUS_BIN_DIR)"
    r = run([PLEXUS, "router", "--help"], timeout=10)
    if "--zmq-frontend" not in r.stdout or "--zmq-backend" not in r.stdout:
        return f"{PLEXUS} router has no --zmq-frontend/--zmq-backend options"
    return None


class Stack:
    """The plexus router and calc of this session, restarted if a test killed them."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.router: Optional[Proc] = None
        self.calc: Optional[Proc] = None
        self.generation = 0
        self.dir = base
        self._zmq_problem: Optional[str] = router_supports_zmq()

    @property
    def native(self) -> str:
        return f"ipc://{self.dir}/native.sock"

    @property
    def frontend(self) -> str:
        return f"ipc://{self.dir}/front.sock"

    @property
    def backend(self) -> str:
        return f"ipc://{self.dir}/back.sock"

    def ensure_router(self) -> None:
        if self._zmq_problem:
            pytest.fail(self._zmq_problem, pytrace=False)
        if self.router is not None and self.router.alive():
            return
        self.stop()
        self.generation += 1
        self.dir = self.base / f"r{self.generation}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.router = Proc([PLEXUS, "router", "--listen", self.native, "--zmq-frontend",
                            self.frontend, "--zmq-backend", self.backend], name="plexus router")
        lines = self.router.wait_for("stderr", "plexus router listening on", START_TIMEOUT, count=3)
        for addr in ("native.sock", "front.sock", "back.sock"):
            assert any(addr in ln for ln in lines), (addr, lines)

    def ensure_calc(self) -> None:
        self.ensure_router()
        if self.calc is not None and self.calc.alive():
            return
        if self.calc is not None:
            self.calc.kill()
        self.calc = Proc([CALC, "--router", self.native], name="calc")
        self.calc.wait_for("stdout", "calc ready", START_TIMEOUT)

    def stop(self) -> None:
        for p in (self.calc, self.router):
            if p is not None:
                p.kill()
        self.calc = self.router = None

    def call(self, service: str, method: str, *args: str, timeout: float = 5.0,
             json_errors: bool = True, proc_timeout: float = 20.0):
        """``plexus call`` (the C++ client) through the native endpoint.

        A JSON array argument gets a leading space: CLI11 expands an argument written
        ``[a,b]`` into several arguments (see test_cli_array_argument_is_one_argument).
        """
        args = tuple(" " + a if a.startswith("[") else a for a in args)
        cmd = [PLEXUS, "call", service, method, *args, "--router", self.native,
               "--timeout", str(timeout)]
        if json_errors:
            cmd.append("--json")
        return run(cmd, timeout=proc_timeout)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("plexus"))
    yield s
    s.stop()


def _check_alive(p: Optional[Proc], what: str) -> None:
    if p is not None and not p.alive():
        pytest.fail(f"{what} died during this test\n{p.output()}", pytrace=False)


@pytest.fixture
def router(stack: Stack) -> Iterator[Stack]:
    """The running plexus router (native + ZeroMQ endpoints)."""
    stack.ensure_router()
    r = stack.router
    yield stack
    _check_alive(r, "the plexus router")


@pytest.fixture
def calc(router: Stack) -> Iterator[Stack]:
    """The router plus the C++ calc service."""
    router.ensure_calc()
    c = router.calc
    yield router
    _check_alive(c, "calc")


class PubSubStack:
    """A plexus router with every publish/subscribe endpoint, restarted if a test killed it.

    ``plexus router --listen ipc://D/native.sock --zmq-frontend ipc://D/front.sock
    --zmq-publishers ipc://D/pubs.sock --zmq-subscribers ipc://D/subs.sock
    --udp udp://127.0.0.1:0``; ``.udp`` is the bound UDP address (port chosen by the
    router), ready when all five addresses are printed.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.dir = base
        self.proc: Optional[Proc] = None
        self.generation = 0
        self.udp = ""
        self._checked: Optional[str] = None

    @property
    def native(self) -> str:
        return f"ipc://{self.dir}/native.sock"

    @property
    def frontend(self) -> str:
        return f"ipc://{self.dir}/front.sock"

    @property
    def publishers(self) -> str:
        return f"ipc://{self.dir}/pubs.sock"

    @property
    def subscribers(self) -> str:
        return f"ipc://{self.dir}/subs.sock"

    def _problem(self) -> Optional[str]:
        if self._checked is None:
            problem = router_supports_zmq()
            if problem is None:
                help_text = run([PLEXUS, "router", "--help"], timeout=10).stdout
                for flag in ("--zmq-publishers", "--zmq-subscribers", "--udp"):
                    if flag not in help_text:
                        problem = f"{PLEXUS} router has no {flag} option"
            self._checked = problem or ""
        return self._checked or None

    def ensure(self) -> None:
        problem = self._problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        if self.proc is not None and self.proc.alive():
            return
        if self.proc is not None:
            self.proc.kill()
        self.generation += 1
        self.dir = self.base / f"ps{self.generation}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc([PLEXUS, "router", "--listen", self.native, "--zmq-frontend",
                          self.frontend, "--zmq-publishers", self.publishers,
                          "--zmq-subscribers", self.subscribers, "--udp", "udp://127.0.0.1:0"],
                         name="plexus pubsub router")
        lines = self.proc.wait_for("stderr", "plexus router listening on", START_TIMEOUT, count=5)
        udp = [ln.split()[-1] for ln in lines if "udp://" in ln]
        assert len(udp) == 1 and not udp[0].endswith(":0"), lines
        self.udp = udp[0]

    def stats(self) -> dict:
        """``plexus call plexus stats`` through the native endpoint."""
        r = run([PLEXUS, "call", "plexus", "stats", "--router", self.native, "--json"], timeout=20)
        assert r.returncode == 0, (r.stdout, r.stderr)
        return json.loads(r.stdout)

    def cli_subscriber(self, *prefixes: str, count: int = 1, seconds: float = 20.0) -> Proc:
        """``plexus subscribe PREFIX... -n COUNT --for SECONDS --json``, started and
        subscribed (its "plexus: subscribed to" line printed)."""
        p = Proc([PLEXUS, "subscribe", *prefixes, "-n", str(count), "--for", str(seconds),
                  "--json", "--router", self.native], name="plexus subscribe")
        try:
            p.wait_for("stderr", "plexus: subscribed to", START_TIMEOUT)
        except BaseException:
            p.kill()
            raise
        return p


@pytest.fixture(scope="session")
def _pubsub_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubStack]:
    s = PubSubStack(tmp_path_factory.mktemp("pubsub"))
    yield s
    if s.proc is not None:
        s.proc.kill()


@pytest.fixture
def pubsub_router(_pubsub_session: PubSubStack) -> Iterator[PubSubStack]:
    """A plexus router with frontend, ZeroMQ publishers/subscribers and UDP endpoints."""
    _pubsub_session.ensure()
    p = _pubsub_session.proc
    yield _pubsub_session
    _check_alive(p, "the plexus pubsub router")


class SeedRouterStack:
    def __init__(self, base: Path) -> None:
        self.dir = base
        self.proc: Optional[Proc] = None
        self.generation = 0

    @property
    def frontend(self) -> str:
        return f"ipc://{self.dir}/front.sock"

    @property
    def backend(self) -> str:
        return f"ipc://{self.dir}/back.sock"

    def ensure(self) -> None:
        if self.proc is not None and self.proc.alive():
            return
        if self.proc is not None:
            self.proc.kill()
        self.generation += 1
        self.dir = self.dir.parent / f"seed{self.generation}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc([PYTHON, SEED_ROUTER, "--frontend", self.frontend, "--backend",
                          self.backend], name="seed router")
        self.proc.wait_for("stdout", "seed router ready", START_TIMEOUT)


@pytest.fixture(scope="session")
def _seed_router_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeedRouterStack]:
    s = SeedRouterStack(tmp_path_factory.mktemp("seedrouter") / "x")
    yield s
    if s.proc is not None:
        s.proc.kill()


@pytest.fixture
def seed_router(_seed_router_session: SeedRouterStack) -> Iterator[SeedRouterStack]:
    """The stand-in seed-001 Router (frontend/backend only)."""
    _seed_router_session.ensure()
    p = _seed_router_session.proc
    yield _seed_router_session
    _check_alive(p, "the seed router")


@pytest.fixture(params=["plexus", "seed"])
def any_router(request: pytest.FixtureRequest):
    """Either router; both expose .frontend and .backend (Python-to-Python tests)."""
    if request.param == "plexus":
        return request.getfixturevalue("router")
    return request.getfixturevalue("seed_router")


# -- helpers -----------------------------------------------------------------------------


def wait_routable(frontend: str, service: str, timeout: float = START_TIMEOUT) -> None:
    """Wait until a request to ``service`` reaches it (any answer but "no route").

    Sends ``[0, id, "__probe__", []]`` through the frontend with a plain DEALER and
    retries while the router answers unavailable or (a seed router) stays silent.
    """
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.PROBE_ROUTER, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(frontend)
    deadline = time.monotonic() + timeout
    msgid = 0
    last = None
    try:
        while time.monotonic() < deadline:
            msgid += 1
            sock.send_multipart([service.encode(), cbor2.dumps([0, msgid, "__probe__", []])])
            wait_until = time.monotonic() + 0.2
            while time.monotonic() < wait_until:
                if not sock.poll(20):
                    continue
                _, payload = sock.recv_multipart()
                msg = cbor2.loads(payload)
                if msg[1] != msgid:
                    continue
                last = msg
                err = msg[2]
                if err and isinstance(err[1], dict) and err[1].get("code") == "unavailable":
                    break  # not registered yet
                return
        raise ProcError(f"service {service!r} not routable through {frontend} within {timeout} s "
                        f"(last answer {last!r})")
    finally:
        sock.close()


def start_seed_service(r, name: str) -> Proc:
    p = Proc([PYTHON, SEED_PEER, "serve", "--backend", r.backend, "--name", name],
             name=f"seed service {name}")
    try:
        p.wait_for("stdout", "seed service ready", START_TIMEOUT)
        wait_routable(r.frontend, name)
    except BaseException:
        p.kill()
        raise
    return p


def start_pkg_service(r, name: str, *, timeout: float = 30.0) -> Proc:
    p = Proc([PYTHON, PKG_SERVICE, "--backend", r.backend, "--name", name,
              "--timeout", str(timeout)], name=f"plexus service {name}")
    try:
        p.wait_for("stdout", f"{name} ready", START_TIMEOUT)
        wait_routable(r.frontend, name)
    except BaseException:
        p.kill()
        raise
    return p


_names = iter(range(1, 1 << 30))


def unique_name(prefix: str) -> str:
    """A service name used by one test only (no stale registrations between tests)."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


@pytest.fixture
def seed_service(router: Stack) -> Iterator[tuple[Stack, str, Proc]]:
    """A seed-001 style Python service registered through the plexus router's backend."""
    name = unique_name("seedsvc")
    p = start_seed_service(router, name)
    yield router, name, p
    p.kill()


@pytest.fixture
def pkg_service(router: Stack) -> Iterator[tuple[Stack, str, Proc]]:
    """A plexus-package Python service registered through the plexus router's backend."""
    name = unique_name("pysvc")
    p = start_pkg_service(router, name, timeout=2.0)
    yield router, name, p
    p.kill()
