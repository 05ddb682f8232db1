// Authentication of tcp peers by a shared secret (docs/security.md, "TCP
// authentication"; the handshake is docs/protocol.md §1.1).
//
// A native tcp:// connection whose transport::options carry a secret runs a
// challenge–response handshake before its first frame: both ends prove that they know
// the secret (HMAC-SHA256 over two fresh random nonces); the secret itself never
// crosses the wire. ZeroMQ tcp endpoints with a secret use CURVE, with keys derived
// from the secret (curve_keys). A tcp listener on an address other than loopback is
// refused without a secret.
//
//   auto secret = plexus::transport::secret_from_environment();  // PLEXUS_SECRET(_FILE)
//   if (!secret) fail(secret.error());
//   plexus::transport::options o;
//   o.secret = *secret;  // empty: none configured
//
// The secret is never printed: no error message or description() contains it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "plexus/wire/error.hpp"

namespace plexus::transport {

// The shortest secret accepted, and the longest a secret file may hold.
inline constexpr std::size_t min_secret_bytes = 16;
inline constexpr std::size_t max_secret_bytes = 4096;

// {} if `secret` is usable (at least min_secret_bytes, at most max_secret_bytes), else
// invalid_argument saying why (never quoting it). `source` names where it came from.
result<void> check_secret(std::string_view secret, std::string_view source);

// Reads a secret file: a regular file (not a symbolic link) owned by this user and not
// readable or writable by group or others (mode 0600 or 0400), of at most
// max_secret_bytes; one trailing newline ("\n" or "\r\n") is dropped. Errors:
// permission_denied (owner, mode), invalid_argument (not a regular file, length),
// not_found; every message names the path and the fix.
result<std::string> read_secret_file(const std::string& path);

// $PLEXUS_SECRET if set and not empty, else the file named by $PLEXUS_SECRET_FILE,
// else "" (no secret). Errors: those of check_secret and read_secret_file.
result<std::string> secret_from_environment();

// True when `host` (an IP address, "localhost", or a bracketed IPv6 address) can only
// be reached from this machine: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, "localhost".
// Wildcards ("*", 0.0.0.0, ::), other names and interface names are not loopback.
bool is_loopback_host(std::string_view host);

// The CURVE keys of a ZeroMQ endpoint with this secret, each 40 characters of Z85:
// the router's endpoints are CURVE servers with server_secret; they accept only
// clients that authenticate with client_public. Derivation (python/plexus/curve.py
// does the same): seed = BLAKE2b-256(label || secret) with label
// "plexus-curve-v1 server" or "plexus-curve-v1 client"; the seed is the Curve25519
// secret key, and the public key is crypto_scalarmult_base of it.
struct curve_keypairs {
  std::string server_public;
  std::string server_secret;
  std::string client_public;
  std::string client_secret;
};
curve_keypairs curve_keys(std::string_view secret);

}  // namespace plexus::transport
