"""A stand-in for seed 001's Router, written from its description.

    python3 seed_router.py --frontend ipc:///tmp/p/front.sock --backend ipc:///tmp/p/back.sock
    # prints "seed router ready" once both sockets are bound; SIGTERM stops it

Two ROUTER sockets (identities ``router-frontend`` / ``router-backend``,
``ZMQ_ROUTER_HANDOVER = 1``), one routing loop per direction with the same rule:
a message ``[sender_id, recipient_id, payload]`` received on one socket is sent as
``[recipient_id, sender_id, payload]`` on the other; a lone empty frame (a DEALER's
connect probe) is skipped; loopback (sender == recipient) is refused. Like 001's
Router it has no error handling: a message to an unknown recipient is dropped
silently (no ``ROUTER_MANDATORY``) and the caller waits for its deadline.

The plexus Python package must work against this router exactly as against the
plexus router (the tests run the package's client/service pairs over both).
"""

from __future__ import annotations

import argparse
import signal
import sys

import zmq


def run(frontend: str, backend: str) -> None:
    ctx = zmq.Context()
    front = ctx.socket(zmq.ROUTER)
    back = ctx.socket(zmq.ROUTER)
    for sock, ident, addr in ((front, b"router-frontend", frontend),
                              (back, b"router-backend", backend)):
        sock.setsockopt(zmq.IDENTITY, ident)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(addr)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    print("seed router ready", flush=True)
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    other = {front: back, back: front}
    while not stopping:
        try:
            ready = dict(poller.poll(200))
        except zmq.ZMQError:
            continue
        for sock in (front, back):
            if sock not in ready:
                continue
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                sender_id, *rest = frames
                if rest == [b""]:
                    continue  # connect probe
                if len(rest) != 2:
                    print(f"seed router: dropped a {len(frames)}-frame message", file=sys.stderr)
                    continue
                recipient_id, payload = rest
                if recipient_id == sender_id:
                    continue
                other[sock].send_multipart([recipient_id, sender_id, payload])
    front.close()
    back.close()
    ctx.term()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frontend", required=True)
    ap.add_argument("--backend", required=True)
    args = ap.parse_args()
    run(args.frontend, args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
