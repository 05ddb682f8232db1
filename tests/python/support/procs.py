"""Child processes for the tests: start, wait for a line with a deadline, kill by pid.

    p = Proc([bin, "router", ...], name="router")
    p.wait_for("stderr", "plexus router listening on", timeout=5)
    p.kill()                       # SIGKILL by pid, then reap

Output is read by two threads into line lists, so waiting for a line never blocks
past its deadline and a failure message can show what the process said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Optional, Sequence


class ProcError(AssertionError):
    pass


class Proc:
    def __init__(self, args: Sequence[str], *, name: str, env: Optional[dict] = None,
                 cwd: Optional[str] = None) -> None:
        self.name = name
        self.args = [str(a) for a in args]
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, text=True, errors="replace", bufsize=1,
        )
        self.pid = self.popen.pid
        self._readers = [
            threading.Thread(target=self._read, args=(stream, self.popen.stdout if stream == "stdout"
                                                      else self.popen.stderr), daemon=True)
            for stream in ("stdout", "stderr")
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: str, f) -> None:
        for line in f:
            with self._cond:
                self.lines[stream].append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        with self._cond:
            out = "\n".join(self.lines["stdout"])
            err = "\n".join(self.lines["stderr"])
        return f"--- {self.name} (pid {self.pid}, exit {self.popen.poll()}) stdout:\n{out}\n" \
               f"--- stderr:\n{err}"

    def wait_for(self, stream: str, needle: str, timeout: float, count: int = 1) -> list[str]:
        """Wait until ``count`` lines of ``stream`` contain ``needle``; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [ln for ln in self.lines[stream] if needle in ln]
                if len(hits) >= count:
                    return hits
                if self.popen.poll() is not None and not any(t.is_alive() for t in self._readers):
                    raise ProcError(f"{self.name} exited before printing {needle!r}\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProcError(f"{self.name} did not print {needle!r} within {timeout} s\n"
                                    f"{self.output()}")
                self._cond.wait(min(left, 0.05))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        for t in self._readers:
            t.join(timeout=2)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def run(args: Sequence[str], timeout: float = 10.0, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with a deadline and captured text output."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)
