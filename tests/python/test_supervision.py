"""The Python package under `plexus run`: plexus.supervision, Service readiness and
health reports through $PLEXUS_NOTIFY_FD, Service.log / Client.log records.

- unit tests (no processes): $PLEXUS_NOTIFY_FD parsing, writes that never block or
  raise (a full pipe, a blocking pipe, a closed pipe, an over-long line),
  process_name/process_replica, log_record and its level check
- a Python Service in a subprocess given a pipe as $PLEXUS_NOTIFY_FD: READY=1 once the
  router has registered it (a call made right then is answered), then HEALTH= lines
  with JSON every $PLEXUS_HEALTH_INTERVAL_MS; in-process: the reports stop with the
  service
- Service.log (from the loop and from a blocking handler's thread) and Client.log
  records reach a plexus.Subscriber of "log." with every field
- end to end: `plexus run app.toml` supervising `python3 -c <a Service>`: ready in
  `plexus ps`, its health there, answers `plexus call`, its record in `plexus logs`
  and its log file, `plexus stop` ends `plexus run` with status 0

Every wait is bounded by a deadline (polling at short intervals); every process is
killed in a finally or a fixture.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import plexus
from plexus import supervision
from conftest import PLEXUS, START_TIMEOUT, Proc, run, wait_routable
from support.aio import arun, unique_name, wait_subscribed

REPO = Path(__file__).resolve().parents[2]
PY_PATH = str(REPO / "python")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# A plexus Service run as `python3 -c SERVICE_SCRIPT BACKEND NAME`: add(a, b), whoami()
# and a log record at start; SIGTERM stops it gracefully.
SERVICE_SCRIPT = r"""
import asyncio, os, signal, sys
import plexus

async def main():
    svc = plexus.Service(sys.argv[1], sys.argv[2])

    @svc.route(inline=True)
    def add(a, b):
        return a + b

    @svc.route(inline=True)
    def whoami():
        return [plexus.process_name("?"), plexus.process_replica(), plexus.supervised()]

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with svc:
        svc.log("info", "pysvc started", answer=42, name=sys.argv[2])
        print("service up", flush=True)
        await stop.wait()

