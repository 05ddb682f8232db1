// Bytes in tests: written and compared as hex, binary values built from a list, and
// the check that an error has a code and says something.
//
//   EXPECT_EQ(plexus::test::to_hex(out), "83016161f6");
//   auto v = decode_value(plexus::test::from_hex("82 01 02"));  // spaces are skipped
//   EXPECT_ERROR(v.error(), errc::invalid_argument, "truncated");
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "plexus/wire/error.hpp"

namespace plexus::test {

using bytes = std::vector<std::uint8_t>;

// Lower-case hex digits, two a byte; spaces between bytes are skipped.
inline bytes from_hex(std::string_view hex) {
  bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    if (hex[i] == ' ') {
      --i;
      continue;
    }
    out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

inline std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

// A CBOR byte string value.
inline value bin(std::initializer_list<std::uint8_t> b) {
  return value::binary(bytes(b));
}

}  // namespace plexus::test

// Expects `err` (a plexus::error) to have code `errc_` and a message containing `substring`.
#define EXPECT_ERROR(err, errc_, substring)                                 \
  do {                                                                      \
    const plexus::error e_ = (err);                                         \
    EXPECT_EQ(e_.code, errc_) << e_.message;                                \
    EXPECT_NE(e_.message.find(substring), std::string::npos) << e_.message; \
  } while (0)
