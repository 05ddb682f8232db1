#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "plexus/os/unique_fd.hpp"
#include "plexus/transport/address.hpp"
#include "plexus/transport/auth.hpp"
#include "plexus/transport/connection.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"
#include "transport/auth_handshake.hpp"

// tcp authentication by a shared secret: the handshake between two connections, what
// a raw peer sees of it, the refusal to listen beyond loopback without a secret, and
// where secrets come from.

namespace plexus::transport {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
using test::run_until;

constexpr std::string_view secret_a = "correct horse battery staple 42";
constexpr std::string_view secret_b = "another secret of enough length";

options with_secret(std::string_view s, std::chrono::milliseconds timeout = 5000ms) {
  options o;
  o.secret = std::string(s);
  o.handshake_timeout = timeout;
  return o;
}

struct endpoint_log {
  std::vector<std::string> frames;  // the names of the frames received
  std::vector<plexus::error> closes;
  connection::frame_handler on_frame() {
    return [this](const wire::frame_view& f) { frames.emplace_back(f.name); };
  }
  connection::close_handler on_close() {
    return [this](const plexus::error& e) { closes.push_back(e); };
  }
};

bool contains(const bytes& haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

// A non-blocking raw TCP socket connected to 127.0.0.1:port.
os::unique_fd raw_connect(std::uint16_t port) {
  os::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return {};
  ::fcntl(fd.get(), F_SETFL, O_NONBLOCK);
  return fd;
}

std::uint16_t port_of(const std::string& address) {
  return parse_address(address).value().port;
}

// Reads what is there from a non-blocking socket into `into`; false on EOF or error.
bool drain(int fd, bytes& into) {
  std::uint8_t buf[4096];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      into.insert(into.end(), buf, buf + n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

class TcpAuth : public ::testing::Test {
 protected:
  // Listens on tcp://127.0.0.1:0 with `server` options, connects with `client`
  // options and starts both ends.
  void link(const options& server, const options& client) {
    auto l = listen(io_, "tcp://127.0.0.1:0", server);
    ASSERT_TRUE(l) << l.error().message;
    listener_ = std::move(*l);
    listener_.start([this](connection c) { accepted_.push_back(std::move(c)); });
    auto c = connect(io_, listener_.address(), client);
    ASSERT_TRUE(c) << c.error().message;
    client_ = std::move(*c);
    ASSERT_TRUE(run_until(io_, [&] { return !accepted_.empty(); }));
    accepted_[0].start(server_log_.on_frame(), server_log_.on_close());
    client_.start(client_log_.on_frame(), client_log_.on_close());
  }

  asio::io_context io_;
  listener listener_;
  std::vector<connection> accepted_;
  connection client_;
  endpoint_log server_log_, client_log_;
};

TEST_F(TcpAuth, SameSecretCarriesFramesBothWays) {
  link(with_secret(secret_a), with_secret(secret_a));
  // Queued before the handshake is over: it leaves once both ends are authenticated.
  ASSERT_TRUE(client_.send(wire::frame_kind::data, "hello", bytes{1, 2, 3}));
  ASSERT_TRUE(run_until(io_, [&] { return !server_log_.frames.empty(); }));
  EXPECT_EQ(server_log_.frames[0], "hello");
  ASSERT_TRUE(accepted_[0].send(wire::frame_kind::data, "answer", bytes{4}));
  ASSERT_TRUE(run_until(io_, [&] { return !client_log_.frames.empty(); }));
  EXPECT_EQ(client_log_.frames[0], "answer");
  EXPECT_TRUE(server_log_.closes.empty());
  EXPECT_TRUE(client_log_.closes.empty());
}

TEST_F(TcpAuth, WrongSecretIsRefusedOnBothEndsAndNoFrameIsDelivered) {
  link(with_secret(secret_a), with_secret(secret_b));
  ASSERT_TRUE(client_.send(wire::frame_kind::data, "hello", bytes{1}));
  ASSERT_TRUE(
      run_until(io_, [&] { return !server_log_.closes.empty() && !client_log_.closes.empty(); }));
  EXPECT_EQ(server_log_.closes[0].code, errc::permission_denied) << server_log_.closes[0].message;
  EXPECT_EQ(client_log_.closes[0].code, errc::permission_denied) << client_log_.closes[0].message;
  EXPECT_NE(client_log_.closes[0].message.find("authentication failed"), std::string::npos)
      << client_log_.closes[0].message;
  EXPECT_TRUE(server_log_.frames.empty());
  EXPECT_TRUE(client_log_.frames.empty());
  for (const auto* log : {&server_log_, &client_log_}) {
    EXPECT_EQ(log->closes[0].message.find(secret_a), std::string::npos);
    EXPECT_EQ(log->closes[0].message.find(secret_b), std::string::npos);
  }
}

TEST_F(TcpAuth, ClientWithoutSecretIsToldTheServerWantsOne) {
  link(with_secret(secret_a), options{});
  ASSERT_TRUE(client_.send(wire::frame_kind::data, "hello", bytes{1}));
  ASSERT_TRUE(
      run_until(io_, [&] { return !server_log_.closes.empty() && !client_log_.closes.empty(); }));
  // The server refused the hello, or saw the client leave first: either way, no frame.
  EXPECT_TRUE(server_log_.closes[0].code == errc::permission_denied ||
              server_log_.closes[0].code == errc::unavailable)
      << server_log_.closes[0].message;
  EXPECT_EQ(client_log_.closes[0].code, errc::permission_denied) << client_log_.closes[0].message;
  EXPECT_NE(client_log_.closes[0].message.find("PLEXUS_SECRET"), std::string::npos)
      << client_log_.closes[0].message;
  EXPECT_TRUE(server_log_.frames.empty());
}

TEST_F(TcpAuth, ClientWithSecretGivesUpOnAServerThatSendsNoChallenge) {
  link(options{}, with_secret(secret_a, 200ms));
  ASSERT_TRUE(client_.send(wire::frame_kind::data, "hello", bytes{1}));
  ASSERT_TRUE(run_until(io_, [&] { return !client_log_.closes.empty(); }));
  EXPECT_EQ(client_log_.closes[0].code, errc::permission_denied);
  EXPECT_NE(client_log_.closes[0].message.find("no authentication challenge"), std::string::npos)
      << client_log_.closes[0].message;
  EXPECT_TRUE(server_log_.frames.empty());  // the hello never left the client
}

// A raw client that connects and says nothing is closed after handshake_timeout.
TEST_F(TcpAuth, SilentPeerIsClosedAfterTheHandshakeTimeout) {
  auto l = listen(io_, "tcp://127.0.0.1:0", with_secret(secret_a, 150ms));
  ASSERT_TRUE(l) << l.error().message;
  l->start([this](connection c) {
    c.start(server_log_.on_frame(), server_log_.on_close());
    accepted_.push_back(std::move(c));
  });
  auto raw = raw_connect(port_of(l->address()));
  ASSERT_TRUE(raw);
  bytes seen;
  bool open = true;
  ASSERT_TRUE(run_until(io_, [&] {
    open = drain(raw.get(), seen);
    return !open && !server_log_.closes.empty();
  }));
  EXPECT_EQ(seen.size(), detail::auth::challenge_bytes);  // the challenge, then EOF
  EXPECT_EQ(server_log_.closes[0].code, errc::permission_denied);
  EXPECT_NE(server_log_.closes[0].message.find("did not finish within 150 ms"), std::string::npos)
      << server_log_.closes[0].message;
}

// The bytes a raw client sees from the server, and a raw server from the client, hold
// nonces and HMACs, never the secret. The raw peers follow docs/protocol.md §1.1.
TEST_F(TcpAuth, TheSecretNeverCrossesTheWire) {
  namespace a = detail::auth;
  // The server's side, seen by a raw client that answers with a made-up proof.
  auto l = listen(io_, "tcp://127.0.0.1:0", with_secret(secret_a));
  ASSERT_TRUE(l) << l.error().message;
  l->start([this](connection c) {
    c.start(server_log_.on_frame(), server_log_.on_close());
    accepted_.push_back(std::move(c));
  });
  auto raw = raw_connect(port_of(l->address()));
  ASSERT_TRUE(raw);
  bytes from_server;
  ASSERT_TRUE(run_until(io_, [&] {
    drain(raw.get(), from_server);
    return from_server.size() >= a::challenge_bytes;
  }));
  ASSERT_TRUE(a::has_header(from_server, a::type::challenge));
  bytes answer(a::response_bytes, 0x5a);
  a::write_header(answer.data(), a::type::response);
  ASSERT_EQ(::send(raw.get(), answer.data(), answer.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(answer.size()));
  ASSERT_TRUE(run_until(io_, [&] { return !drain(raw.get(), from_server); }));
  ASSERT_EQ(from_server.size(), a::challenge_bytes + a::verdict_bytes);
  EXPECT_TRUE(a::has_header(std::span(from_server).subspan(a::challenge_bytes), a::type::refused));
  EXPECT_FALSE(contains(from_server, secret_a));
  ASSERT_TRUE(run_until(io_, [&] { return !server_log_.closes.empty(); }));
  EXPECT_EQ(server_log_.closes[0].code, errc::permission_denied);
  EXPECT_TRUE(server_log_.frames.empty());

  // The client's side, seen by a raw server that sends a challenge.
  os::unique_fd fake(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  ASSERT_EQ(::bind(fake.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fake.get(), 4), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fake.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  auto c = connect(io_, "tcp://127.0.0.1:" + std::to_string(ntohs(sa.sin_port)),
                   with_secret(secret_a, 500ms));
  ASSERT_TRUE(c) << c.error().message;
  c->start(client_log_.on_frame(), client_log_.on_close());
  ASSERT_TRUE(c->send(wire::frame_kind::data, "hello", bytes{1}));
  os::unique_fd peer(::accept4(fake.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  ASSERT_TRUE(peer);
  bytes challenge(a::challenge_bytes, 0x11);
  a::write_header(challenge.data(), a::type::challenge);
  ASSERT_EQ(::send(peer.get(), challenge.data(), challenge.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(challenge.size()));
  bytes from_client;
  ASSERT_TRUE(run_until(io_, [&] {
    drain(peer.get(), from_client);
    return from_client.size() >= a::response_bytes;
  }));
  EXPECT_EQ(from_client.size(), a::response_bytes);  // and not the hello: not authenticated
  ASSERT_TRUE(a::has_header(from_client, a::type::response));
  EXPECT_FALSE(contains(from_client, secret_a));
  // The proof is HMAC-SHA256 as documented: the raw server can check it.
  a::nonce server_nonce, client_nonce;
  std::copy_n(challenge.begin() + a::header_bytes, a::nonce_bytes, server_nonce.begin());
  std::copy_n(from_client.begin() + a::header_bytes, a::nonce_bytes, client_nonce.begin());
  const auto expected = a::client_mac(a::derive_key(secret_a), server_nonce, client_nonce);
  EXPECT_TRUE(a::same_mac(
      expected, std::span(from_client).subspan(a::header_bytes + a::nonce_bytes, a::mac_bytes)));
  // A verdict without the right server proof is refused by the client.
  bytes verdict(a::verdict_bytes, 0);
  a::write_header(verdict.data(), a::type::accepted);
  ASSERT_EQ(::send(peer.get(), verdict.data(), verdict.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(verdict.size()));
  ASSERT_TRUE(run_until(io_, [&] { return !client_log_.closes.empty(); }));
  EXPECT_EQ(client_log_.closes[0].code, errc::permission_denied);
  EXPECT_NE(client_log_.closes[0].message.find("does not know our secret"), std::string::npos)
      << client_log_.closes[0].message;
}

TEST(TcpListen, BeyondLoopbackWithoutASecretIsRefusedNamingTheAddressAndTheFix) {
  asio::io_context io;
  for (const std::string address : {"tcp://0.0.0.0:0", "tcp://*:0", "tcp://[::]:0"}) {
    auto l = listen(io, address);
    ASSERT_FALSE(l) << address;
    EXPECT_EQ(l.error().code, errc::permission_denied) << l.error().message;
    EXPECT_NE(l.error().message.find("without authentication"), std::string::npos)
        << l.error().message;
    EXPECT_NE(l.error().message.find("PLEXUS_SECRET"), std::string::npos) << l.error().message;
  }
  auto l = listen(io, "tcp://0.0.0.0:0");
  EXPECT_NE(l.error().message.find("tcp://0.0.0.0:0"), std::string::npos) << l.error().message;
}

TEST(TcpListen, LoopbackWithoutASecretAndAnyAddressWithOneAreAllowed) {
  asio::io_context io;
  EXPECT_TRUE(listen(io, "tcp://127.0.0.1:0"));
  EXPECT_TRUE(listen(io, "tcp://localhost:0"));
  auto any = listen(io, "tcp://0.0.0.0:0", with_secret(secret_a));
  EXPECT_TRUE(any) << any.error().message;
}

TEST(TcpListen, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "*", "::", "[::]", "10.0.0.1", "example.org", "lo", ""})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

// ---- where secrets come from ---------------------------------------------------------
std::string write_file(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(SecretFile, OwnerOnlyFileIsReadWithoutItsNewline) {
  test::temp_dir dir;
  std::string text(secret_a);
  text.push_back('\n');
  const auto path = write_file(dir.path() + "/secret", text, 0600);
  auto s = read_secret_file(path);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(*s, secret_a);
}

TEST(SecretFile, ReadableByOthersIsRefusedSayingHowToFixIt) {
  test::temp_dir dir;
  const auto path = write_file(dir.path() + "/secret", std::string(secret_a), 0644);
  auto s = read_secret_file(path);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, errc::permission_denied);
  EXPECT_NE(s.error().message.find("0644"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("chmod 600"), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().message.find(secret_a), std::string::npos);
}

TEST(SecretFile, ShortSymlinkedOrMissingFilesAreRefused) {
  test::temp_dir dir;
  const auto short_one = write_file(dir.path() + "/short", "tooshort", 0600);
  auto s = read_secret_file(short_one);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("too short"), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().message.find("tooshort"), std::string::npos);  // never quoted

  const auto good = write_file(dir.path() + "/good", std::string(secret_a), 0600);
  ASSERT_EQ(::symlink(good.c_str(), (dir.path() + "/link").c_str()), 0);
  EXPECT_FALSE(read_secret_file(dir.path() + "/link"));
  auto missing = read_secret_file(dir.path() + "/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::not_found);
}

TEST(SecretFile, EnvironmentSecretThenSecretFile) {
  test::temp_dir dir;
  const auto path = write_file(dir.path() + "/secret", std::string(secret_b), 0600);
  ::setenv("PLEXUS_SECRET_FILE", path.c_str(), 1);
  ::unsetenv("PLEXUS_SECRET");
  auto s = secret_from_environment();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(*s, secret_b);
  ::setenv("PLEXUS_SECRET", std::string(secret_a).c_str(), 1);
  s = secret_from_environment();
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, secret_a);
  ::setenv("PLEXUS_SECRET", "short", 1);
  EXPECT_FALSE(secret_from_environment());
  ::unsetenv("PLEXUS_SECRET");
  ::unsetenv("PLEXUS_SECRET_FILE");
  s = secret_from_environment();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->empty());
}

TEST(CurveKeys, DerivedFromTheSecretDeterministicallyAndConsistently) {
  const auto k = curve_keys(secret_a);
  EXPECT_EQ(k.server_public.size(), 40u);
  EXPECT_EQ(k.client_secret.size(), 40u);
  const auto again = curve_keys(secret_a);
  EXPECT_EQ(k.server_secret, again.server_secret);
  EXPECT_EQ(k.client_public, again.client_public);
  EXPECT_NE(k.server_public, k.client_public);
  EXPECT_NE(curve_keys(secret_b).server_public, k.server_public);
  // The public keys are those of the secret keys, as libzmq computes them.
  char pub[41];
  ASSERT_EQ(zmq_curve_public(pub, k.server_secret.c_str()), 0);
  EXPECT_EQ(std::string(pub), k.server_public);
  ASSERT_EQ(zmq_curve_public(pub, k.client_secret.c_str()), 0);
  EXPECT_EQ(std::string(pub), k.client_public);
}

}  // namespace
}  // namespace plexus::transport
