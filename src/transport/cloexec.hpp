// Internal: sockets that are close-on-exec from the moment they exist. Asio's open()
// and accept() do not ask for it, and a child started by this process (plexus run
// starts many) would otherwise inherit every listening and connected socket.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/system/error_code.hpp>
#include <cerrno>

namespace plexus::transport::detail {

// Opens `s` (a socket or an acceptor of `protocol`) with SOCK_CLOEXEC; use it where
// Asio's s.open(protocol, ec) would be. Errors: those of socket(2) and assign.
template <class Socket, class Protocol>
void open_cloexec(Socket& s, const Protocol& protocol, boost::system::error_code& ec) {
  const int fd = ::socket(protocol.family(), protocol.type() | SOCK_CLOEXEC, protocol.protocol());
  if (fd < 0) {
    ec.assign(errno, boost::system::system_category());
    return;
  }
  s.assign(protocol, fd, ec);
  if (ec) ::close(fd);
}

// Marks a socket Asio made (an accepted one) close-on-exec. Not atomic with its
// creation: a program started by another thread in between could inherit it, except
// one started by supervisor::process, which closes every descriptor above 3 first.
template <class Socket>
void set_cloexec(Socket& s) noexcept {
  ::fcntl(s.native_handle(), F_SETFD, FD_CLOEXEC);
}

}  // namespace plexus::transport::detail
