"""Byte-for-byte interop between plexus's CBOR codec and Python's cbor2.

Every case below is piped, in one process invocation, through plexus-wire-roundtrip,
which decodes each message with plexus::wire::decode and re-encodes it with
plexus::wire::encode (or reports the decode error). Valid messages must come back
byte-identical to what cbor2.dumps wrote; malformed ones must come back as errors with
the expected code.

The binary is found in $PLEXUS_BIN_DIR (default: <repo>/build/bin). A missing binary
is a failure, not a skip: this test is the proof of wire compatibility.
"""

import math
import os
import struct
import subprocess
from pathlib import Path

import cbor2
import pytest
from plexus.errors import CODES
from support.values import ECHO_VALUES
from support.values import same as values_same

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("PLEXUS_BIN_DIR", REPO / "build" / "bin"))
ROUNDTRIP = BIN_DIR / "plexus-wire-roundtrip"

# Scalars of every CBOR type plexus carries: the echo tests' values (support/values.py)
# and the head-size boundaries and texts only this test writes, in this order. Floats
# are written by cbor2 as doubles, except NaN and the infinities (half floats).
_OWN_SCALARS = {
    "uint_256": 256,
    "uint_65535": 65535,
    "uint_2_63": 2**63,
    "uint_max": 2**64 - 1,
    "nint_24": -24,
    "nint_256": -256,
    "nint_257": -257,
    "nint_2_32": -(2**32),
    "text_non_ascii": "é日本🙂",
    "text_long": "x" * 70000,
}
SCALARS = {
    name: _OWN_SCALARS[name] if name in _OWN_SCALARS else ECHO_VALUES[name]
    for name in (
        "uint_0 uint_23 uint_24 uint_255 uint_256 uint_65535 uint_65536 uint_2_32 uint_2_63 "
        "uint_max nint_1 nint_24 nint_25 nint_256 nint_257 nint_2_32 int64_min float_1_5 "
        "float_neg_zero float_1e300 float_0_1 float_nan float_inf float_neg_inf text_empty "
        "text_ascii text_non_ascii text_long bytes_empty bytes_short bytes_1mib null true false"
    ).split()
}

CONTAINERS = {
    "array_empty": [],
    "array_mixed": [1, -1, 1.5, "a", b"b", None, True, False],
    "array_24": list(range(24)),
    "map_empty": {},
    # plexus maps iterate in key order, so keys are inserted sorted.
    "map_sorted": {"a": 1, "b": "two", "c": [3], "é": None},
    "nested": {"args": [[1, [2, [3, {"deep": [b"\x01", {}]}]]]], "z": {"y": {"x": -0.0}}},
}


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def same(a, b) -> bool:
    """Type-exact equality (see support.values.same) that also requires map keys in order."""
    return values_same(a, b, ordered_maps=True)


# ---- valid messages: plexus must write back exactly cbor2's bytes ---------------

VALID = {}
for _name, _v in {**SCALARS, **CONTAINERS}.items():
    VALID[f"request_{_name}"] = [0, 7, "svc.method", [_v]]
    VALID[f"response_{_name}"] = [1, 7, None, _v]
    VALID[f"notification_{_name}"] = [2, "topic", [_v, _v] if _name != "bytes_1mib" else [_v]]
VALID["request_all_scalars"] = [
    0,
    1,
    "all",
    [v for k, v in SCALARS.items() if k not in ("bytes_1mib", "text_long")],
]
VALID["response_all_in_a_map"] = [
    1,
    2,
    None,
    dict(sorted({k: v for k, v in SCALARS.items() if k != "bytes_1mib"}.items())),
]
for _id in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1):
    VALID[f"request_msgid_{_id}"] = [0, _id, "m", []]
    VALID[f"response_msgid_{_id}"] = [1, _id, None, None]
VALID["request_empty_method"] = [0, 1, "", []]
VALID["notification_empty_params"] = [2, "n", []]
VALID["error_response"] = [1, 9, ["no method \"sub\"", {"code": "not_found", "service": "calc"}], None]
VALID["error_response_rich_context"] = [
    1,
    10,
    ["limit", {"code": "resource_exhausted", "limit": "max_queue", "value": 1024}],
    None,
]
for _code in CODES:
    VALID[f"error_code_{_code}"] = [1, 11, [f"{_code} happened", {"code": _code}], None]

