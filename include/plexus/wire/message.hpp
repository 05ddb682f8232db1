// The three messages of the wire protocol (docs/protocol.md), as CBOR arrays:
//   request      [0, msgid, method, params]
//   response     [1, msgid, error, result]     error: null or [message, context]
//   notification [2, method, params]
// Built on the general CBOR codec (cbor.hpp): the same cbor2-identical encoding and
// strict decoding, plus the checks of each message's shape.
//
//   std::vector<std::uint8_t> buf;
//   plexus::wire::encode(buf, plexus::wire::request{7, "add", {1, 2}});
//   auto m = plexus::wire::decode(buf);  // result<message>
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "plexus/wire/cbor.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::wire {

enum class message_kind : std::uint8_t { request = 0, response = 1, notification = 2 };

struct request {
  std::uint32_t msgid = 0;
  std::string method;
  value params = value::array();  // always an array
};

struct response {
  std::uint32_t msgid = 0;
  std::optional<plexus::error> error;  // set: an error response; result is null
  value result;
};

struct notification {
  std::string method;
  value params = value::array();
};

using message = std::variant<request, response, notification>;

// Appends the encoding to `out` (which is not cleared).
void encode(std::vector<std::uint8_t>& out, const request& m);
void encode(std::vector<std::uint8_t>& out, const response& m);
void encode(std::vector<std::uint8_t>& out, const notification& m);
void encode(std::vector<std::uint8_t>& out, const message& m);

// Decodes one whole message: decode_value's errors (the limits are checked first),
// then the message's shape, all errc::invalid_argument: not an array, wrong array
// length, unknown message kind, msgid not an unsigned integer or above 2^32-1, method
// not text, params not an array, error neither null nor [text, map].
result<message> decode(std::span<const std::uint8_t> bytes, const limits& lim = {});

// What the router needs to know of a payload without decoding it: its kind and,
// for requests and responses, its msgid. Reads only the first few bytes; nullopt
// when those bytes are not the start of a valid message.
struct header {
  message_kind kind;
  std::uint32_t msgid = 0;  // 0 for notifications
};
std::optional<header> peek(std::span<const std::uint8_t> bytes) noexcept;

// The method of a notification (a publication's topic) read in place, without
// decoding its params: nullopt unless `bytes` starts with [2, text, ...] and the
// text fits in `bytes`. The view points into `bytes`. The text is not checked for
// UTF-8 here; topics are matched as bytes.
std::optional<std::string_view> peek_method(std::span<const std::uint8_t> bytes) noexcept;

// Builds the encoded error response [1, msgid, [message, context], null].
std::vector<std::uint8_t> encode_error_response(std::uint32_t msgid, const plexus::error& e);

}  // namespace plexus::wire
