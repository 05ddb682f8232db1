// Internal: the messages of the tcp authentication handshake (docs/protocol.md §1.1).
// Every message is fixed-size and starts with the 4 bytes "PLX\xFF" (read as a frame
// length, more than any frame may have), a version byte (1) and a type byte, then two
// zero bytes.
//
//   server -> client  challenge  40 bytes: header(type 1) nonce_s[32]
//   client -> server  response   72 bytes: header(type 2) nonce_c[32] mac_c[32]
//   server -> client  verdict    40 bytes: header(type 3 accepted, 4 refused) mac_s[32]
//
// K = HMAC-SHA256(key = secret, "plexus-auth-v1 key")
// mac_c = HMAC-SHA256(K, "plexus-auth-v1 client" || nonce_s || nonce_c)
// mac_s = HMAC-SHA256(K, "plexus-auth-v1 server" || nonce_s || nonce_c)
// (mac_s is zeros in a refusal.) Neither end sends anything else before the handshake
// is over; the client sends frames only once it has checked mac_s.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace plexus::transport {
// How to give a secret, for error messages: "give the router and its peers ...".
std::string_view secret_hint();
}  // namespace plexus::transport

namespace plexus::transport::detail::auth {

inline constexpr std::size_t key_bytes = 32;
inline constexpr std::size_t nonce_bytes = 32;
inline constexpr std::size_t mac_bytes = 32;
inline constexpr std::size_t header_bytes = 8;
inline constexpr std::size_t challenge_bytes = header_bytes + nonce_bytes;             // 40
inline constexpr std::size_t response_bytes = header_bytes + nonce_bytes + mac_bytes;  // 72
inline constexpr std::size_t verdict_bytes = header_bytes + mac_bytes;                 // 40
inline constexpr std::array<std::uint8_t, 4> magic{'P', 'L', 'X', 0xFF};

enum class type : std::uint8_t { challenge = 1, response = 2, accepted = 3, refused = 4 };

using key = std::array<std::uint8_t, key_bytes>;
using nonce = std::array<std::uint8_t, nonce_bytes>;
using mac = std::array<std::uint8_t, mac_bytes>;

key derive_key(std::string_view secret);
nonce random_nonce();
mac client_mac(const key& k, const nonce& server, const nonce& client);
mac server_mac(const key& k, const nonce& server, const nonce& client);
// Constant-time comparison.
bool same_mac(const mac& a, std::span<const std::uint8_t> b);

// Writes the 8-byte header of a message of type `t` at `out`.
void write_header(std::uint8_t* out, type t);
// True if `in` starts with the header of a message of type `t`.
bool has_header(std::span<const std::uint8_t> in, type t);
// True if `in` starts with the magic (a handshake message of any type).
bool has_magic(std::span<const std::uint8_t> in);

}  // namespace plexus::transport::detail::auth
