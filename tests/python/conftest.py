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

import contextlib
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

from support.aio import unique_name  # noqa: E402,F401  (tests import it from here too)
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


class _Socket:
    """``frontend = _Socket("front.sock")``: the ipc address of that socket file in the
    stack's current directory."""

    def __init__(self, file: str) -> None:
        self.file = file

    def __get__(self, stack, owner=None):
        return self if stack is None else f"ipc://{stack.dir}/{self.file}"


class _Restarting:
    """One process of this session, in a directory of its own under ``base``; started
    again, in a fresh directory, when a test has left it dead.

    A subclass names the directories (``PREFIX``), says why it cannot run (``_problem``)
    and starts the process (``_start``, which returns it once it is ready).
    """

    PREFIX = "p"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.dir = base
        self.proc: Optional[Proc] = None
        self.generation = 0

    native = _Socket("native.sock")
    frontend = _Socket("front.sock")
    backend = _Socket("back.sock")

    def _problem(self) -> Optional[str]:
        return None

    def _start(self) -> Proc:
        raise NotImplementedError

    def ensure(self) -> None:
        problem = self._problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        if self.proc is not None and self.proc.alive():
            return
        self.stop()
        self.generation += 1
        self.dir = self.base / f"{self.PREFIX}{self.generation}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = self._start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
        self.proc = None


def _check_alive(p: Optional[Proc], what: str) -> None:
    if p is not None and not p.alive():
        pytest.fail(f"{what} died during this test\n{p.output()}", pytrace=False)


def _process_fixtures(name: str, session_name: str, cls: type, tmp: str, what: str, doc: str):
    """A session fixture ``session_name`` owning one ``cls`` (stopped at the end) and a
    fixture ``name`` that ensures its process runs and fails the test (showing the
    process's output) if the test left it dead."""

    @pytest.fixture(scope="session", name=session_name)
    def session(tmp_path_factory: pytest.TempPathFactory):
        s = cls(tmp_path_factory.mktemp(tmp))
        yield s
        s.stop()

    @pytest.fixture(name=name)
    def running(request: pytest.FixtureRequest):
        s = request.getfixturevalue(session_name)
        s.ensure()
        p = s.proc
        yield s
        _check_alive(p, what)

    running.__doc__ = doc
    return session, running


class Stack(_Restarting):
    """The plexus router and calc of this session, restarted if a test killed them."""

    PREFIX = "r"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.calc: Optional[Proc] = None
        self._zmq_problem: Optional[str] = router_supports_zmq()

    @property
    def router(self) -> Optional[Proc]:
        return self.proc

    def _problem(self) -> Optional[str]:
        return self._zmq_problem

    def _start(self) -> Proc:
        return _started(Proc([PLEXUS, "router", "--listen", self.native, "--zmq-frontend",
                              self.frontend, "--zmq-backend", self.backend], name="plexus router"),
                        "stderr", "plexus router listening on", count=3,
                        check=lambda lines: _check_addresses(
                            lines, ("native.sock", "front.sock", "back.sock")))

    def ensure_router(self) -> None:
        self.ensure()

    def ensure_calc(self) -> None:
        self.ensure_router()
        if self.calc is not None and self.calc.alive():
            return
        if self.calc is not None:
            self.calc.kill()
        self.calc = _started(Proc([CALC, "--router", self.native], name="calc"),
                             "stdout", "calc ready")

    def stop(self) -> None:
        if self.calc is not None:
            self.calc.kill()
        self.calc = None
        super().stop()

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


def _check_addresses(lines: list, sockets: tuple) -> None:
    for addr in sockets:
        assert any(addr in ln for ln in lines), (addr, lines)


def _started(p: Proc, stream: str, needle: str, *, count: int = 1, check=None) -> Proc:
    """``p`` once it has printed ``needle`` on ``stream`` (``count`` lines) and
    ``check(lines)`` passed; killed if either fails."""
    try:
        lines = p.wait_for(stream, needle, START_TIMEOUT, count=count)
        if check is not None:
            check(lines)
    except BaseException:
        p.kill()
        raise
    return p


stack, router = _process_fixtures(
    "router", "stack", Stack, "plexus", "the plexus router",
    "The running plexus router (native + ZeroMQ endpoints).")


@pytest.fixture
def calc(router: Stack) -> Iterator[Stack]:
    """The router plus the C++ calc service."""
    router.ensure_calc()
    c = router.calc
    yield router
    _check_alive(c, "calc")


