#include "plexus/transport/connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "plexus/transport/address.hpp"
#include "plexus/wire/frame.hpp"
#include "support/bytes.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// One conformance suite for every transport (nng style): the same cases run over
// ipc, tcp and inproc. Cases that need a raw byte stream run over ipc and tcp only.

namespace plexus::transport {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test::bytes, test::run_until, test::settle, test::temp_dir;

// A plain POSIX socket, closed on destruction.
class raw_socket {
 public:
  raw_socket() = default;
  explicit raw_socket(int fd) : fd_(fd) {}
  raw_socket(raw_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  raw_socket& operator=(raw_socket&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~raw_socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// Connects a blocking POSIX stream socket to an ipc:// or tcp:// address; -1 on failure.
int raw_connect(const std::string& text) {
  auto a = parse_address(text);
  if (!a) return -1;
  if (a->scheme == scheme::ipc) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, a->path.c_str(), sizeof(sa.sun_path) - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a->port);
  ::inet_pton(AF_INET, a->host.c_str(), &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool write_all(int fd, const bytes& b) {
  return ::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size());
}

// True when the peer of `fd` hung up (EOF or reset) within `limit`.
bool peer_hung_up(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  char c;
  const auto n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

struct received {
  wire::frame_kind kind = wire::frame_kind::data;
  std::string name;
  bytes payload;
};

// Records what one end's handlers saw. Must outlive the connection it is given to.
struct endpoint_log {
  std::vector<received> frames;
  std::vector<plexus::error> closes;

  connection::frame_handler on_frame() {
    return [this](const wire::frame_view& f) {
      frames.push_back({f.kind, std::string(f.name), bytes(f.payload.begin(), f.payload.end())});
    };
  }
  connection::close_handler on_close() {
    return [this](const plexus::error& e) { closes.push_back(e); };
  }
};

bytes pattern(std::size_t size, std::size_t seed) {
  bytes b(size);
  for (std::size_t j = 0; j < size; ++j)
    b[j] = static_cast<std::uint8_t>(seed * 31 + j * 7);
  return b;
}

class Connection : public ::testing::TestWithParam<std::string> {
 protected:
  // A fresh address for this transport: a new socket file, a kernel-chosen port or
  // a new inproc name.
  std::string next_address() {
    static int counter = 0;
    ++counter;
    const auto& t = GetParam();
    if (t == "ipc") return "ipc://" + dir_.path() + "/s" + std::to_string(counter) + ".sock";
    if (t == "tcp" || t == "tcp_auth") return "tcp://127.0.0.1:0";
    return "inproc://connection-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter);
  }

  struct linked {
    listener l;
    connection client;
    connection server;  // the accepted end
  };

  // Listens on a fresh address, connects to it and waits for the accept. Neither end
  // is started.
  // (tcp_auth: both ends have a secret and authenticate, transport/auth.hpp.)
  linked make_linked(options opts = {}) {
    if (GetParam() == "tcp_auth") opts.secret = "a conformance-suite secret";
    linked out;
    auto l = listen(io_, next_address(), opts);
    EXPECT_TRUE(l) << l.error().message;
    if (!l) return out;
    out.l = std::move(*l);
    out.l.start([this](connection c) { accepted_.push_back(std::move(c)); });
    auto c = connect(io_, out.l.address(), opts);
    EXPECT_TRUE(c) << c.error().message;
    if (!c) return out;
    out.client = std::move(*c);
    EXPECT_TRUE(run_until(io_, [&] { return !accepted_.empty(); }));
    if (accepted_.empty()) return out;
    out.server = std::move(accepted_.front());
    accepted_.erase(accepted_.begin());
    return out;
  }

  // Starts both ends of `link`, each recording into its log.
  static void start_both(linked& link, endpoint_log& server, endpoint_log& client) {
    link.server.start(server.on_frame(), server.on_close());
    link.client.start(client.on_frame(), client.on_close());
  }

  // Listens on a fresh address (ipc or tcp), connects peer_, a raw POSIX stream socket,
  // to it and starts the accepted end, accepted_[0], with server_ recording what it sees.
  testing::AssertionResult link_raw(const options& opts = {}) {
    auto l = listen(io_, next_address(), opts);
    if (!l) return testing::AssertionFailure() << l.error().message;
    raw_listener_ = std::move(*l);
    raw_listener_.start([this](connection c) { accepted_.push_back(std::move(c)); });
    peer_ = raw_socket(raw_connect(raw_listener_.address()));
    if (peer_.fd() < 0) return testing::AssertionFailure() << std::strerror(errno);
    if (!run_until(io_, [&] { return !accepted_.empty(); }))
      return testing::AssertionFailure() << "the listener accepted nothing";
    accepted_[0].start(server_.on_frame(), server_.on_close());
    return testing::AssertionSuccess();
  }

  asio::io_context io_;
  temp_dir dir_;
  endpoint_log server_;  // (link_raw) outlives the connections
  std::vector<connection> accepted_;
  listener raw_listener_;
  raw_socket peer_;
};

// Cases that write raw bytes to the stream; ipc and tcp only.
class StreamConnection : public Connection {};

TEST_P(Connection, FramesArriveWholeAndInOrder) {
  auto link = make_linked();
  ASSERT_TRUE(link.server);
  endpoint_log server, client;
  start_both(link, server, client);

  std::vector<received> sent;
  for (std::size_t i = 0; i < 1000; ++i) {
    received f;
    f.kind = i % 3 == 0 ? wire::frame_kind::control : wire::frame_kind::data;
    f.name = i == 1 ? std::string(255, 'n') : i % 5 == 0 ? "" : "frame-" + std::to_string(i);
    const std::size_t size = i == 0 ? 0 : i == 500 ? (1u << 20) : (i * 7919) % 5000;
    f.payload = pattern(size, i);
    auto ok = link.client.send(f.kind, f.name, f.payload);
    ASSERT_TRUE(ok) << "frame " << i << ": " << ok.error().message;
    sent.push_back(std::move(f));
  }
  EXPECT_TRUE(server.frames.empty());  // nothing arrives before the loop runs

  ASSERT_TRUE(run_until(
      io_, [&] { return server.frames.size() >= sent.size(); }, 10000ms))
      << "received " << server.frames.size() << " of " << sent.size();
  ASSERT_EQ(server.frames.size(), sent.size());
  std::size_t mismatches = 0, first_mismatch = 0;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const auto& a = sent[i];
    const auto& b = server.frames[i];
    if (a.kind != b.kind || a.name != b.name || a.payload != b.payload) {
      if (mismatches++ == 0) first_mismatch = i;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "first mismatch at frame " << first_mismatch;
  EXPECT_EQ(server.frames[0].payload.size(), 0u);
  EXPECT_EQ(server.frames[1].name, std::string(255, 'n'));
  EXPECT_EQ(server.frames[500].payload.size(), 1u << 20);
  EXPECT_TRUE(server.closes.empty());
  EXPECT_TRUE(client.closes.empty());
}

TEST_P(Connection, NameOf256BytesIsRefusedWithInvalidArgument) {
  auto link = make_linked();
  ASSERT_TRUE(link.client);
  const bytes payload{1, 2, 3};
  auto refused = link.client.send(wire::frame_kind::data, std::string(256, 'x'), payload);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::invalid_argument);
  EXPECT_NE(refused.error().message.find("255"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(link.client.send(wire::frame_kind::data, std::string(255, 'x'), payload));
  EXPECT_TRUE(link.client.is_open());
}

TEST_P(Connection, PayloadAboveMaxFrameBytesIsRefusedNamingTheLimit) {
  options opts;
  opts.max_frame_bytes = 1024;
  auto link = make_linked(opts);
  ASSERT_TRUE(link.server);
  endpoint_log server, client;
  // (Both started: with a secret, the handshake runs from start().)
  start_both(link, server, client);

  // body = kind + name length + name + payload = 2 + 2 + payload
  auto refused = link.client.send(wire::frame_kind::data, "ab", pattern(1021, 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::resource_exhausted);
  EXPECT_NE(refused.error().message.find("max_frame_bytes"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(refused.error().context.value("limit", ""), "max_frame_bytes");

  // Exactly at the limit is fine, and the connection is still usable.
  const auto at_limit = pattern(1020, 2);
  ASSERT_TRUE(link.client.send(wire::frame_kind::data, "ab", at_limit));
  ASSERT_TRUE(run_until(io_, [&] { return !server.frames.empty(); }));
  EXPECT_EQ(server.frames[0].payload, at_limit);
  EXPECT_TRUE(server.closes.empty());
}

TEST_P(Connection, ClosingOneEndRunsThePeersCloseHandlerExactlyOnce) {
  auto link = make_linked();
  ASSERT_TRUE(link.server);
  endpoint_log server, client;
  start_both(link, server, client);

  link.client.close();
  link.client.close();  // idempotent
  EXPECT_FALSE(link.client.is_open());
  EXPECT_TRUE(server.closes.empty());  // handlers run from the loop, never inside close()
  EXPECT_TRUE(client.closes.empty());

  ASSERT_TRUE(run_until(io_, [&] { return !server.closes.empty() && !client.closes.empty(); }));
  settle(io_);
  ASSERT_EQ(server.closes.size(), 1u);
  EXPECT_EQ(server.closes[0].code, errc::unavailable) << server.closes[0].message;
  ASSERT_EQ(client.closes.size(), 1u);
  EXPECT_EQ(client.closes[0].code, errc::unavailable) << client.closes[0].message;
  EXPECT_FALSE(link.server.is_open());
}

TEST_P(Connection, SendAfterCloseReturnsUnavailable) {
  auto link = make_linked();
  ASSERT_TRUE(link.server);
  endpoint_log server;
  link.server.start(server.on_frame(), server.on_close());
  link.client.close();

  const bytes payload{42};
  auto local = link.client.send(wire::frame_kind::data, "x", payload);
  ASSERT_FALSE(local);
  EXPECT_EQ(local.error().code, errc::unavailable);

  ASSERT_TRUE(run_until(io_, [&] { return !server.closes.empty(); }));
  auto remote = link.server.send(wire::frame_kind::data, "x", payload);
  ASSERT_FALSE(remote);
  EXPECT_EQ(remote.error().code, errc::unavailable);

  connection empty;
  auto none = empty.send(wire::frame_kind::data, "x", payload);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::unavailable);
}

TEST_P(Connection, DestroyedHandleRunsNoHandlerAfterwards) {
  auto link = make_linked();
  ASSERT_TRUE(link.server);
  endpoint_log server, client;
  std::optional<connection> doomed(std::move(link.server));
  doomed->start(server.on_frame(), server.on_close());
  link.client.start(client.on_frame(), client.on_close());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(link.client.send(wire::frame_kind::data, "x", {}));

  doomed.reset();  // frames are on their way and the peer is about to see the close
  ASSERT_TRUE(run_until(io_, [&] { return !client.closes.empty(); }));
  settle(io_);
  EXPECT_TRUE(server.frames.empty());
  EXPECT_TRUE(server.closes.empty());
  EXPECT_EQ(client.closes[0].code, errc::unavailable);
}

TEST_P(Connection, HandleDestroyedInsideItsFrameHandlerGetsNoFurtherFrames) {
  auto link = make_linked();
  ASSERT_TRUE(link.server);
  endpoint_log client;
  std::optional<connection> doomed(std::move(link.server));
  int frames = 0, closes = 0;
  doomed->start(
      [&](const wire::frame_view&) {
        ++frames;
        doomed.reset();
      },
      [&](const plexus::error&) { ++closes; });
  link.client.start(client.on_frame(), client.on_close());
  // Sent in one turn: a stream transport reads them in one go.
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(link.client.send(wire::frame_kind::data, "x", {}));

  ASSERT_TRUE(run_until(io_, [&] { return !client.closes.empty(); }));
  settle(io_);
  EXPECT_EQ(frames, 1);
  EXPECT_EQ(closes, 0);
}

TEST_P(Connection, ListenerAddressIsConnectable) {
  auto l = listen(io_, next_address());
  ASSERT_TRUE(l) << l.error().message;
  const auto address = l->address();
  auto parsed = parse_address(address);
  ASSERT_TRUE(parsed) << address;
  if (GetParam() == "tcp") {
    EXPECT_NE(parsed->port, 0) << address;
  }
  l->start([this](connection c) { accepted_.push_back(std::move(c)); });

  auto c = connect(io_, address);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(run_until(io_, [&] { return !accepted_.empty(); }));
  endpoint_log server, client;
  accepted_[0].start(server.on_frame(), server.on_close());
  c->start(client.on_frame(), client.on_close());

  const bytes ping{'p', 'i', 'n', 'g'}, pong{'p', 'o', 'n', 'g'};
  ASSERT_TRUE(c->send(wire::frame_kind::data, "to-server", ping));
  ASSERT_TRUE(accepted_[0].send(wire::frame_kind::control, "to-client", pong));
  ASSERT_TRUE(run_until(io_, [&] { return !server.frames.empty() && !client.frames.empty(); }));
  EXPECT_EQ(server.frames[0].name, "to-server");
  EXPECT_EQ(server.frames[0].payload, ping);
  EXPECT_EQ(client.frames[0].kind, wire::frame_kind::control);
  EXPECT_EQ(client.frames[0].name, "to-client");
  EXPECT_EQ(client.frames[0].payload, pong);
}

TEST_P(Connection, ConnectingWhereNothingListensIsUnavailable) {
  std::string address = next_address();
  if (GetParam() == "tcp") {
    // A port that was just free: bind it, learn it, let it go.
    auto l = listen(io_, address);
    ASSERT_TRUE(l) << l.error().message;
    address = l->address();
  }
  auto c = connect(io_, address);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, errc::unavailable) << c.error().message;
}

TEST_P(Connection, ListenerClosedBeforeAcceptingClosesTheConnectingEnd) {
  auto l = listen(io_, next_address());
  ASSERT_TRUE(l) << l.error().message;
  l->start([this](connection c) { accepted_.push_back(std::move(c)); });
  auto c = connect(io_, l->address());
  ASSERT_TRUE(c) << c.error().message;
  endpoint_log client;
  c->start(client.on_frame(), client.on_close());
  l->close();  // before the loop ever ran the accept

  ASSERT_TRUE(run_until(io_, [&] { return !client.closes.empty(); }));
  EXPECT_EQ(client.closes[0].code, errc::unavailable) << client.closes[0].message;
  EXPECT_TRUE(accepted_.empty());
  auto late = c->send(wire::frame_kind::data, "x", bytes{1});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, errc::unavailable);
}

TEST_P(StreamConnection, RawPeerAnnouncingAnOversizedFrameIsDisconnectedWithResourceExhausted) {
  options opts;
  opts.max_frame_bytes = 1024;
  ASSERT_TRUE(link_raw(opts));

  bytes header(wire::frame_fixed_bytes);
  wire::write_frame_header(header.data(), wire::frame_kind::data, 0, 4096);
  ASSERT_TRUE(write_all(peer_.fd(), header));

  ASSERT_TRUE(run_until(io_, [&] { return !server_.closes.empty(); }));
  EXPECT_EQ(server_.closes[0].code, errc::resource_exhausted) << server_.closes[0].message;
  EXPECT_NE(server_.closes[0].message.find("max_frame_bytes"), std::string::npos)
      << server_.closes[0].message;
  EXPECT_TRUE(server_.frames.empty());
  EXPECT_FALSE(accepted_[0].is_open());
  EXPECT_TRUE(peer_hung_up(peer_.fd(), 2000ms));
}

TEST_P(StreamConnection, RawPeerSendingAnUnknownFrameKindIsDisconnectedWithInvalidArgument) {
  ASSERT_TRUE(link_raw());

  bytes frame(wire::frame_fixed_bytes);
  wire::write_frame_header(frame.data(), wire::frame_kind::data, 0, 0);
  frame[4] = 7;  // no such kind
  ASSERT_TRUE(write_all(peer_.fd(), frame));

  ASSERT_TRUE(run_until(io_, [&] { return !server_.closes.empty(); }));
  EXPECT_EQ(server_.closes[0].code, errc::invalid_argument) << server_.closes[0].message;
  EXPECT_TRUE(server_.frames.empty());
  EXPECT_TRUE(peer_hung_up(peer_.fd(), 2000ms));
}

TEST_P(StreamConnection, ManySmallFramesInOneWriteAreAllDelivered) {
  ASSERT_TRUE(link_raw());

  std::vector<received> sent;
  bytes stream;
  for (std::size_t i = 0; i < 300; ++i) {
    received f{i % 2 ? wire::frame_kind::control : wire::frame_kind::data, "s" + std::to_string(i),
               pattern(i % 17, i)};
    std::uint8_t header[wire::max_frame_header];
    const auto n = wire::write_frame_header(header, f.kind, f.name.size(), f.payload.size());
    stream.insert(stream.end(), header, header + n);
    stream.insert(stream.end(), f.name.begin(), f.name.end());
    stream.insert(stream.end(), f.payload.begin(), f.payload.end());
    sent.push_back(std::move(f));
  }
  ASSERT_TRUE(write_all(peer_.fd(), stream));  // one write() for all of them

  ASSERT_TRUE(run_until(io_, [&] { return server_.frames.size() >= sent.size(); }));
  ASSERT_EQ(server_.frames.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(server_.frames[i].kind, sent[i].kind) << i;
    EXPECT_EQ(server_.frames[i].name, sent[i].name) << i;
    EXPECT_EQ(server_.frames[i].payload, sent[i].payload) << i;
  }
  EXPECT_TRUE(server_.closes.empty());
}

INSTANTIATE_TEST_SUITE_P(AllTransports, Connection,
                         ::testing::Values("ipc", "tcp", "tcp_auth", "inproc"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(StreamTransports, StreamConnection, ::testing::Values("ipc", "tcp"),
                         [](const auto& info) { return info.param; });

// ---- ipc specifics ---------------------------------------------------------------

TEST(IpcListener, ListeningTwiceOnALivePathFails) {
  asio::io_context io;
  temp_dir dir;
  const auto address = "ipc://" + dir.path() + "/live.sock";
  auto first = listen(io, address);
  ASSERT_TRUE(first) << first.error().message;
  std::vector<connection> accepted;
  first->start([&](connection c) { accepted.push_back(std::move(c)); });

  auto second = listen(io, address);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::unavailable);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;

  // The first listener is untouched by the attempt.
  auto c = connect(io, address);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/live.sock"));
}

TEST(IpcListener, StaleSocketFileIsReplaced) {
  asio::io_context io;
  temp_dir dir;
  const auto path = dir.path() + "/stale.sock";
  {
    // What a crashed process leaves: a bound socket file nobody listens on.
    raw_socket s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
    ASSERT_EQ(::bind(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  }
  ASSERT_TRUE(std::filesystem::is_socket(path));

  auto l = listen(io, "ipc://" + path);
  ASSERT_TRUE(l) << l.error().message;
  std::vector<connection> accepted;
  l->start([&](connection c) { accepted.push_back(std::move(c)); });
  auto c = connect(io, "ipc://" + path);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(run_until(io, [&] { return !accepted.empty(); }));

  l->close();
  EXPECT_FALSE(std::filesystem::exists(path));  // the listener removes what it created
}

std::string read_file(const std::string& path) {
  std::string out;
  if (std::FILE* f = std::fopen(path.c_str(), "re")) {
    char buf[256];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
      out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "we");
  ASSERT_NE(f, nullptr) << path;
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

void expect_refused_naming(const result<listener>& l, const std::string& path,
                           const std::string& reason) {
  ASSERT_FALSE(l) << "listening succeeded";
  EXPECT_EQ(l.error().code, errc::unavailable);
  EXPECT_NE(l.error().message.find(path), std::string::npos) << l.error().message;
  EXPECT_NE(l.error().message.find(reason), std::string::npos) << l.error().message;
}

TEST(IpcListener, SocketFileIsOwnerOnly) {
  asio::io_context io;
  temp_dir dir;
  const auto path = dir.path() + "/mode.sock";
  const mode_t old_umask = ::umask(0);  // the socket would be 0777 by the umask alone
  auto l = listen(io, "ipc://" + path);
  ::umask(old_umask);
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(mode_of(path), 0600u);
}

TEST(IpcListener, SocketDirectoriesAreCreatedOwnerOnly) {
  asio::io_context io;
  temp_dir dir;
  const auto path = dir.path() + "/run/plexus/router.sock";
  auto l = listen(io, "ipc://" + path);
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(mode_of(dir.path() + "/run"), 0700u);
  EXPECT_EQ(mode_of(dir.path() + "/run/plexus"), 0700u);
}

TEST(IpcListener, AWritableSocketDirectoryIsRefused) {
  asio::io_context io;
  temp_dir dir;
  const auto shared = dir.path() + "/shared";
  ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 0777), 0);  // not sticky: anyone may swap our socket
  expect_refused_naming(listen(io, "ipc://" + shared + "/router.sock"), shared,
                        "writable by group or others");
  EXPECT_FALSE(std::filesystem::exists(shared + "/router.sock"));
}

TEST(IpcListener, ARegularFileAtThePathIsLeftAloneAndNamed) {
  asio::io_context io;
  temp_dir dir;
  const auto path = dir.path() + "/not-a-socket";
  write_file(path, "precious");
  expect_refused_naming(listen(io, "ipc://" + path), path, "regular file");
  EXPECT_EQ(read_file(path), "precious");
}

TEST(IpcListener, ASymbolicLinkAtThePathIsLeftAloneAndNamed) {
  asio::io_context io;
  temp_dir dir;
  const auto target = dir.path() + "/target";
  const auto path = dir.path() + "/link.sock";
  write_file(target, "precious");
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  expect_refused_naming(listen(io, "ipc://" + path), path, "symbolic link");
  EXPECT_TRUE(std::filesystem::is_symlink(path));
  EXPECT_EQ(read_file(target), "precious");
}

TEST(IpcListener, ADirectoryAtThePathIsNamed) {
  asio::io_context io;
  temp_dir dir;
  const auto path = dir.path() + "/d.sock";
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  expect_refused_naming(listen(io, "ipc://" + path), path, "directory");
  EXPECT_TRUE(std::filesystem::is_directory(path));
}

// ---- the default address without XDG_RUNTIME_DIR -----------------------------------

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The environment of a user without XDG_RUNTIME_DIR (ssh, cron, containers), with the
// fallback's base moved from /tmp to a fresh directory of the test.
struct no_runtime_dir {
  temp_dir base;
  scoped_env no_router{"PLEXUS_ROUTER", nullptr};
  scoped_env no_xdg{"XDG_RUNTIME_DIR", nullptr};
  scoped_env tmpdir{"TMPDIR", base.path().c_str()};
  std::string dir = base.path() + "/plexus-" + std::to_string(::getuid());
};

TEST(DefaultAddress, WithoutXdgRuntimeDirTheSocketIsInAPrivatePlexusUidDirectory) {
  no_runtime_dir env;
  EXPECT_EQ(default_router_address(), "ipc://" + env.dir + "/router.sock");
  asio::io_context io;
  const mode_t old_umask = ::umask(0);  // by the umask alone: a 0777 directory and socket
  auto l = listen(io, default_router_address());
  ::umask(old_umask);
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(mode_of(env.dir), 0700u);
  EXPECT_EQ(mode_of(env.dir + "/router.sock"), 0600u);
}

TEST(DefaultAddress, AGroupOrWorldWritableFallbackDirectoryIsRefused) {
  no_runtime_dir env;
  ASSERT_EQ(::mkdir(env.dir.c_str(), 0700), 0);
  asio::io_context io;
  for (const mode_t mode : {0770u, 0777u, 0720u, 0702u}) {
    ASSERT_EQ(::chmod(env.dir.c_str(), mode), 0);
    expect_refused_naming(listen(io, default_router_address()), env.dir,
                          "writable by group or others");
    EXPECT_FALSE(std::filesystem::exists(env.dir + "/router.sock"));
  }
}

TEST(DefaultAddress, AFallbackDirectoryOwnedBySomeoneElseIsRefused) {
  no_runtime_dir env;
  ASSERT_EQ(::mkdir(env.dir.c_str(), 0700), 0);
  // Made by another user, as anyone can in /tmp before we start.
  if (::geteuid() != 0) GTEST_SKIP() << "chown to another user needs root";
  ASSERT_EQ(::chown(env.dir.c_str(), 65534, 65534), 0);
  asio::io_context io;
  expect_refused_naming(listen(io, default_router_address()), env.dir, "owned by uid 65534");
  EXPECT_FALSE(std::filesystem::exists(env.dir + "/router.sock"));
}

TEST(DefaultAddress, AStaleSocketThereIsReplacedButAFileIsNot) {
  no_runtime_dir env;
  asio::io_context io;
  {
    auto first = listen(io, default_router_address());
    ASSERT_TRUE(first) << first.error().message;
  }
  // A socket nobody listens on (its process was killed) is taken over ...
  const auto path = env.dir + "/router.sock";
  raw_socket dead(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  ASSERT_EQ(::bind(dead.fd(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
  auto again = listen(io, default_router_address());
  ASSERT_TRUE(again) << again.error().message;
  again->close();
  // ... a regular file is not.
  write_file(path, "precious");
  expect_refused_naming(listen(io, default_router_address()), path, "regular file");
  EXPECT_EQ(read_file(path), "precious");
}

// ---- addresses -------------------------------------------------------------------

void expect_bad_address(std::string_view text, std::string_view why) {
  auto a = parse_address(text);
  ASSERT_FALSE(a) << text << " parsed";
  EXPECT_EQ(a.error().code, errc::invalid_argument) << text;
  EXPECT_NE(a.error().message.find(std::string(text)), std::string::npos) << a.error().message;
  EXPECT_NE(a.error().message.find(why), std::string::npos) << a.error().message;
}

TEST(ParseAddress, RejectsAnUnknownOrMissingScheme) {
  expect_bad_address("http://127.0.0.1:80", "unknown scheme 'http'");
  expect_bad_address("127.0.0.1:80", "scheme://");
}

TEST(ParseAddress, RejectsATcpAddressWithoutAPort) {
  expect_bad_address("tcp://127.0.0.1", "host:port");
  expect_bad_address("tcp://127.0.0.1:", "port");
  expect_bad_address("tcp://[::1]", "port");
}

TEST(ParseAddress, RejectsAPortAbove65535) {
  expect_bad_address("tcp://127.0.0.1:70000", "0 to 65535");
  expect_bad_address("tcp://127.0.0.1:65536", "0 to 65535");
  expect_bad_address("tcp://127.0.0.1:-1", "0 to 65535");
  auto max = parse_address("tcp://127.0.0.1:65535");
  ASSERT_TRUE(max);
  EXPECT_EQ(max->port, 65535);
}

TEST(ParseAddress, RejectsAnIpcAddressWithAnEmptyPath) {
  expect_bad_address("ipc://", "empty socket path");
  expect_bad_address("unix://", "empty socket path");
  expect_bad_address("inproc://", "empty inproc name");
}

TEST(ParseAddress, AcceptsABracketedIpv6Host) {
  auto a = parse_address("tcp://[::1]:5");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->scheme, scheme::tcp);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 5);
  EXPECT_EQ(a->to_string(), "tcp://[::1]:5");
}

TEST(ParseAddress, AcceptsIpcUnixAndInprocForms) {
  auto ipc = parse_address("ipc:///tmp/x.sock");
  ASSERT_TRUE(ipc);
  EXPECT_EQ(ipc->scheme, scheme::ipc);
  EXPECT_EQ(ipc->path, "/tmp/x.sock");
  EXPECT_EQ(ipc->to_string(), "ipc:///tmp/x.sock");
  auto unix_form = parse_address("unix:///run/p.sock");
  ASSERT_TRUE(unix_form);
  EXPECT_EQ(unix_form->scheme, scheme::ipc);
  EXPECT_EQ(unix_form->path, "/run/p.sock");
  auto inproc = parse_address("inproc://router");
  ASSERT_TRUE(inproc);
  EXPECT_EQ(inproc->scheme, scheme::inproc);
  EXPECT_EQ(inproc->path, "router");
  auto tcp = parse_address("tcp://localhost:5555");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->host, "localhost");
  EXPECT_EQ(tcp->port, 5555);
}

TEST(Addresses, WildcardHostsBecomeLoopbackForConnecting) {
  EXPECT_EQ(connectable("tcp://*:5555"), "tcp://127.0.0.1:5555");
  EXPECT_EQ(connectable("tcp://0.0.0.0:80"), "tcp://127.0.0.1:80");
  EXPECT_EQ(connectable("tcp://[::]:7"), "tcp://[::1]:7");
  EXPECT_EQ(connectable("tcp://10.1.2.3:7"), "tcp://10.1.2.3:7");
  EXPECT_EQ(connectable("ipc:///tmp/*.sock"), "ipc:///tmp/*.sock");
}

TEST(Addresses, IpcIsPreferredOverTcp) {
  EXPECT_EQ(by_preference("tcp://10.0.0.1:1, tcp://*:2,ipc:///a,inproc://b,ipc:///c"),
            (std::vector<std::string>{"ipc:///a", "ipc:///c", "inproc://b", "tcp://127.0.0.1:2",
                                      "tcp://10.0.0.1:1"}));
  EXPECT_TRUE(by_preference(" , ").empty());
}

TEST(Addresses, ConnectToSeveralTakesTheIpcOneAndFallsBackWhenItIsGone) {
  temp_dir tmp;
  const std::string& dir = tmp.path();
  boost::asio::io_context io;
  auto ipc = listen(io, "ipc://" + dir + "/r.sock");
  // A wildcard tcp address needs a secret (transport/auth.hpp); ipc ignores it.
  options with_secret;
  with_secret.secret = "the secret of this test, long enough";
  auto tcp = listen(io, "tcp://*:0", with_secret);
  ASSERT_TRUE(ipc);
  ASSERT_TRUE(tcp);
  int via_ipc = 0, via_tcp = 0;
  std::vector<connection> accepted;
  ipc->start([&](connection c) {
    ++via_ipc;
    accepted.push_back(std::move(c));
  });
  tcp->start([&](connection c) {
    ++via_tcp;
    accepted.push_back(std::move(c));
  });
  const auto tcp_bound = tcp->address();
  const auto tcp_wild = "tcp://*:" + tcp_bound.substr(tcp_bound.rfind(':') + 1);
  const auto both = tcp_wild + "," + ipc->address();
  auto first = connect(io, both, with_secret);
  ASSERT_TRUE(first) << first.error().message;
  run_until(io, [&] { return via_ipc + via_tcp >= 1; });
  EXPECT_EQ(via_ipc, 1);
  EXPECT_EQ(via_tcp, 0);

  ipc->close();
  auto second = connect(io, both, with_secret);  // the ipc socket is gone: tcp on loopback
  ASSERT_TRUE(second) << second.error().message;
  run_until(io, [&] { return via_tcp >= 1; });
  EXPECT_EQ(via_tcp, 1);

  tcp->close();
  auto none = connect(io, both);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::unavailable);
  EXPECT_NE(none.error().message.find("cannot connect to any of"), std::string::npos);
}

}  // namespace
}  // namespace plexus::transport
