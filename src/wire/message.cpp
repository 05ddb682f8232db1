#include "plexus/wire/message.hpp"

#include <limits>
#include <utility>

#include "wire/cbor_head.hpp"

namespace plexus::wire {
namespace {

using namespace detail;

// ---- message validation -------------------------------------------------------

// The CBOR name of a value's type, for error messages.
std::string cbor_type(const value& v) {
  switch (v.type()) {
    case value::value_t::null:
      return "null";
    case value::value_t::boolean:
      return "bool";
    case value::value_t::number_unsigned:
      return "unsigned integer";
    case value::value_t::number_integer:
      return v.get<std::int64_t>() < 0 ? "negative integer" : "unsigned integer";
    case value::value_t::number_float:
      return "float";
    case value::value_t::string:
      return "text string";
    case value::value_t::binary:
      return "byte string";
    case value::value_t::array:
      return "array of " + std::to_string(v.size()) + " elements";
    case value::value_t::object:
      return "map";
    case value::value_t::discarded:
      break;
  }
  return "invalid value";
}

std::optional<std::uint64_t> as_unsigned(const value& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return v.get<std::uint64_t>();
  return std::nullopt;
}

plexus::error invalid(std::string msg) {
  return {errc::invalid_argument, std::move(msg)};
}

result<std::uint32_t> read_msgid(const value& v) {
  auto id = as_unsigned(v);
  if (!id || *id > std::numeric_limits<std::uint32_t>::max()) {
    return invalid("msgid must be an unsigned integer below 2^32, got " +
                   (id ? std::to_string(*id) : cbor_type(v)));
  }
  return static_cast<std::uint32_t>(*id);
}

result<std::string> read_method(value& v) {
  if (!v.is_string()) return invalid("method must be a text string, got " + cbor_type(v));
  return std::move(v.get_ref<std::string&>());
}

result<value> read_params(value& v) {
  if (!v.is_array()) return invalid("params must be an array, got " + cbor_type(v));
  return std::move(v);
}

result<message> to_message(value& v) {
  if (!v.is_array()) return invalid("message must be a CBOR array, got " + cbor_type(v));
  auto& a = v.get_ref<value::array_t&>();
  if (a.empty()) return invalid("message must not be an empty array");
  const auto kind = as_unsigned(a[0]);
  if (!kind) return invalid("message kind must be an unsigned integer, got " + cbor_type(a[0]));
  const auto arity = [&](const char* what, std::size_t n) -> std::optional<plexus::error> {
    if (a.size() == n) return std::nullopt;
    return invalid(std::string(what) + " must be an array of " + std::to_string(n) +
                   " elements, got " + std::to_string(a.size()));
  };
  switch (*kind) {
    case static_cast<std::uint64_t>(message_kind::request): {
      if (auto e = arity("request", 4)) return std::move(*e);
      auto id = read_msgid(a[1]);
      if (!id) return std::move(id).error();
      auto method = read_method(a[2]);
      if (!method) return std::move(method).error();
      auto params = read_params(a[3]);
      if (!params) return std::move(params).error();
      return message(request{*id, std::move(*method), std::move(*params)});
    }
    case static_cast<std::uint64_t>(message_kind::response): {
      if (auto e = arity("response", 4)) return std::move(*e);
      auto id = read_msgid(a[1]);
      if (!id) return std::move(id).error();
      response r{*id, std::nullopt, std::move(a[3])};
      const value& err = a[2];
      if (!err.is_null()) {
        if (!err.is_array() || err.size() != 2) {
          return invalid("error must be null or [message, context], got " + cbor_type(err));
        }
        if (!err[0].is_string()) {
          return invalid(
              "error must be null or [message, context]: message must be a text "
              "string, got " +
              cbor_type(err[0]));
        }
        if (!err[1].is_object()) {
          return invalid("error must be null or [message, context]: context must be a map, got " +
                         cbor_type(err[1]));
        }
        r.error = plexus::error::from_wire(err);
      }
      return message(std::move(r));
    }
    case static_cast<std::uint64_t>(message_kind::notification): {
      if (auto e = arity("notification", 3)) return std::move(*e);
      auto method = read_method(a[1]);
      if (!method) return std::move(method).error();
      auto params = read_params(a[2]);
      if (!params) return std::move(params).error();
      return message(notification{std::move(*method), std::move(*params)});
    }
    default:
      return invalid("unknown message kind " + std::to_string(*kind));
  }
}

}  // namespace

// ---- public entry points ---------------------------------------------------------

void encode(std::vector<std::uint8_t>& out, const request& m) {
  out.push_back(0x84);
  out.push_back(static_cast<std::uint8_t>(message_kind::request));
  put_head(out, major_unsigned, m.msgid);
  put_text(out, m.method);
  encode_value(out, m.params);
}

void encode(std::vector<std::uint8_t>& out, const response& m) {
  out.push_back(0x84);
  out.push_back(static_cast<std::uint8_t>(message_kind::response));
  put_head(out, major_unsigned, m.msgid);
  if (m.error) {
    encode_value(out, m.error->to_wire());
    out.push_back(0xf6);
  } else {
    out.push_back(0xf6);
    encode_value(out, m.result);
  }
}

void encode(std::vector<std::uint8_t>& out, const notification& m) {
  out.push_back(0x83);
  out.push_back(static_cast<std::uint8_t>(message_kind::notification));
  put_text(out, m.method);
  encode_value(out, m.params);
}

void encode(std::vector<std::uint8_t>& out, const message& m) {
  std::visit([&out](const auto& x) { encode(out, x); }, m);
}

result<message> decode(std::span<const std::uint8_t> bytes, const limits& lim) {
  auto v = decode_value(bytes, lim);
  if (!v) return std::move(v).error();
  try {
    auto m = to_message(*v);
    if (!m) return m;
    // A message the router could not read in place (wire::peek, docs/protocol.md §4)
    // would be dropped there as malformed: refuse it here too, so that every peer and
    // the router agree on what a message is. Only heads not in shortest form differ.
    const auto h = peek(bytes);
    bool agrees = h && static_cast<std::size_t>(h->kind) == m->index();
    if (agrees && h->kind == message_kind::request)
      agrees = h->msgid == std::get<request>(*m).msgid;
    else if (agrees && h->kind == message_kind::response)
      agrees = h->msgid == std::get<response>(*m).msgid;
    else if (agrees)
      agrees =
          peek_method(bytes) == std::optional<std::string_view>(std::get<notification>(*m).method);
    if (!agrees)
      return plexus::error(errc::invalid_argument,
                           "message head is not in the form the router reads: the array head "
                           "and the msgid must be in shortest form (docs/protocol.md §4)");
    return m;
  } catch (const std::exception& e) {  // only allocation failure can get here
    return plexus::error(errc::resource_exhausted,
                         std::string("decoding a message failed: ") + e.what());
  }
}

std::optional<header> peek(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() < 2) return std::nullopt;
  const std::uint8_t array_head = bytes[0];
  const std::uint8_t kind = bytes[1];
  if (kind == static_cast<std::uint8_t>(message_kind::notification)) {
    if (array_head != 0x83) return std::nullopt;
    return header{message_kind::notification, 0};
  }
  if (kind > static_cast<std::uint8_t>(message_kind::response) || array_head != 0x84 ||
      bytes.size() < 3) {
    return std::nullopt;
  }
  const std::uint8_t b = bytes[2];
  std::size_t n = 0;  // argument bytes after the head byte
  if (b <= 0x17) {
    return header{static_cast<message_kind>(kind), b};
  } else if (b == 0x18) {
    n = 1;
  } else if (b == 0x19) {
    n = 2;
  } else if (b == 0x1a) {
    n = 4;
  } else {
    return std::nullopt;
  }
  if (bytes.size() < 3 + n) return std::nullopt;
  std::uint32_t id = 0;
  for (std::size_t i = 0; i < n; ++i)
    id = (id << 8) | bytes[3 + i];
  return header{static_cast<message_kind>(kind), id};
}

std::optional<std::string_view> peek_method(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() < 3 || bytes[0] != 0x83 ||
      bytes[1] != static_cast<std::uint8_t>(message_kind::notification))
    return std::nullopt;
  const std::uint8_t head = bytes[2];
  if ((head >> 5) != 3) return std::nullopt;  // not a text string
  const std::uint8_t info = head & 0x1f;
  std::size_t pos = 3;
  std::uint64_t len = 0;
  if (info <= 0x17) {
    len = info;
  } else if (info >= 0x18 && info <= 0x1b) {
    const std::size_t n = std::size_t{1} << (info - 0x18);
    if (bytes.size() < pos + n) return std::nullopt;
    for (std::size_t i = 0; i < n; ++i)
      len = (len << 8) | bytes[pos + i];
    pos += n;
  } else {
    return std::nullopt;  // indefinite or reserved
  }
  if (len > bytes.size() - pos) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(bytes.data() + pos),
                          static_cast<std::size_t>(len));
}

std::vector<std::uint8_t> encode_error_response(std::uint32_t msgid, const plexus::error& e) {
  std::vector<std::uint8_t> out;
  out.reserve(32 + e.message.size());
  encode(out, response{msgid, e, nullptr});
  return out;
}

}  // namespace plexus::wire
