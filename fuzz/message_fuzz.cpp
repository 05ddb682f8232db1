// libFuzzer target: the wire messages (wire/message.hpp) on untrusted bytes — what the
// router and every peer run on each payload. Checks, besides "no crash": the router's
// in-place readers (peek, peek_method) agree with the full decoder on every message
// it accepts, and an accepted message re-encodes to bytes that decode the same way.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "plexus/wire/message.hpp"

namespace {

namespace wire = plexus::wire;

void check_peek_agrees(std::span<const std::uint8_t> bytes, const wire::message& m) {
  auto h = wire::peek(bytes);
  if (!h) std::abort();
  if (const auto* req = std::get_if<wire::request>(&m)) {
    if (h->kind != wire::message_kind::request || h->msgid != req->msgid) std::abort();
  } else if (const auto* resp = std::get_if<wire::response>(&m)) {
    if (h->kind != wire::message_kind::response || h->msgid != resp->msgid) std::abort();
  } else {
    const auto& note = std::get<wire::notification>(m);
    if (h->kind != wire::message_kind::notification) std::abort();
    auto method = wire::peek_method(bytes);
    if (!method || *method != note.method) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  // The in-place readers must be safe on anything, accepted or not.
  (void)wire::peek(bytes);
  (void)wire::peek_method(bytes);
  auto m = wire::decode(bytes);
  if (!m) return 0;
  check_peek_agrees(bytes, *m);
  std::vector<std::uint8_t> once;
  wire::encode(once, *m);
  auto again = wire::decode(once);
  if (!again) std::abort();
  std::vector<std::uint8_t> twice;
  wire::encode(twice, *again);
  if (once != twice) std::abort();
  return 0;
}
