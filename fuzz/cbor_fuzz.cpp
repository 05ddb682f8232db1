// libFuzzer target: the CBOR codec (wire/cbor.hpp) on untrusted bytes.
// Whatever decodes must re-encode to bytes that decode to the same value: the encoding
// of the first decode and of the second are compared (comparing values would trip
// over NaN != NaN).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "plexus/wire/cbor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wire = plexus::wire;
  auto decoded = wire::decode_value(std::span<const std::uint8_t>(data, size));
  if (!decoded) return 0;
  std::vector<std::uint8_t> once;
  wire::encode_value(once, *decoded);
  auto again = wire::decode_value(once);
  if (!again) std::abort();  // our own encoding must decode
  std::vector<std::uint8_t> twice;
  wire::encode_value(twice, *again);
  if (once != twice) std::abort();
  return 0;
}