asyncio.run(main())
"""


def poll(check: Callable[[], tuple[bool, Any]], timeout: float, what: str,
         interval: float = 0.05) -> Any:
    """Call ``check`` every ``interval`` s until it returns (True, value); then value."""
    deadline = time.monotonic() + timeout
    while True:
        ok, value = check()
        if ok:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {value!r})")
        time.sleep(interval)


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PLEXUS_") or k == "PLEXUS_BIN_DIR"}
    env["PYTHONPATH"] = PY_PATH + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


class LineReader:
    """Lines from the read end of a pipe, each waited for with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.lines: list[str] = []
        self.eof = False

    def next_line(self, timeout: float) -> Optional[str]:
        """The next line, or None at end of file; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line within {timeout} s (so far: {self.lines!r}, "
                                     f"partial: {self.buf!r})")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    self.eof = True
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return text


@pytest.fixture
def no_supervisor_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for k in ("PLEXUS_NOTIFY_FD", "PLEXUS_PROCESS", "PLEXUS_REPLICA", "PLEXUS_HEALTH_INTERVAL_MS"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture
def pipe() -> Iterator[list[int]]:
    """[read_fd, write_fd]; whichever is still open at the end is closed."""
    fds = list(os.pipe())
    yield fds
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


# -- plexus.supervision, in process ------------------------------------------------------


def test_not_supervised_without_a_valid_notify_fd(no_supervisor_env, pipe) -> None:
    mp = no_supervisor_env
    assert not plexus.supervised()
    for bad in ("", "abc", "-1", "3x", " 3", "1048576", "+3", "٣"):
        mp.setenv("PLEXUS_NOTIFY_FD", bad)
        assert not plexus.supervised(), bad
        plexus.notify_ready()  # a no-op, never an error
        plexus.notify_health({"in_flight": 0})
    mp.setenv("PLEXUS_NOTIFY_FD", str(pipe[1]))
    assert plexus.supervised()
    mp.delenv("PLEXUS_NOTIFY_FD")
    assert not plexus.supervised()
    assert drain(pipe[0]) == b""


def test_notify_writes_one_line_per_report(no_supervisor_env, pipe) -> None:
    no_supervisor_env.setenv("PLEXUS_NOTIFY_FD", str(pipe[1]))
    plexus.notify_ready()
    plexus.notify_health({"in_flight": 2, "note": "ü", "nested": {"a": [1, 2.5, None]}})
    plexus.notify_health({"bad": object()})  # cannot be serialised: dropped
    plexus.notify_health({"huge": "x" * 10_000})  # longer than PIPE_BUF: dropped
    plexus.notify_health({"nan": float("nan")})  # not JSON: dropped
    plexus.notify_health({"in_flight": 0})
    lines = drain(pipe[0]).decode().split("\n")
    assert len(lines) == 4 and lines[0] == "READY=1" and lines[3] == "", lines
    assert lines[1].startswith("HEALTH=") and lines[2] == 'HEALTH={"in_flight":0}'
    assert json.loads(lines[1][len("HEALTH="):]) == {
        "in_flight": 2, "note": "ü", "nested": {"a": [1, 2.5, None]}}


def test_notify_never_blocks_on_a_full_pipe(no_supervisor_env, pipe) -> None:
    r, w = pipe
    # fill the pipe, then leave the descriptor blocking: notify must still not block
    os.set_blocking(w, False)
    while True:
        try:
            os.write(w, b"z" * 4096)
        except BlockingIOError:
            break
    while True:
        try:
            os.write(w, b"z")
        except BlockingIOError:
            break
    os.set_blocking(w, True)
    no_supervisor_env.setenv("PLEXUS_NOTIFY_FD", str(w))
    done = threading.Event()

    def notify() -> None:
        plexus.notify_ready()
        plexus.notify_health({"in_flight": 1})
        done.set()

    t = threading.Thread(target=notify, daemon=True)
    t.start()
    t.join(5)
    if not done.is_set():  # unblock the writer before failing
        drain(r)
        t.join(5)
        pytest.fail("notify_ready/notify_health blocked on a full pipe")
    data = drain(r)
    assert set(data) == {ord("z")}  # the reports were dropped, not written in part


def test_notify_ignores_a_closed_pipe_and_a_bad_descriptor(no_supervisor_env, pipe) -> None:
    r, w = pipe
    os.close(r)
    pipe[0] = -1
    no_supervisor_env.setenv("PLEXUS_NOTIFY_FD", str(w))
    plexus.notify_ready()  # EPIPE: dropped
    plexus.notify_health({"in_flight": 0})
    os.close(w)
    pipe[1] = -1
    plexus.notify_ready()  # EBADF: dropped
    no_supervisor_env.setenv("PLEXUS_NOTIFY_FD", "1000000")
    plexus.notify_ready()


def test_process_name_and_replica(no_supervisor_env) -> None:
    mp = no_supervisor_env
    assert plexus.process_name("fallback") == "fallback"
    assert plexus.process_replica() == 0
    mp.setenv("PLEXUS_PROCESS", "")
    assert plexus.process_name("fallback") == "fallback"
    mp.setenv("PLEXUS_PROCESS", "importer")
    mp.setenv("PLEXUS_REPLICA", "3")
    assert plexus.process_name("fallback") == "importer"
    assert plexus.process_replica() == 3
    mp.setenv("PLEXUS_REPLICA", "three")
    assert plexus.process_replica() == 0
    mp.setenv("PLEXUS_HEALTH_INTERVAL_MS", "50")
    assert supervision.health_interval() == 0.05
    for bad in ("0", "-5", "soon", ""):
        mp.setenv("PLEXUS_HEALTH_INTERVAL_MS", bad)
        assert supervision.health_interval() == 1.0


def test_log_record(no_supervisor_env) -> None:
    mp = no_supervisor_env
    assert plexus.LOG_LEVELS == ("trace", "debug", "info", "warn", "error", "critical")
    assert [plexus.level_rank(x) for x in plexus.LOG_LEVELS] == [0, 1, 2, 3, 4, 5]
    assert plexus.level_rank("warning") == -1 and plexus.level_rank(None) == -1  # type: ignore[arg-type]
    before = time.time()
    rec = plexus.log_record("warn", "disk low", {"free": 10, 7: "x"}, "store")
    assert set(rec) == {"time", "level", "process", "replica", "pid", "message", "fields"}
    assert before <= rec["time"] <= time.time() and isinstance(rec["time"], float)
    assert rec["level"] == "warn" and rec["process"] == "store" and rec["replica"] == 0
    assert rec["pid"] == os.getpid() and rec["message"] == "disk low"
    assert rec["fields"] == {"free": 10, "7": "x"}
    assert plexus.log_record("info", "m", ["not", "a", "map"], "p")["fields"] == {}
    assert plexus.log_record("info", "m")["process"] == "python"
    mp.setenv("PLEXUS_PROCESS", "svc")
    mp.setenv("PLEXUS_REPLICA", "2")
    rec = plexus.log_record("info", "m")
    assert rec["process"] == "svc" and rec["replica"] == 2 and rec["fields"] == {}
    assert plexus.log_topic("svc") == "log.svc"
    for bad in ("warning", "INFO", "", None):
        with pytest.raises(ValueError, match="unknown log level"):
            plexus.log_record(bad, "m", {}, "p")  # type: ignore[arg-type]


def test_log_validates_the_level_and_needs_a_started_service(no_supervisor_env) -> None:
    svc = plexus.Service("ipc:///nonexistent/back.sock", "logger")
    with pytest.raises(ValueError):
        svc.log("verbose", "x")
    with pytest.raises(plexus.Unavailable):
        svc.log("info", "x")
    with pytest.raises(plexus.Unavailable):
        svc.publish("topic", 1)

    async def client_side() -> None:
        client = plexus.Client("ipc:///nonexistent/front.sock")
        with pytest.raises(ValueError):
            await client.log("loud", "x")
        with pytest.raises(plexus.Unavailable):
            await client.log("info", "x")

    arun(client_side())


# -- readiness and health through $PLEXUS_NOTIFY_FD --------------------------------------


def test_service_in_a_subprocess_reports_ready_then_health(router, pipe) -> None:
    name = unique_name("supsvc")
    r, w = pipe
    env = child_env(PLEXUS_NOTIFY_FD=str(w), PLEXUS_HEALTH_INTERVAL_MS="50",
                    PLEXUS_PROCESS="supervised-py", PLEXUS_REPLICA="1")
    child = subprocess.Popen([PYTHON, "-c", SERVICE_SCRIPT, router.backend, name], env=env,
                             pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        os.close(w)
        pipe[1] = -1
        reader = LineReader(r)
        first = reader.next_line(START_TIMEOUT)
        assert first == "READY=1", (first, child.poll())

        # READY=1 comes once the router has registered the name: a call made now is
        # answered at the first attempt (no "no route").
        async def call_once() -> Any:
            async with plexus.Client(router.frontend, timeout=5.0) as client:
                return await client.call(name, "add", 20, 22), await client.call(name, "whoami")

        assert arun(call_once()) == (42, ["supervised-py", 1, True])

        reports = []
        while len(reports) < 3:
            line = reader.next_line(5.0)
            assert line is not None, f"the pipe closed; child exit {child.poll()}"
            assert line.startswith("HEALTH="), line  # READY=1 is written once
            reports.append(json.loads(line[len("HEALTH="):]))
        for rep in reports:
            assert {"in_flight", "backlog", "queued_messages", "worker_threads",
                    "requests"} <= set(rep), rep
            assert rep["in_flight"] == 0 and rep["worker_threads"] >= 1
        assert reports[-1]["requests"] == 2  # the two calls above

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0, child.stderr.read().decode()  # type: ignore[union-attr]
        while (line := reader.next_line(5.0)) is not None:  # until the child's end closes it
            assert line.startswith("HEALTH="), line
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()


def test_health_reports_stop_with_the_service(router, no_supervisor_env, pipe) -> None:
    r, w = pipe
    no_supervisor_env.setenv("PLEXUS_NOTIFY_FD", str(w))
    no_supervisor_env.setenv("PLEXUS_HEALTH_INTERVAL_MS", "20")
    name = unique_name("suphealth")

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        got: asyncio.Queue = asyncio.Queue()
        buf = [b""]

        def readable() -> None:
            buf[0] += os.read(r, 65536)
            *lines, buf[0] = buf[0].split(b"\n")
            for ln in lines:
                got.put_nowait(ln.decode())

        os.set_blocking(r, False)
        loop.add_reader(r, readable)
        svc = plexus.Service(router.backend, name)
        svc.route(lambda: "pong", name="ping", inline=True)
        try:
            await svc.start()
            lines = [await asyncio.wait_for(got.get(), START_TIMEOUT)]
            while len(lines) < 3:
                lines.append(await asyncio.wait_for(got.get(), 5.0))
            assert svc._health is not None
            await svc.stop()
            assert svc._health is None  # no timer left: no report after the stop
            return lines
        finally:
            loop.remove_reader(r)
            await svc.stop()

    lines = arun(main())
    assert lines[0] == "READY=1"
    assert all(ln.startswith("HEALTH=") for ln in lines[1:]), lines


# -- Service.log and Client.log through the router ---------------------------------------


@pytest.fixture(scope="module")
def log_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A plexus router with native, ZeroMQ frontend/backend and subscriber endpoints."""
    d = tmp_path_factory.mktemp("suplog")
    addrs = {"native": f"ipc://{d}/native.sock", "frontend": f"ipc://{d}/front.sock",
             "backend": f"ipc://{d}/back.sock", "subscribers": f"ipc://{d}/subs.sock"}
    p = Proc([PLEXUS, "router", "--listen", addrs["native"], "--zmq-frontend", addrs["frontend"],
              "--zmq-backend", addrs["backend"], "--zmq-subscribers", addrs["subscribers"]],
             name="plexus router (logs)")
    try:
        p.wait_for("stderr", "plexus router listening on", START_TIMEOUT, count=4)
        yield addrs
    finally:
        p.kill()


