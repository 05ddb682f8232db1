// The general CBOR codec of `plexus::value`, on which the messages (message.hpp) are
// built. Encoding writes exactly what Python's cbor2 writes for the same values (floats
// as 64-bit doubles, NaN/inf as half floats, shortest integer heads, maps in key
// order). Decoding validates strictly and returns typed errors; it never throws and
// never recurses: nesting goes on an explicit stack, bounded by `limits`.
//
//   std::vector<std::uint8_t> buf;
//   plexus::wire::encode_value(buf, plexus::value{{"op", "hello"}});
//   auto v = plexus::wire::decode_value(buf);  // result<value>
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::wire {

// Named limits; every violation names the limit in its error message.
struct limits {
  std::size_t max_message_bytes = 64u << 20;  // "max_message_bytes": the whole input
  std::size_t max_nesting_depth = 64;         // "max_nesting_depth" (arrays/maps)
};

// Appends one CBOR data item for `v`, as cbor2 would write it (`out` is not cleared).
// Binary subtypes are dropped (cbor2 writes no tag); a discarded value is written as null.
void encode_value(std::vector<std::uint8_t>& out, const value& v);

// Decodes exactly one CBOR data item. Errors (all errc::invalid_argument, except
// errc::resource_exhausted for the limits and allocation failure): malformed or
// truncated CBOR, trailing bytes, indefinite lengths, tags, unsupported simple values,
// map keys that are not text or repeat, text that is not UTF-8, negative integers
// below -2^63, nesting deeper than max_nesting_depth, input larger than
// max_message_bytes. Undefined reads as null; half and single floats as doubles.
result<value> decode_value(std::span<const std::uint8_t> bytes, const limits& lim = {});

}  // namespace plexus::wire
