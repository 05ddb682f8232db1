// Control frames (frame_kind::control): CBOR maps with an "op" key, exchanged
// between a peer and the router. See docs/protocol.md, "Control messages".
//
//   peer -> router  {"op":"hello", "name":"calc", "pid":1234, "deadlines":true}
//   router -> peer  {"op":"welcome", "peer":7, "deadlines":true}
//   peer -> router  {"op":"register", "service":"calc", "methods":[{"name":"add", ...}]}
//   router -> peer  {"op":"registered", "service":"calc"}
//   peer -> router  {"op":"unregister", "service":"calc"}      (drain: no new requests)
//   router -> peer  {"op":"unregistered", "service":"calc"}
//   peer -> router  {"op":"subscribe", "prefix":"tick"}       (publications to topics tick*)
//   router -> peer  {"op":"subscribed", "prefix":"tick"}
//   peer -> router  {"op":"unsubscribe", "prefix":"tick"}
//   router -> peer  {"op":"unsubscribed", "prefix":"tick"}
//   router -> peer  {"op":"dropped", "count":12, "total":40}  (publications lost: slow reader)
//   router -> peer  {"op":"error", "about":"register", "message":"...", "code":"..."}
#pragma once

#include <cstdint>
#include <string>

#include "plexus/wire/error.hpp"

namespace plexus::control {

inline constexpr const char* hello = "hello";
inline constexpr const char* welcome = "welcome";
inline constexpr const char* register_service = "register";
inline constexpr const char* registered = "registered";
inline constexpr const char* unregister_service = "unregister";
inline constexpr const char* unregistered = "unregistered";
inline constexpr const char* error_op = "error";
inline constexpr const char* subscribe = "subscribe";
inline constexpr const char* subscribed = "subscribed";
inline constexpr const char* unsubscribe = "unsubscribe";
inline constexpr const char* unsubscribed = "unsubscribed";
inline constexpr const char* dropped = "dropped";

// Typed reads of a control map that never throw: a missing key or a value of the
// wrong type yields the fallback (control maps come from untrusted peers).
inline std::string text_field(const value& map, const char* key, std::string fallback = {}) {
  if (!map.is_object()) return fallback;
  auto it = map.find(key);
  return it != map.end() && it->is_string() ? it->get<std::string>() : fallback;
}
inline std::int64_t int_field(const value& map, const char* key, std::int64_t fallback = 0) {
  if (!map.is_object()) return fallback;
  auto it = map.find(key);
  if (it == map.end() || !it->is_number_integer()) return fallback;
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > INT64_MAX) return fallback;
  return it->get<std::int64_t>();
}

inline bool bool_field(const value& map, const char* key, bool fallback = false) {
  if (!map.is_object()) return fallback;
  auto it = map.find(key);
  return it != map.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

inline value error_reply(std::string_view about, const plexus::error& e) {
  return {{"op", error_op},
          {"about", std::string(about)},
          {"message", e.message},
          {"code", std::string(to_string(e.code))}};
}

}  // namespace plexus::control
