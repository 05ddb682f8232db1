// The native stream framing (docs/protocol.md, "Framing"):
//
//   u32 body_length (little endian) | u8 kind | u8 name_length | name | payload
//   kind 2 only:                                          ... | name | u32 deadline_ms | payload
//
// body_length counts everything after the length field. kind is frame_kind, or 2: a
// data frame that carries the caller's remaining time in milliseconds (a request's
// deadline, "deadlines that travel"); frame_view shows it as a data frame with
// deadline_ms set. On the
// way into the router `name` is the destination (a service name, or a peer id for a
// response); on the way out it is the source peer's id. `payload` is one CBOR
// message (data frames) or one CBOR map (control frames).
//
//   std::uint8_t hdr[plexus::wire::max_frame_header];
//   auto n = plexus::wire::write_frame_header(hdr, frame_kind::data, name, payload.size());
//   // then write hdr[0..n), name, payload
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

namespace plexus::wire {

enum class frame_kind : std::uint8_t { data = 0, control = 1 };

inline constexpr std::size_t frame_prefix_bytes = 4;  // the u32 length
inline constexpr std::size_t frame_fixed_bytes = 6;   // length + kind + name_length
inline constexpr std::size_t max_name_bytes = 255;
// The frame name of a publication: a notification sent to it goes to the subscribers
// of its method (the topic), not to a service.
inline constexpr std::string_view publish_name = "*";
inline constexpr std::size_t max_frame_header = frame_fixed_bytes;
// The kind byte of a data frame with a deadline, and the size of that deadline.
inline constexpr std::uint8_t deadline_data_kind = 2;
inline constexpr std::size_t deadline_bytes = 4;

// A decoded frame; the spans point into the reader's buffer and stay valid only
// until the frame handler returns.
struct frame_view {
  frame_kind kind = frame_kind::data;
  std::string_view name;
  std::span<const std::uint8_t> payload;
  // Kind 2 frames only: the sender's remaining time for this request, in ms (0: none
  // left). Always a data frame.
  std::optional<std::uint32_t> deadline_ms;
};

inline void write_u32_le(std::uint8_t* out, std::uint32_t v) noexcept {
  out[0] = static_cast<std::uint8_t>(v);
  out[1] = static_cast<std::uint8_t>(v >> 8);
  out[2] = static_cast<std::uint8_t>(v >> 16);
  out[3] = static_cast<std::uint8_t>(v >> 24);
}

// Writes the 6 fixed header bytes for a frame whose name is `name_length` bytes and
// whose payload is `payload_length` bytes. The caller checks name_length <= 255.
inline std::size_t write_frame_header(std::uint8_t* out, frame_kind kind, std::size_t name_length,
                                      std::size_t payload_length) noexcept {
  write_u32_le(out, static_cast<std::uint32_t>(2 + name_length + payload_length));
  out[4] = static_cast<std::uint8_t>(kind);
  out[5] = static_cast<std::uint8_t>(name_length);
  return frame_fixed_bytes;
}

// The header of a kind 2 frame: the 6 fixed bytes (kind 2) for a name of
// `name_length` bytes, a 4-byte deadline and a payload of `payload_length` bytes. The
// caller writes the name, then write_u32_le(deadline_ms), then the payload.
inline std::size_t write_deadline_frame_header(std::uint8_t* out, std::size_t name_length,
                                               std::size_t payload_length) noexcept {
  const auto n =
      write_frame_header(out, frame_kind::data, name_length, deadline_bytes + payload_length);
  out[4] = deadline_data_kind;
  return n;
}

inline std::uint32_t read_u32_le(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint32_t read_frame_length(const std::uint8_t* p) noexcept {
  return read_u32_le(p);
}

// Parses a frame body (the bytes after the length field). nullopt when the body is
// shorter than its name (and, for kind 2, its deadline) or the kind is unknown.
inline std::optional<frame_view> parse_frame_body(std::span<const std::uint8_t> body) noexcept {
  if (body.size() < 2) return std::nullopt;
  if (body[0] > deadline_data_kind) return std::nullopt;
  const std::size_t name_length = body[1];
  if (body.size() < 2 + name_length) return std::nullopt;
  frame_view f;
  f.name = std::string_view(reinterpret_cast<const char*>(body.data() + 2), name_length);
  if (body[0] == deadline_data_kind) {
    if (body.size() < 2 + name_length + deadline_bytes) return std::nullopt;
    f.kind = frame_kind::data;
    f.deadline_ms = read_u32_le(body.data() + 2 + name_length);
    f.payload = body.subspan(2 + name_length + deadline_bytes);
    return f;
  }
  f.kind = static_cast<frame_kind>(body[0]);
  f.payload = body.subspan(2 + name_length);
  return f;
}

}  // namespace plexus::wire