def test_service_and_client_log_records_reach_a_subscriber(log_router, no_supervisor_env) -> None:
    svc_name = unique_name("logsvc")
    client_name = unique_name("logclient")

    async def main() -> list[tuple[str, list]]:
        svc = plexus.Service(log_router["backend"], svc_name)

        @svc.route  # a blocking handler: logs from a thread of the pool
        def work(n: int) -> int:
            svc.log("debug", "working", n=n, thread=threading.current_thread().name)
            return n * 2

        async with plexus.Subscriber(log_router["subscribers"]) as sub, \
                plexus.Client(log_router["frontend"], identity=client_name) as client, svc:
            sub.subscribe("log.")
            await wait_subscribed(sub, client, "sync.")
            await svc.wait_connected(START_TIMEOUT)
            svc.log("warn", "disk low", free_mb=12, path="/srv", tags=["a", "b"])
            await client.log("info", "client here", attempt=1)
            await asyncio.to_thread(wait_routable, log_router["frontend"], svc_name)
            assert await client.call(svc_name, "work", 21) == 42
            no_supervisor_env.setenv("PLEXUS_PROCESS", "renamed")
            no_supervisor_env.setenv("PLEXUS_REPLICA", "4")
            await client.log("critical", "under a supervisor name")
            got = []
            while len(got) < 4:
                got.append(await sub.receive(timeout=10.0))
            return got

    t0 = time.time()
    got = arun(main())
    t1 = time.time()
    by_message = {}
    for topic, params in got:
        assert len(params) == 1, params
        rec = params[0]
        assert set(rec) == {"time", "level", "process", "replica", "pid", "message", "fields"}
        assert topic == "log." + rec["process"]
        assert t0 <= rec["time"] <= t1 and rec["pid"] == os.getpid()
        by_message[rec["message"]] = rec
    assert set(by_message) == {"disk low", "client here", "working", "under a supervisor name"}
    rec = by_message["disk low"]
    assert (rec["level"], rec["process"], rec["replica"]) == ("warn", svc_name, 0)
    assert rec["fields"] == {"free_mb": 12, "path": "/srv", "tags": ["a", "b"]}
    rec = by_message["client here"]
    assert (rec["level"], rec["process"], rec["replica"]) == ("info", client_name, 0)
    assert rec["fields"] == {"attempt": 1}
    rec = by_message["working"]
    assert (rec["level"], rec["process"]) == ("debug", svc_name)
    assert rec["fields"]["n"] == 21 and rec["fields"]["thread"].startswith("plexus-")
    rec = by_message["under a supervisor name"]
    assert (rec["level"], rec["process"], rec["replica"]) == ("critical", "renamed", 4)
    assert rec["fields"] == {}


