// Decodes and re-encodes wire messages, for the cbor2 interop test.
//
// stdin:  repeated [u32 little-endian length][message bytes] until EOF.
// stdout: per message, [u8 status][u32 little-endian length][bytes]:
//         status 0: the message re-encoded by plexus::wire::encode;
//         status 1: UTF-8 text "code: message" of the decode error.
// Exits 0 after a clean EOF, 2 if stdin ends inside a length prefix or a message.
//
//   printf '\x04\x00\x00\x00\x83\x02\x61\x6d' | plexus-wire-roundtrip | xxd
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "plexus/wire/message.hpp"

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t n) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
}

}  // namespace

int main() {
  std::vector<std::uint8_t> in((std::istreambuf_iterator<char>(std::cin)),
                               std::istreambuf_iterator<char>());
  std::vector<std::uint8_t> out;
  std::size_t pos = 0;
  while (pos < in.size()) {
    if (in.size() - pos < 4) {
      std::cerr << "wire_roundtrip: input ends inside a length prefix\n";
      return 2;
    }
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i)
      len |= std::uint32_t{in[pos + i]} << (8 * i);
    pos += 4;
    if (in.size() - pos < len) {
      std::cerr << "wire_roundtrip: input ends inside a message\n";
      return 2;
    }
    auto m = plexus::wire::decode(std::span(in).subspan(pos, len));
    pos += len;
    if (m) {
      std::vector<std::uint8_t> body;
      plexus::wire::encode(body, *m);
      out.push_back(0);
      put_u32(out, static_cast<std::uint32_t>(body.size()));
      out.insert(out.end(), body.begin(), body.end());
    } else {
      const std::string text =
          std::string(plexus::to_string(m.error().code)) + ": " + m.error().message;
      out.push_back(1);
      put_u32(out, static_cast<std::uint32_t>(text.size()));
      out.insert(out.end(), text.begin(), text.end());
    }
  }
  std::cout.write(reinterpret_cast<const char*>(out.data()),
                  static_cast<std::streamsize>(out.size()));
  std::cout.flush();
  return std::cout ? 0 : 1;
}