# ---- inputs plexus accepts but rewrites, exactly as cbor2 would -----------------
# Expected output: cbor2.dumps(cbor2.loads(input)).

CANONICALIZED = {
    # A half float, a single float and a non-shortest integer head.
    "half_single_and_long_heads": b"\x84\x00\x01\x61m\x84\xf9\x3e\x00\xfa\x3f\xc0\x00\x00"
    b"\x18\x05\x19\x00\x01",
    "half_nan_and_infinities": b"\x83\x02\x61n\x83\xf9\x7e\x00\xf9\x7c\x00\xf9\xfc\x00",
    "single_nan": b"\x83\x02\x61n\x81\xfa\x7f\xc0\x00\x00",
    "long_msgid_head": b"\x84\x01\x1a\x00\x00\x00\x05\xf6\xf6",
}

# ---- inputs plexus rewrites on purpose --------------------------------------------
# An error's code is authoritative: an unknown or missing code reads as "internal"
# and is written back as such.

REWRITTEN = {
    "error_unknown_code": (
        [1, 3, ["teapot", {"code": "i_am_a_teapot", "x": 1}], None],
        [1, 3, ["teapot", {"code": "internal", "x": 1}], None],
    ),
    "error_missing_code": (
        [1, 4, ["bare", {}], None],
        [1, 4, ["bare", {"code": "internal"}], None],
    ),
    # An error response's result is written as null.
    "error_with_result": (
        [1, 5, ["both", {"code": "internal"}], 42],
        [1, 5, ["both", {"code": "internal"}], None],
    ),
}

# ---- malformed inputs: (bytes, code, substring of the message) --------------------

REQUEST_HEAD = b"\x84\x00\x01\x61m"

MALFORMED = {
    "request_arity_3": (cbor2.dumps([0, 1, "m"]), "invalid_argument",
                        "request must be an array of 4 elements, got 3"),
    "response_arity_5": (cbor2.dumps([1, 1, None, None, None]), "invalid_argument",
                         "response must be an array of 4 elements, got 5"),
    "notification_arity_4": (cbor2.dumps([2, "n", [], 1]), "invalid_argument",
                             "notification must be an array of 3 elements, got 4"),
    "msgid_2_32": (cbor2.dumps([0, 2**32, "m", []]), "invalid_argument",
                   "msgid must be an unsigned integer below 2^32"),
    "msgid_negative": (cbor2.dumps([1, -1, None, None]), "invalid_argument",
                       "msgid must be an unsigned integer below 2^32"),
    "msgid_text": (cbor2.dumps([0, "1", "m", []]), "invalid_argument",
                   "msgid must be an unsigned integer below 2^32"),
    "trailing_byte": (cbor2.dumps([0, 1, "m", []]) + b"\x00", "invalid_argument",
                      "trailing bytes"),
    "deep_nesting_1000": (REQUEST_HEAD + b"\x81" * 1000 + b"\x00", "resource_exhausted",
                          "max_nesting_depth"),
    "unknown_kind_7": (cbor2.dumps([7, 1, "m", []]), "invalid_argument",
                       "unknown message kind 7"),
    "unknown_kind_3": (cbor2.dumps([3, "x", []]), "invalid_argument", "unknown message kind 3"),
    "kind_text": (cbor2.dumps(["0", 1, "m", []]), "invalid_argument",
                  "message kind must be an unsigned integer"),
    "not_an_array": (cbor2.dumps({"kind": 0}), "invalid_argument",
                     "message must be a CBOR array"),
    "empty_array": (cbor2.dumps([]), "invalid_argument", "empty array"),
    "method_not_text": (cbor2.dumps([0, 1, b"m", []]), "invalid_argument",
                        "method must be a text string"),
    "params_not_array": (cbor2.dumps([0, 1, "m", {"a": 1}]), "invalid_argument",
                         "params must be an array"),
    "error_not_pair": (cbor2.dumps([1, 1, "boom", None]), "invalid_argument",
                       "error must be null or [message, context]"),
    "error_context_not_map": (cbor2.dumps([1, 1, ["boom", []], None]), "invalid_argument",
                              "error must be null or [message, context]"),
    "tag_datetime": (cbor2.dumps([0, 1, "m", [cbor2.CBORTag(1, 0)]]), "invalid_argument",
                     "CBOR tags are not supported"),
    "bignum_2_64": (cbor2.dumps([0, 1, "m", [2**64]]), "invalid_argument",
                    "CBOR tags are not supported"),
    "negative_below_int64": (cbor2.dumps([0, 1, "m", [-(2**64)]]), "invalid_argument",
                             "below -2^63"),
    "map_key_not_text": (cbor2.dumps([0, 1, "m", [{1: 2}]]), "invalid_argument",
                         "map keys must be text strings"),
    "invalid_utf8": (REQUEST_HEAD + b"\x81\x62\xc3\x28", "invalid_argument",
                     "not valid UTF-8"),
    "indefinite_array": (REQUEST_HEAD + b"\x9f\x01\xff", "invalid_argument",
                         "indefinite-length"),
    "truncated": (cbor2.dumps([0, 1, "method", [1, 2, 3]])[:-2], "invalid_argument",
                  "truncated CBOR"),
    "huge_claimed_length": (REQUEST_HEAD + b"\x5b" + b"\xff" * 8, "invalid_argument",
                            "does not fit"),
    "empty_input": (b"", "invalid_argument", "truncated CBOR"),
}