# -- end to end: plexus run ---------------------------------------------------------------


def plexus_cli(*args: str, router: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
    return run([PLEXUS, *args, "--router", router, "--timeout", str(timeout)],
               timeout=timeout + 15)


def test_plexus_run_supervises_a_python_service(tmp_path: Path) -> None:
    native = f"ipc://{tmp_path}/native.sock"
    backend = f"ipc://{tmp_path}/back.sock"
    logs = tmp_path / "logs"
    env = {"PYTHONPATH": PY_PATH, "PLEXUS_HEALTH_INTERVAL_MS": "100"}
    config = tmp_path / "app.toml"
    config.write_text(f"""\
[router]
listen = {json.dumps(native)}
zmq_backend = {json.dumps(backend)}

[gateway]
listen = "127.0.0.1:0"

[log]
dir = {json.dumps(str(logs))}
echo = false

[[process]]
name = "pysvc"
command = {json.dumps(PYTHON)}
args = {json.dumps(["-c", SERVICE_SCRIPT, backend, "pysvc"])}
env = {{ {", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items())} }}
ready_timeout = 15
""")
    sup = Proc([PLEXUS, "run", str(config)], name="plexus run", env=child_env(),
               cwd=str(tmp_path))
    try:
        def pysvc_entry() -> tuple[bool, Any]:
            if not sup.alive():
                raise AssertionError(f"plexus run exited\n{sup.output()}")
            r = plexus_cli("ps", "--json", router=native)
            if r.returncode != 0:
                return False, r.stderr.strip()
            entries = [e for e in json.loads(r.stdout) if e.get("name") == "pysvc"]
            return bool(entries) and entries[0].get("state") == "ready", entries

        entry = poll(pysvc_entry, 20.0, "pysvc ready in plexus ps")[0]
        assert entry["replica"] == 0 and entry["pid"] > 0 and entry["restarts"] == 0

        r = plexus_cli("call", "pysvc", "add", "2", "3", "--json", router=native)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert json.loads(r.stdout) == 5
        r = plexus_cli("call", "pysvc", "whoami", "--json", router=native)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert json.loads(r.stdout) == ["pysvc", 0, True]

        def health() -> tuple[bool, Any]:
            ok, entries = pysvc_entry()
            h = entries[0].get("health") if entries else None
            return isinstance(h, dict) and h.get("requests", 0) >= 2, h

        h = poll(health, 10.0, "a health report counting the calls in plexus ps")
        assert h["in_flight"] == 0 and h["worker_threads"] >= 1

        def logged() -> tuple[bool, Any]:
            r = plexus_cli("logs", "--json", "-p", "pysvc", "--level", "trace", router=native)
            if r.returncode != 0:
                return False, r.stderr
            recs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
            mine = [x for x in recs if x.get("message") == "pysvc started"]
            return bool(mine), recs

        rec = poll(logged, 10.0, "the service's record in plexus logs")
        rec = [x for x in rec if x.get("message") == "pysvc started"][0]
        assert rec["fields"] == {"answer": 42, "name": "pysvc"}
        assert (rec["level"], rec["process"], rec["replica"]) == ("info", "pysvc", 0)
        assert rec["pid"] == entry["pid"]

        r = plexus_cli("stop", router=native)
        assert r.returncode == 0, (r.stdout, r.stderr)
        try:
            code = sup.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"plexus run did not exit after plexus stop\n{sup.output()}")
        assert code == 0, sup.output()
        text = (logs / "pysvc.0.log").read_text()
        assert "pysvc started" in text and "service up" in text, text
    finally:
        sup.kill()


