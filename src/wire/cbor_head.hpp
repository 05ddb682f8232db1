// Internal to the wire layer: the CBOR head and text writers shared by the general
// codec (cbor.cpp) and the message encoder (message.cpp). Inline, so that both encode
// with no call per head. Not installed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace plexus::wire::detail {

// CBOR major types (RFC 8949 §3.1).
enum major : std::uint8_t {
  major_unsigned = 0,
  major_negative = 1,
  major_bytes = 2,
  major_text = 3,
  major_array = 4,
  major_map = 5,
  major_tag = 6,
  major_simple = 7,
};

// Writes a head with the shortest argument encoding, as cbor2 does.
inline void put_head(std::vector<std::uint8_t>& out, std::uint8_t mt, std::uint64_t n) {
  const auto ib = static_cast<std::uint8_t>(mt << 5);
  if (n < 24) {
    out.push_back(static_cast<std::uint8_t>(ib | n));
    return;
  }
  std::array<std::uint8_t, 9> b{};
  std::size_t len = 0;
  if (n <= 0xff) {
    b[0] = ib | 24;
    len = 1;
  } else if (n <= 0xffff) {
    b[0] = ib | 25;
    len = 2;
  } else if (n <= 0xffffffff) {
    b[0] = ib | 26;
    len = 4;
  } else {
    b[0] = ib | 27;
    len = 8;
  }
  for (std::size_t i = 0; i < len; ++i) {
    b[len - i] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  out.insert(out.end(), b.begin(), b.begin() + 1 + len);
}

inline void put_text(std::vector<std::uint8_t>& out, std::string_view s) {
  put_head(out, major_text, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace plexus::wire::detail