def build_cases():
    """Returns [(name, input bytes, expectation)] in the order sent."""
    cases = []
    for name, msg in VALID.items():
        cases.append((name, cbor2.dumps(msg), ("ok", cbor2.dumps(msg), msg)))
    for name, raw in CANONICALIZED.items():
        decoded = cbor2.loads(raw)
        cases.append((name, raw, ("ok", cbor2.dumps(decoded), decoded)))
    for name, (msg, want) in REWRITTEN.items():
        cases.append((name, cbor2.dumps(msg), ("ok", cbor2.dumps(want), want)))
    for name, (raw, code, text) in MALFORMED.items():
        cases.append((name, raw, ("error", code, text)))
    return cases


CASES = build_cases()


@pytest.fixture(scope="module")
def outputs():
    """Runs every case through one plexus-wire-roundtrip process; name -> (status, body)."""
    if not ROUNDTRIP.is_file():
        pytest.fail(
            f"{ROUNDTRIP} not found: build the plexus-wire-roundtrip target or set "
            "PLEXUS_BIN_DIR to the directory holding it"
        )
    stdin = b"".join(frame(raw) for _, raw, _ in CASES)
    proc = subprocess.run(
        [str(ROUNDTRIP)], input=stdin, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out, pos, results = proc.stdout, 0, {}
    for name, _, _ in CASES:
        assert pos + 5 <= len(out), f"output ends before the answer to {name}"
        status, length = out[pos], struct.unpack_from("<I", out, pos + 1)[0]
        pos += 5
        results[name] = (status, out[pos : pos + length])
        pos += length
    assert pos == len(out), f"{len(out) - pos} unexpected bytes after the last answer"
    return results


def params(kind):
    return [pytest.param(*c, id=c[0]) for c in CASES if c[2][0] == kind]


@pytest.mark.parametrize("name,raw,expect", params("ok"))
def test_valid_messages_round_trip_byte_for_byte(outputs, name, raw, expect):
    _, want_bytes, want_value = expect
    status, body = outputs[name]
    assert status == 0, f"{name} was rejected: {body.decode(errors='replace')}"
    assert body == want_bytes, (
        f"{name}: plexus wrote {body[:64].hex()}..., cbor2 wrote {want_bytes[:64].hex()}..."
    )
    assert same(cbor2.loads(body), want_value)


@pytest.mark.parametrize("name,raw,expect", params("error"))
def test_malformed_messages_are_rejected_with_a_typed_error(outputs, name, raw, expect):
    _, code, text = expect
    status, body = outputs[name]
    message = body.decode("utf-8")
    assert status == 1, f"{name} was accepted and re-encoded as {body[:64].hex()}"
    assert message.startswith(code + ": "), message
    assert text in message, message


def test_float_encodings_match_cbor2():
    """Documents the cbor2 behaviour plexus mirrors; fails if cbor2 ever changes it."""
    assert cbor2.dumps(1.5).hex() == "fb3ff8000000000000"
    assert cbor2.dumps(-0.0).hex() == "fb8000000000000000"
    assert cbor2.dumps(math.nan).hex() == "f97e00"
    assert cbor2.dumps(math.inf).hex() == "f97c00"
    assert cbor2.dumps(-math.inf).hex() == "f9fc00"
