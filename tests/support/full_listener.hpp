// Listeners that never answer, for tests of connecting without waiting. Each is made
// with listen(fd, 0), never accepts, and already holds one connection in its queue;
// the kernel then refuses (Unix: EAGAIN to a non-blocking connect, while a blocking one
// sleeps until an accept) or drops (tcp: the SYN is ignored and retried for minutes)
// the next connection.
//
//   plexus::test::full_tcp_listener silent;
//   ASSERT_TRUE(silent.ok());
//   connect(io, silent.address(), {.connect_timeout = 200ms});  // unavailable, 200 ms on
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "plexus/os/unique_fd.hpp"

namespace plexus::test {

// A Unix listener at `path` with a backlog of 0 that never accepts, and one
// connection already waiting in it: the queue is full.
struct full_ipc_listener {
  os::unique_fd listener, queued;
  explicit full_ipc_listener(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    listener = os::unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listener.get(), 0) != 0)
      return;
    queued = os::unique_fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (::connect(queued.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) queued.reset();
  }
  bool ok() const { return queued.get() >= 0; }
};

// The same on tcp 127.0.0.1: a further SYN is dropped, so a connect never completes.
struct full_tcp_listener {
  os::unique_fd listener, queued;
  int port = 0;
  full_tcp_listener() {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = os::unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    socklen_t len = sizeof sa;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listener.get(), 0) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      return;
    port = ntohs(sa.sin_port);
    queued = os::unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(queued.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) queued.reset();
  }
  bool ok() const { return queued.get() >= 0; }
  std::string address() const { return "tcp://127.0.0.1:" + std::to_string(port); }
};

}  // namespace plexus::test
