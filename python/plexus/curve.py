"""CURVE keys for ZeroMQ peers of a router that has a tcp secret (docs/security.md).

A plexus router given a shared secret (``PLEXUS_SECRET``, ``PLEXUS_SECRET_FILE``,
``--secret-file``, ``[router] secret_file``) makes each of its ZeroMQ tcp endpoints a
CURVE server whose keys derive from that secret, and accepts only the one client key
that also derives from it. ``curve_keys(secret)`` gives the same keys as the router
(``plexus::transport::curve_keys``)::

    import zmq, plexus
    sock = zmq.Context.instance().socket(zmq.DEALER)
    for opt, value in plexus.curve_client_options(b"the shared secret, 16+ bytes").items():
        sock.setsockopt(opt, value)
    sock.connect("tcp://router-host:5560")

``Client`` and ``Service`` do this themselves for a tcp:// address when
``PLEXUS_SECRET`` or ``PLEXUS_SECRET_FILE`` is set.

Derivation: seed = BLAKE2b-256(label + secret), label ``b"plexus-curve-v1 server"`` or
``b"plexus-curve-v1 client"``; the seed is the Curve25519 secret key, the public key is
its scalar multiple of the base point (``zmq.curve_public``); keys are Z85 text.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Optional, Union

import zmq
from zmq.utils import z85

__all__ = ["MIN_SECRET_BYTES", "curve_client_options", "curve_keys", "secret_from_environment"]

#: the shortest secret accepted (as the router's)
MIN_SECRET_BYTES = 16
_MAX_SECRET_BYTES = 4096


def _as_bytes(secret: Union[str, bytes]) -> bytes:
    b = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(b) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret is too short: {len(b)} bytes, at least "
                         f"{MIN_SECRET_BYTES} are needed")
    if len(b) > _MAX_SECRET_BYTES:
        raise ValueError(f"the secret is too long: at most {_MAX_SECRET_BYTES} bytes")
    return b


def _pair(label: bytes, secret: bytes) -> tuple[bytes, bytes]:
    seed = hashlib.blake2b(label + secret, digest_size=32).digest()
    secret_z85 = z85.encode(seed)
    return zmq.curve_public(secret_z85), secret_z85


def curve_keys(secret: Union[str, bytes]) -> dict[str, bytes]:
    """The CURVE keys (Z85, 40 bytes each) that derive from ``secret``:
    ``server_public``, ``server_secret``, ``client_public``, ``client_secret``."""
    s = _as_bytes(secret)
    server_public, server_secret = _pair(b"plexus-curve-v1 server", s)
    client_public, client_secret = _pair(b"plexus-curve-v1 client", s)
    return {"server_public": server_public, "server_secret": server_secret,
            "client_public": client_public, "client_secret": client_secret}


def curve_client_options(secret: Union[str, bytes]) -> dict[int, bytes]:
    """The socket options that make a ZeroMQ socket a CURVE client of a router with
    ``secret``: ``{zmq.CURVE_SERVERKEY: ..., zmq.CURVE_PUBLICKEY: ..., zmq.CURVE_SECRETKEY: ...}``."""
    k = curve_keys(secret)
    return {zmq.CURVE_SERVERKEY: k["server_public"], zmq.CURVE_PUBLICKEY: k["client_public"],
            zmq.CURVE_SECRETKEY: k["client_secret"]}


def secret_from_environment() -> Optional[bytes]:
    """``$PLEXUS_SECRET``, else the content of the file named by ``$PLEXUS_SECRET_FILE``
    (a regular file owned by this user, mode 0600 or 0400, one trailing newline
    dropped), else None. Raises ValueError (short secret) or PermissionError (the
    file's owner or mode)."""
    value = os.environ.get("PLEXUS_SECRET")
    if value:
        return _as_bytes(value)
    path = os.environ.get("PLEXUS_SECRET_FILE")
    if not path:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"secret file {path}: is not a regular file")
        if st.st_uid != os.geteuid():
            raise PermissionError(f"secret file {path}: is owned by uid {st.st_uid}, not by "
                                  f"this user (uid {os.geteuid()})")
        if st.st_mode & 0o077:
            raise PermissionError(f"secret file {path}: has mode {st.st_mode & 0o7777:04o}: "
                                  f"group and others must have no access (chmod 600 {path})")
        data = os.read(fd, _MAX_SECRET_BYTES + 3)
    finally:
        os.close(fd)
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    return _as_bytes(data)
