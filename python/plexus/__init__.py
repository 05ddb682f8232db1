"""plexus for Python: remote calls through a plexus router's ZeroMQ endpoints.

    async with plexus.Client("ipc:///tmp/p/front.sock") as client:
        print(await client.call("calc", "add", 1, 2))                  # 3
    # a service: svc = plexus.Service("ipc:///tmp/p/back.sock", "calc"); await svc.serve()
    # publish/subscribe: await client.publish("sensor.temp", 21.5);
    #   plexus.Subscriber("ipc:///tmp/p/subs.sock"); plexus.DatagramSender("udp://host:port")
    # under `plexus run`: a Service reports READY=1 and its health by itself;
    #   svc.log("info", "text", key=value) / await client.log(...) publish log records

The router is started with ``plexus router --listen ipc://DIR/native.sock
--zmq-frontend ipc://DIR/front.sock --zmq-backend ipc://DIR/back.sock``: clients
connect to the frontend, services to the backend (subscribers to
``--zmq-subscribers``). Frames and messages are those of seed 001
(``[recipient, payload]`` out, ``[sender, payload]`` in; CBOR
``[0, msgid, method, params]`` / ``[1, msgid, error, result]`` /
``[2, method, params]``), so this package also works with a 001 Router (except for
publications, which are plexus's: a notification sent to ``"*"``), and 001 clients
and services work with the plexus router. Needs pyzmq and cbor2 only
(Debian: python3-zmq, python3-cbor2); import it from the repository with
``sys.path.insert(0, "<repo>/python")``.
"""

from . import supervision, wire
from .client import Client
from .curve import curve_client_options, curve_keys
from .errors import (
    CODES,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RemoteError,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
    error_from_wire,
)
from .http import Request, Response
from .pubsub import MAX_DATAGRAM_BYTES, DatagramSender, Subscriber
from .service import Service
from .supervision import *  # noqa: F401,F403  (LOG_LEVELS, log_record, notify_ready, ...)

del health_interval  # noqa: F821  (stays plexus.supervision.health_interval only)

__all__ = [
    "CODES",
    "Client",
    "DatagramSender",
    "DeadlineExceeded",
    "Internal",
    "InvalidArgument",
    "MAX_DATAGRAM_BYTES",
    "NotFound",
    "PermissionDenied",
    "RemoteError",
    "Request",
    "ResourceExhausted",
    "Response",
    "Service",
    "Subscriber",
    "Unavailable",
    "Unimplemented",
    "curve_client_options",
    "curve_keys",
    "error_from_wire",
    "supervision",
    "wire",
    # the helpers for processes under `plexus run`
    *(name for name in supervision.__all__ if name != "health_interval"),
]

__version__ = "0.1.0"
