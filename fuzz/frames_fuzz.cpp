// libFuzzer target: the stream frame reader (transport/stream.cpp) — the code that
// turns the bytes of a Unix-socket or TCP peer into frames — fed untrusted bytes
// through a real socket, the way the router meets them.
//
// Each run connects a plain socket to a plexus ipc listener, writes the input, closes
// its side, and runs the loop until the accepted connection has ended. Every frame
// delivered must lie within the input, and its payload is decoded as a message (the
// router and the peers do that next). The end must come: an unfinished frame at EOF
// ends the connection rather than leaving it waiting.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "plexus/transport/connection.hpp"
#include "plexus/wire/message.hpp"

namespace {

namespace asio = boost::asio;
namespace transport = plexus::transport;
namespace wire = plexus::wire;

struct fixture {
  asio::io_context io;
  std::string path = "/tmp/plexus-frames-fuzz-" + std::to_string(::getpid()) + ".sock";
  transport::listener listener;
  std::optional<transport::connection> accepted;
  bool ended = false;
  std::size_t delivered_bytes = 0;

  fixture() {
    auto l = transport::listen(io, "ipc://" + path);
    if (!l) std::abort();
    listener = std::move(*l);
    listener.start([this](transport::connection c) {
      accepted = std::move(c);
      accepted->start(
          [this](const wire::frame_view& f) {
            delivered_bytes += wire::frame_fixed_bytes + f.name.size() + f.payload.size();
            (void)wire::decode(f.payload);
          },
          [this](const plexus::error&) { ended = true; });
    });
  }
  ~fixture() { listener.close(); }
};

fixture& the_fixture() {
  static fixture f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& f = the_fixture();
  f.accepted.reset();
  f.ended = false;
  f.delivered_bytes = 0;

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, f.path.c_str(), f.path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) std::abort();
  // libFuzzer's inputs are small (-max_len, 4 KiB by default): they fit the socket
  // buffer, so this write does not block.
  std::size_t written = 0;
  while (written < size) {
    const auto n = ::write(fd, data + written, size - written);
    if (n <= 0) std::abort();
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);

  f.io.restart();
  while (!f.ended) {
    if (f.io.run_one() == 0) std::abort();  // nothing left to do, yet no end: a hang
  }
  if (f.delivered_bytes > size) std::abort();
  f.accepted.reset();
  f.io.restart();
  f.io.poll();
  return 0;
}
