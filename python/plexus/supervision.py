"""How a process started by ``plexus run`` talks to its supervisor.

    if plexus.supervised():                       # started by plexus run
        plexus.notify_ready()                     # READY=1 (a Service does it itself)
        plexus.notify_health({"in_flight": 3})    # HEALTH={"in_flight":3}
    record = plexus.log_record("info", "loaded", {"rows": 10}, "importer")

The same protocol as the C++ library (``include/plexus/rpc/supervision.hpp``):
the supervisor hands each child the write end of a pipe, named by
``$PLEXUS_NOTIFY_FD``, and reads one line per report from it: ``READY=1`` (the
process is ready) and ``HEALTH={json map}`` (a periodic health report). It also sets
``$PLEXUS_PROCESS`` (the process's name) and ``$PLEXUS_REPLICA`` (its replica
number). Outside ``plexus run`` (no or an invalid ``$PLEXUS_NOTIFY_FD``) every
notification is a harmless no-op.

Writes never block and never raise: a line the supervisor has no room for (a full
pipe), or that cannot be written (a closed pipe), is dropped. A line is written whole
or not at all (lines longer than ``PIPE_BUF`` are dropped: a pipe writes only those
atomically).

Structured logs go through the router instead: a record (:func:`log_record`)
published under the topic ``"log.<process>"`` (:func:`log_topic`);
:meth:`plexus.Service.log` and :meth:`plexus.Client.log` do both.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, Mapping, Optional

__all__ = [
    "LOG_LEVELS",
    "health_interval",
    "level_rank",
    "log_record",
    "log_topic",
    "notify_health",
    "notify_ready",
    "process_name",
    "process_replica",
    "supervised",
]

#: log levels, lowest first
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")
_RANKS = {name: i for i, name in enumerate(LOG_LEVELS)}

_PIPE_BUF = getattr(select, "PIPE_BUF", 512)
_FD_LIMIT = 1 << 20  # as the C++ library: larger numbers are not a descriptor

# (the $PLEXUS_NOTIFY_FD text, its descriptor) of the last look
_seen: tuple[Optional[str], int] = (None, -1)


def _notify_fd() -> int:
    """The descriptor named by $PLEXUS_NOTIFY_FD, or -1 (unset, empty or invalid)."""
    global _seen
    text = os.environ.get("PLEXUS_NOTIFY_FD")
    if text == _seen[0]:
        return _seen[1]
    fd = -1
    if text and text.isascii() and text.isdigit():
        v = int(text)
        if v < _FD_LIMIT:
            fd = v
    _seen = (text, fd)
    return fd


def supervised() -> bool:
    """True when ``$PLEXUS_NOTIFY_FD`` names a descriptor (started by plexus run)."""
    return _notify_fd() >= 0


def _write_line(line: str) -> None:
    fd = _notify_fd()
    if fd < 0:
        return
    data = line.encode("utf-8", "replace") + b"\n"
    if len(data) > _PIPE_BUF:  # could be written in part, corrupting the next line
        return
    try:
        # plexus run's pipe is non-blocking already; one made by someone else may not be.
        if os.get_blocking(fd):
            os.set_blocking(fd, False)
        os.write(fd, data)  # EINTR is retried by Python itself
    except OSError:  # BlockingIOError (full), BrokenPipeError (closed), EBADF, …
        pass


def notify_ready() -> None:
    """Write ``READY=1``: the process is ready. Never blocks, never raises.

    A :class:`plexus.Service` does it itself once the router has registered it; a
    process without a service calls it once it can do its work.
    """
    _write_line("READY=1")


def notify_health(report: Mapping[str, Any]) -> None:
    """Write ``HEALTH=<report as JSON>``. Never blocks, never raises: a report that
    cannot be serialised as JSON (NaN included), or that the supervisor has no room
    for, is lost."""
    if not supervised():
        return
    try:
        text = json.dumps(report, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError):
        return
    _write_line("HEALTH=" + text)


def health_interval() -> float:
    """Seconds between health reports: ``$PLEXUS_HEALTH_INTERVAL_MS`` (a positive
    integer) / 1000, else 1.0."""
    text = os.environ.get("PLEXUS_HEALTH_INTERVAL_MS", "")
    try:
        ms = int(text)
    except ValueError:
        ms = 0
    return ms / 1000.0 if ms > 0 else 1.0


def process_name(fallback: str = "") -> str:
    """The name the supervisor gave this process (``$PLEXUS_PROCESS``), else ``fallback``."""
    return os.environ.get("PLEXUS_PROCESS") or fallback


def process_replica() -> int:
    """The replica number the supervisor gave this process (``$PLEXUS_REPLICA``), else 0."""
    try:
        return int(os.environ.get("PLEXUS_REPLICA", "0"))
    except ValueError:
        return 0


def level_rank(level: str) -> int:
    """The place of a level name in :data:`LOG_LEVELS` (``"trace"`` 0 …), -1 if unknown."""
    return _RANKS.get(level, -1) if isinstance(level, str) else -1


def log_record(
    level: str,
    message: str,
    fields: Optional[Mapping[str, Any]] = None,
    process: Optional[str] = None,
) -> dict[str, Any]:
    """``{time, level, process, replica, pid, message, fields}`` for this process.

    ``time`` is seconds since the epoch (a float); ``process`` defaults to
    :func:`process_name` (fallback ``"python"``); ``fields`` that are not a mapping
    become ``{}``, and its keys become text. Raises ValueError for a level not in
    :data:`LOG_LEVELS`.
    """
    if level_rank(level) < 0:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LOG_LEVELS)})")
    if process is None:
        process = process_name("python")
    if isinstance(fields, Mapping):
        fields = {str(k): v for k, v in fields.items()}
    else:
        fields = {}
    return {
        "time": time.time(),
        "level": level,
        "process": str(process),
        "replica": process_replica(),
        "pid": os.getpid(),
        "message": str(message),
        "fields": fields,
    }


def log_topic(process: str) -> str:
    """``"log." + process``: the topic a process's log records are published under."""
    return "log." + process


def log_publication(
    level: str, message: str, fields: Mapping[str, Any], fallback: str
) -> tuple[str, dict[str, Any]]:
    """``(topic, record)`` of a log record published by a Client or a Service: the
    process is :func:`process_name` with ``fallback``. Raises like :func:`log_record`."""
    process = process_name(fallback)
    return log_topic(process), log_record(level, message, fields, process)
