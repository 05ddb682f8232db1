#include "plexus/transport/auth.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "transport/auth_handshake.hpp"

namespace plexus::transport {
namespace {

void ensure_sodium() {
  static const bool ready = [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
    return true;
  }();
  (void)ready;
}

// Closes a descriptor on every path.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

constexpr std::string_view secret_help =
    "give the router and its peers the same secret of at least 16 bytes in $PLEXUS_SECRET, "
    "or in a file (mode 0600) named by $PLEXUS_SECRET_FILE or the router's --secret-file / "
    "[router] secret_file (docs/security.md)";

}  // namespace

result<void> check_secret(std::string_view secret, std::string_view source) {
  if (secret.size() < min_secret_bytes)
    return plexus::error(
        errc::invalid_argument,
        "the secret in " + std::string(source) + " is too short: " + std::to_string(secret.size()) +
            " bytes, at least " + std::to_string(min_secret_bytes) + " are needed");
  if (secret.size() > max_secret_bytes)
    return plexus::error(errc::invalid_argument, "the secret in " + std::string(source) +
                                                     " is too long: at most " +
                                                     std::to_string(max_secret_bytes) + " bytes");
  return {};
}

result<std::string> read_secret_file(const std::string& path) {
  const auto fail = [&](errc code, const std::string& why) {
    return plexus::error(code, "secret file " + path + ": " + why, {{"path", path}});
  };
  fd_guard f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)};
  if (f.fd < 0) {
    const int e = errno;
    if (e == ELOOP) return fail(errc::invalid_argument, "is a symbolic link; name the file itself");
    return fail(e == ENOENT ? errc::not_found : errc::permission_denied,
                std::string("cannot open it: ") + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0)
    return fail(errc::internal, std::string("cannot stat it: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(errc::invalid_argument, "is not a regular file");
  if (st.st_uid != ::geteuid())
    return fail(errc::permission_denied, "is owned by uid " + std::to_string(st.st_uid) +
                                             ", not by this user (uid " +
                                             std::to_string(::geteuid()) + ")");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(errc::permission_denied, std::string("has mode ") + mode +
                                             ": group and others must have no access "
                                             "(chmod 600 " +
                                             path + ")");
  }
  if (st.st_size > static_cast<off_t>(max_secret_bytes + 2))
    return fail(errc::invalid_argument,
                "is too large: a secret is at most " + std::to_string(max_secret_bytes) + " bytes");
  std::string secret(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < secret.size()) {
    const auto n = ::read(f.fd, secret.data() + got, secret.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(errc::internal, std::string("cannot read it: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  secret.resize(got);
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (auto ok = check_secret(secret, path); !ok) {
    sodium_memzero(secret.data(), secret.size());
    return std::move(ok).error();
  }
  return secret;
}

result<std::string> secret_from_environment() {
  if (const char* s = std::getenv("PLEXUS_SECRET"); s && *s) {
    if (auto ok = check_secret(s, "$PLEXUS_SECRET"); !ok) return std::move(ok).error();
    return std::string(s);
  }
  if (const char* path = std::getenv("PLEXUS_SECRET_FILE"); path && *path)
    return read_secret_file(path);
  return std::string();
}

bool is_loopback_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return false;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6());
  return ip.is_loopback();
}

curve_keypairs curve_keys(std::string_view secret) {
  ensure_sodium();
  const auto pair = [&](std::string_view label, std::string& pub, std::string& sec) {
    crypto_generichash_state st;
    unsigned char seed[crypto_scalarmult_SCALARBYTES];
    unsigned char pk[crypto_scalarmult_BYTES];
    crypto_generichash_init(&st, nullptr, 0, sizeof seed);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                              label.size());
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
    crypto_generichash_final(&st, seed, sizeof seed);
    crypto_scalarmult_base(pk, seed);
    char text[41];
    zmq_z85_encode(text, pk, sizeof pk);
    pub.assign(text, 40);
    zmq_z85_encode(text, seed, sizeof seed);
    sec.assign(text, 40);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(text, sizeof text);
    sodium_memzero(&st, sizeof st);
  };
  curve_keypairs k;
  pair("plexus-curve-v1 server", k.server_public, k.server_secret);
  pair("plexus-curve-v1 client", k.client_public, k.client_secret);
  return k;
}

std::string_view secret_hint() {
  return secret_help;
}

namespace detail::auth {
namespace {

mac hmac(const key& k, std::string_view label, const nonce& server, const nonce& client) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, k.data(), k.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                                label.size());
  crypto_auth_hmacsha256_update(&st, server.data(), server.size());
  crypto_auth_hmacsha256_update(&st, client.data(), client.size());
  mac out{};
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

}  // namespace

key derive_key(std::string_view secret) {
  ensure_sodium();
  static constexpr std::string_view label = "plexus-auth-v1 key";
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(secret.data()),
                              secret.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                                label.size());
  key out{};
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

nonce random_nonce() {
  ensure_sodium();
  nonce n{};
  randombytes_buf(n.data(), n.size());
  return n;
}

mac client_mac(const key& k, const nonce& server, const nonce& client) {
  return hmac(k, "plexus-auth-v1 client", server, client);
}

mac server_mac(const key& k, const nonce& server, const nonce& client) {
  return hmac(k, "plexus-auth-v1 server", server, client);
}

bool same_mac(const mac& a, std::span<const std::uint8_t> b) {
  return b.size() == a.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void write_header(std::uint8_t* out, type t) {
  std::memcpy(out, magic.data(), magic.size());
  out[4] = 1;  // version
  out[5] = static_cast<std::uint8_t>(t);
  out[6] = 0;
  out[7] = 0;
}

bool has_magic(std::span<const std::uint8_t> in) {
  return in.size() >= magic.size() && std::memcmp(in.data(), magic.data(), magic.size()) == 0;
}

bool has_header(std::span<const std::uint8_t> in, type t) {
  return in.size() >= header_bytes && has_magic(in) && in[4] == 1 &&
         in[5] == static_cast<std::uint8_t>(t) && in[6] == 0 && in[7] == 0;
}

}  // namespace detail::auth
}  // namespace plexus::transport