class PubSubStack(_Restarting):
    """A plexus router with every publish/subscribe endpoint, restarted if a test killed it.

    ``plexus router --listen ipc://D/native.sock --zmq-frontend ipc://D/front.sock
    --zmq-publishers ipc://D/pubs.sock --zmq-subscribers ipc://D/subs.sock
    --udp udp://127.0.0.1:0``; ``.udp`` is the bound UDP address (port chosen by the
    router), ready when all five addresses are printed.
    """

    PREFIX = "ps"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.udp = ""
        self._checked: Optional[str] = None

    publishers = _Socket("pubs.sock")
    subscribers = _Socket("subs.sock")

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

    def _start(self) -> Proc:
        def bound_udp(lines: list) -> None:
            udp = [ln.split()[-1] for ln in lines if "udp://" in ln]
            assert len(udp) == 1 and not udp[0].endswith(":0"), lines
            self.udp = udp[0]

        return _started(Proc([PLEXUS, "router", "--listen", self.native, "--zmq-frontend",
                              self.frontend, "--zmq-publishers", self.publishers,
                              "--zmq-subscribers", self.subscribers, "--udp", "udp://127.0.0.1:0"],
                             name="plexus pubsub router"),
                        "stderr", "plexus router listening on", count=5, check=bound_udp)

    def stats(self) -> dict:
        """``plexus call plexus stats`` through the native endpoint."""
        r = run([PLEXUS, "call", "plexus", "stats", "--router", self.native, "--json"], timeout=20)
        assert r.returncode == 0, (r.stdout, r.stderr)
        return json.loads(r.stdout)

    def cli_subscriber(self, *prefixes: str, count: int = 1, seconds: float = 20.0) -> Proc:
        """``plexus subscribe PREFIX... -n COUNT --for SECONDS --json``, started and
        subscribed (its "plexus: subscribed to" line printed)."""
        return _started(Proc([PLEXUS, "subscribe", *prefixes, "-n", str(count), "--for",
                              str(seconds), "--json", "--router", self.native],
                             name="plexus subscribe"),
                        "stderr", "plexus: subscribed to")


_pubsub_session, pubsub_router = _process_fixtures(
    "pubsub_router", "_pubsub_session", PubSubStack, "pubsub", "the plexus pubsub router",
    "A plexus router with frontend, ZeroMQ publishers/subscribers and UDP endpoints.")


class SeedRouterStack(_Restarting):
    """The stand-in seed-001 Router (tests/python/conformance/seed_router.py)."""

    PREFIX = "seed"

    def _start(self) -> Proc:
        return _started(Proc([PYTHON, SEED_ROUTER, "--frontend", self.frontend, "--backend",
                              self.backend], name="seed router"),
                        "stdout", "seed router ready")


_seed_router_session, seed_router = _process_fixtures(
    "seed_router", "_seed_router_session", SeedRouterStack, "seedrouter", "the seed router",
    "The stand-in seed-001 Router (frontend/backend only).")


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


def _start_service(r, args: list, name: str, what: str, ready: str) -> Proc:
    """A Python service process on ``r``'s backend, once it is ready and routable."""
    p = _started(Proc([PYTHON, *args], name=what), "stdout", ready)
    try:
        wait_routable(r.frontend, name)
    except BaseException:
        p.kill()
        raise
    return p


def start_seed_service(r, name: str) -> Proc:
    return _start_service(r, [SEED_PEER, "serve", "--backend", r.backend, "--name", name],
                          name, f"seed service {name}", "seed service ready")


def start_pkg_service(r, name: str, *, timeout: float = 30.0) -> Proc:
    return _start_service(r, [PKG_SERVICE, "--backend", r.backend, "--name", name,
                              "--timeout", str(timeout)],
                          name, f"plexus service {name}", f"{name} ready")


@contextlib.contextmanager
def service_process(start, r, prefix: str) -> Iterator[tuple[str, Proc]]:
    """``with service_process(start_seed_service, router, "doomed") as (name, p):`` a
    service under a name of its own, started by ``start(r, name)``, killed at the end."""
    name = unique_name(prefix)
    p = start(r, name)
    try:
        yield name, p
    finally:
        p.kill()


def _registered(router: Stack, prefix: str, start) -> Iterator[tuple[Stack, str, Proc]]:
    with service_process(start, router, prefix) as (name, p):
        yield router, name, p


@pytest.fixture
def seed_service(router: Stack) -> Iterator[tuple[Stack, str, Proc]]:
    """A seed-001 style Python service registered through the plexus router's backend."""
    yield from _registered(router, "seedsvc", start_seed_service)


@pytest.fixture
def pkg_service(router: Stack) -> Iterator[tuple[Stack, str, Proc]]:
    """A plexus-package Python service registered through the plexus router's backend."""
    yield from _registered(router, "pysvc", lambda r, name: start_pkg_service(r, name, timeout=2.0))
