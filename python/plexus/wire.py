"""The plexus / seed-001 message format: one CBOR array per message.

    payload = plexus.wire.encode_request(7, "add", (1, 2))   # [0, 7, "add", [1, 2]]
    kind, *rest = plexus.wire.decode(payload)
    plexus.wire.encode_response(7, None, 3)                    # [1, 7, null, 3]

- request ``[0, msgid, method, params]``, msgid an unsigned 32-bit integer
- response ``[1, msgid, error, result]``, error null or ``[message, context_map]``
- notification ``[2, method, params]``, never answered

Encoding is ``cbor2.dumps`` as is (plexus's C++ codec writes byte-identical output),
decoding ``cbor2.loads``; both run inline (they take about a microsecond).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import cbor2

from .errors import InvalidArgument

__all__ = [
    "REQUEST",
    "RESPONSE",
    "NOTIFICATION",
    "MSGID_MAX",
    "encode",
    "decode",
    "encode_request",
    "encode_response",
    "encode_notification",
    "encode_publication",
    "peek_request_id",
]

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2
MSGID_MAX = (1 << 32) - 1

encode = cbor2.dumps
decode = cbor2.loads
EncodeError = cbor2.CBOREncodeError
DecodeError = cbor2.CBORDecodeError


def encode_request(msgid: int, method: str, params: Sequence[Any]) -> bytes:
    return encode([REQUEST, msgid, method, params])


def encode_response(msgid: int, error: Optional[list], result: Any) -> bytes:
    return encode([RESPONSE, msgid, error, result])


def encode_notification(method: str, params: Sequence[Any]) -> bytes:
    return encode([NOTIFICATION, method, params])


def encode_publication(topic: str, args: Sequence[Any]) -> bytes:
    """The notification ``[2, topic, args]`` a publication is, checked: raises
    plexus.InvalidArgument when ``topic`` is not a str or ``args`` cannot be encoded."""
    if not isinstance(topic, str):
        raise InvalidArgument("a topic is a str", context={"topic": repr(topic)})
    try:
        return encode([NOTIFICATION, topic, args])
    except Exception as exc:
        raise InvalidArgument(
            f"cannot encode the arguments of publication {topic}: {exc}",
            context={"topic": topic},
        ) from exc


def peek_request_id(payload: bytes) -> Optional[int]:
    """The msgid of a payload that starts like a request (``84 00 <uint>``), else None.

    Used to answer a request whose body cannot be decoded, as the C++ service does.
    """
    if len(payload) < 3 or payload[0] != 0x84 or payload[1] != 0x00:
        return None
    head = payload[2]
    if head <= 0x17:
        return head
    width = {0x18: 1, 0x19: 2, 0x1A: 4}.get(head)
    if width is None or len(payload) < 3 + width:
        return None
    return int.from_bytes(payload[3 : 3 + width], "big")
