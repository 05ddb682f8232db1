#!/usr/bin/python3
"""Python client calls/s: the plexus package vs an asyncio client built like seed 001.

    /usr/bin/python3 bench/python/client_bench.py                 # 5 s per system
    /usr/bin/python3 bench/python/client_bench.py --seconds 10 --bin-dir build/bin

Starts ``plexus router`` (native + ZeroMQ endpoints) and the C++ ``calc`` in a
temporary directory, then runs both clients against them in the same run, in
interleaved rounds: 64 calls in flight, each ``calc.echo`` of 32 bytes, through the
router's ZeroMQ frontend. The seed-style client is 001's Client as 001 builds it: a
zmq.asyncio DEALER whose receive task fills an ``asyncio.Queue(128)``, endpoint
workers that take messages from it, and ``asyncio.to_thread`` for every cbor2 encode
and decode, ``asyncio.wait_for`` per call, random msgids (its structlog debug calls
are left out, which only makes it faster). Each system runs ``--seconds`` in total,
split into ``--rounds`` rounds; the median round is reported.

Prints JSON lines::

    {"bench": "python_client", "system": "plexus-py", "metric": "calls_per_s", "value": ...}
    {"bench": "python_client", "system": "seed-py", "metric": "calls_per_s", "value": ...}
    {"bench": "python_client", "metric": "ratio", "value": ..., "target": 5.0, "ok": ...}

and exits 1 if plexus-py is not at least ``--target`` (5) times seed-py, 2 if a call
failed (the router or calc died, a deadline passed). Do not run it
while something else is compiling: the baseline is measured in the same run, but two
cores are easily disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "python" / "conformance"))

import cbor2  # noqa: E402

import plexus  # noqa: E402
from seed_peer import close_node, socket_node, start_workers  # noqa: E402  (001's SocketNode)

IN_FLIGHT = 64
PAYLOAD = bytes(range(32))


# -- processes ------------------------------------------------------------------------------


class Child:
    """A child process whose output is read by threads; wait for a line with a deadline."""

    def __init__(self, args: list, name: str) -> None:
        self.name = name
        self.lines: list = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, needle: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(needle in ln for ln in self.lines) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise SystemExit(f"{self.name} not ready (wanted {needle!r}):\n"
                                     + "\n".join(self.lines))
                self.cond.wait(min(left, 0.05))

    def kill(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=5)

    def alive(self) -> bool:
        return self.p.poll() is None


# -- the seed-001 style client ----------------------------------------------------------------


class SeedStyleClient:
    """001's Client + SocketNode + RequestTracker, reduced to what a call touches."""

    def __init__(self, frontend: str, concurrency: int) -> None:
        self.frontend = frontend
        self.concurrency = concurrency
        self.futures: dict = {}
        self.tasks: list = []

    async def __aenter__(self) -> "SeedStyleClient":
        self.queue: asyncio.Queue = asyncio.Queue(128)
        self.sock = socket_node(self.frontend)
        self.tasks = start_workers(self._recv_forever, self._process_forever, self.concurrency)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await close_node(self.sock, self.tasks)

    async def _recv_forever(self) -> None:  # SocketNode._recv_forever
        while True:
            sender_id, *frames = await self.sock.recv_multipart()
            await self.queue.put((list(frames), sender_id))

    async def _process_forever(self) -> None:  # Endpoint._process_forever
        while True:
            frames, address = await self.queue.get()
            payload, *_ = frames
            message_type, *message = await asyncio.to_thread(cbor2.loads, payload)
            message_id, error, result = message  # Client.handle_message
            fut = self.futures.get(message_id)
            if fut is None or fut.done():
                continue
            if isinstance(error, list):
                fut.set_exception(RuntimeError(error[0]))
            else:
                fut.set_result(result)

    async def issue_call(self, service: str, method: str, *args: Any, timeout: float = 5) -> Any:
        for _ in range(10):  # RequestTracker.generate_uid
            message_id = random.randint(0, (1 << 32) - 1)
            if message_id not in self.futures:
                break
        fut = asyncio.get_running_loop().create_future()
        self.futures[message_id] = fut
        try:
            request = [0, message_id, method, args]
            payload = await asyncio.to_thread(cbor2.dumps, request)
            await self.sock.send_multipart([service.encode(), payload])
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.futures.pop(message_id, None)


