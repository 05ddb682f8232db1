"""Values of every CBOR type plexus carries, and a strict comparison for echo tests.

    assert same(echoed, ECHO_VALUES["int64_min"])   # type-exact: 1 != 1.0, b"a" != "a"
"""

from __future__ import annotations

import math
from typing import Any

MIB = 1 << 20

ECHO_VALUES: dict[str, Any] = {
    "uint_0": 0,
    "uint_23": 23,
    "uint_24": 24,
    "uint_255": 255,
    "uint_65536": 65536,
    "uint_2_32": 2**32,
    "int64_max": 2**63 - 1,
    "uint64_max": 2**64 - 1,
    "nint_1": -1,
    "nint_25": -25,
    "nint_2_31": -(2**31),
    "int64_min": -(2**63),
    "float_1_5": 1.5,
    "float_2_0": 2.0,
    "float_neg_zero": -0.0,
    "float_0_1": 0.1,
    "float_1e300": 1e300,
    "float_neg_tiny": -5e-324,
    "float_inf": math.inf,
    "float_neg_inf": -math.inf,
    "float_nan": math.nan,
    "text_empty": "",
    "text_ascii": "hello",
    "text_non_ascii": "é日本🙂 ñ",
    "text_long": "ü" * 40000,
    "bytes_empty": b"",
    "bytes_short": b"\x00\x01\xfe\xff",
    "bytes_1mib": bytes((i * 31 + 7) & 0xFF for i in range(MIB)),
    "null": None,
    "true": True,
    "false": False,
    "array_empty": [],
    "array_mixed": [1, -1, 1.5, "a", b"b", None, True, False],
    "map_empty": {},
    "map": {"a": 1, "b": "two", "c": [3], "é": None, "z": b"\x00"},
    "nested": {"args": [[1, [2, [3, {"deep": [b"\x01", {}]}]]]], "z": {"y": {"x": -0.0}}},
}

# The subset a JSON command line can express (plexus call parses each argument as JSON).
JSON_VALUES: dict[str, Any] = {
    k: v for k, v in ECHO_VALUES.items()
    if k in {"uint_0", "uint_24", "uint_2_32", "int64_max", "uint64_max", "nint_1",
             "int64_min", "float_1_5", "float_2_0", "float_0_1", "float_1e300",
             "text_ascii", "text_non_ascii", "null", "true", "false", "array_empty",
             "map_empty"}
}
JSON_VALUES["array_mixed"] = [1, -1, 1.5, "a", None, True, False, "ü"]
JSON_VALUES["map"] = {"a": 1, "b": "two", "c": [3], "é": None}
JSON_VALUES["nested"] = {"args": [[1, [2, [3, {"deep": [-7, {}]}]]]], "z": {"y": {"x": 0.5}}}


def same(a: Any, b: Any, *, ordered_maps: bool = False) -> bool:
    """Equal with identical types all the way down (NaN equals NaN, -0.0 != 0.0);
    ``ordered_maps``: maps must also list their keys in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, ordered_maps=ordered_maps)
                                        for x, y in zip(a, b))
    if isinstance(a, dict):
        keys_match = list(a) == list(b) if ordered_maps else a.keys() == b.keys()
        return keys_match and all(same(a[k], b[k], ordered_maps=ordered_maps) for k in a)
    return a == b