def test_plexus_stop_over_zeromq_is_permission_denied(tmp_path: Path) -> None:
    # A ZeroMQ peer carries no credentials: it may look (plexus.ps) but not stop or
    # restart the tree; the user's own CLI, over the Unix socket, may.
    native = f"ipc://{tmp_path}/native.sock"
    frontend = f"ipc://{tmp_path}/front.sock"
    config = tmp_path / "app.toml"
    config.write_text(f"""\
[router]
listen = {json.dumps(native)}
zmq_frontend = {json.dumps(frontend)}

[gateway]
listen = "127.0.0.1:0"

[log]
dir = {json.dumps(str(tmp_path / "logs"))}
echo = false

[[process]]
name = "idle"
command = "/bin/sh"
args = ["-c", "echo READY=1 >&3; exec sleep 1000"]
""")
    sup = Proc([PLEXUS, "run", str(config)], name="plexus run", env=child_env(),
               cwd=str(tmp_path))
    try:
        def ready() -> tuple[bool, Any]:
            if not sup.alive():
                raise AssertionError(f"plexus run exited\n{sup.output()}")
            r = plexus_cli("ps", "--json", router=native)
            return r.returncode == 0 and json.loads(r.stdout)[0]["state"] == "ready", r.stdout

        poll(ready, 20.0, "idle ready in plexus ps")

        async def main() -> None:
            async with plexus.Client(frontend) as c:
                ps = await c.call("plexus", "ps")
                assert ps[0]["name"] == "idle"
                for method, params in (("stop", []), ("restart", ["idle"])):
                    with pytest.raises(plexus.PermissionDenied) as info:
                        await c.call("plexus", method, *params)
                    assert isinstance(info.value, PermissionError)
                    assert info.value.code == "permission_denied"
                    assert info.value.context["method"] == method
                    assert "no credentials" in info.value.message, info.value.message

        arun(main())
        assert sup.alive(), sup.output()
        r = plexus_cli("ps", "--json", router=native)
        assert json.loads(r.stdout)[0]["restarts"] == 0, r.stdout
        r = plexus_cli("stop", router=native)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert sup.popen.wait(timeout=20) == 0, sup.output()
    finally:
        sup.kill()