# -- measurement ------------------------------------------------------------------------------


async def _drive(call: Callable[[], Any], seconds: float) -> float:
    """Calls/s with IN_FLIGHT loops each awaiting one call at a time."""
    done = 0
    stop_at = 0.0

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            r = await call()
            if r != PAYLOAD:
                raise AssertionError(f"echo returned {r!r}")
            done += 1

    # warm-up (connect, first route lookups), not counted
    stop_at = time.perf_counter() + min(0.3, seconds / 4)
    await asyncio.gather(*[loop() for _ in range(IN_FLIGHT)])
    done = 0
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    await asyncio.gather(*[loop() for _ in range(IN_FLIGHT)])
    return done / (time.perf_counter() - t0)


async def bench_plexus(frontend: str, seconds: float) -> float:
    async with plexus.Client(frontend) as c:
        return await _drive(lambda: c.call("calc", "echo", PAYLOAD), seconds)


async def bench_seed(frontend: str, seconds: float, concurrency: int) -> float:
    async with SeedStyleClient(frontend, concurrency) as c:
        return await _drive(lambda: c.issue_call("calc", "echo", PAYLOAD), seconds)


def emit(**kw: Any) -> None:
    print(json.dumps({"bench": "python_client", **kw}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description="plexus Python client vs a seed-001 style client")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="measuring time per system, split over the rounds (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--bin-dir", default=os.environ.get("PLEXUS_BIN_DIR", REPO / "build" / "bin"),
                    help="where plexus and calc are (default $PLEXUS_BIN_DIR or build/bin)")
    ap.add_argument("--seed-concurrency", type=int, default=16,
                    help="response workers of the seed-style client (001's Endpoint "
                         "concurrency; default 16, about its best on 2 cores; 001's default is 1)")
    ap.add_argument("--target", type=float, default=5.0, help="required ratio (default 5)")
    args = ap.parse_args()

    bin_dir = Path(args.bin_dir)
    tmp = Path(tempfile.mkdtemp(prefix="plexus-pybench-"))
    native, front, back = (f"ipc://{tmp}/{n}.sock" for n in ("native", "front", "back"))
    router = Child([bin_dir / "plexus", "router", "--listen", native, "--zmq-frontend", front,
                    "--zmq-backend", back], "plexus router")
    calc: Optional[Child] = None
    try:
        router.wait_for("plexus router listening on", 3, 10)
        calc = Child([bin_dir / "calc", "--router", native], "calc")
        calc.wait_for("calc ready", 1, 10)
        per_round = args.seconds / args.rounds
        results: dict = {"plexus-py": [], "seed-py": []}
        try:
            for _ in range(args.rounds):
                results["seed-py"].append(
                    asyncio.run(bench_seed(front, per_round, args.seed_concurrency)))
                results["plexus-py"].append(asyncio.run(bench_plexus(front, per_round)))
        except Exception as exc:
            print(f"client_bench: a call failed: {exc!r}", file=sys.stderr)
            if not (router.alive() and calc.alive()):
                print("the router or calc died:\n" + "\n".join(router.lines + calc.lines),
                      file=sys.stderr)
            return 2
        if not (router.alive() and calc.alive()):
            print("the router or calc died during the benchmark:\n"
                  + "\n".join(router.lines + calc.lines), file=sys.stderr)
            return 2
        med = {k: statistics.median(v) for k, v in results.items()}
        for system in ("plexus-py", "seed-py"):
            emit(system=system, metric="calls_per_s", value=round(med[system]),
                 rounds=[round(x) for x in results[system]], in_flight=IN_FLIGHT,
                 payload_bytes=len(PAYLOAD))
        ratio = med["plexus-py"] / med["seed-py"]
        ok = ratio >= args.target
        emit(metric="ratio", value=round(ratio, 2), target=args.target, ok=ok,
             seed_concurrency=args.seed_concurrency)
        return 0 if ok else 1
    finally:
        if calc is not None:
            calc.kill()
        router.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
