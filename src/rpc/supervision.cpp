#include "plexus/rpc/supervision.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

namespace plexus::rpc {

namespace {

int notify_fd() noexcept {
  static const int fd = [] {
    const char* s = std::getenv("PLEXUS_NOTIFY_FD");
    if (!s || !*s) return -1;
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    return (*end == '\0' && v >= 0 && v < 1 << 20) ? static_cast<int>(v) : -1;
  }();
  return fd;
}

// One line, written whole or not at all: the pipe is non-blocking and a line shorter
// than PIPE_BUF is written atomically.
void write_line(std::string line) noexcept {
  const int fd = notify_fd();
  if (fd < 0) return;
  line += '\n';
  ssize_t n;
  while ((n = ::write(fd, line.data(), line.size())) < 0 && errno == EINTR) {
  }
}

}  // namespace

bool supervised() noexcept {
  return notify_fd() >= 0;
}

void notify_ready() noexcept {
  write_line("READY=1");
}

void notify_health(const value& report) noexcept {
  if (!supervised()) return;
  try {
    write_line("HEALTH=" + report.dump());
  } catch (...) {  // a report that cannot be serialised is dropped
  }
}

std::string process_name(std::string_view fallback) {
  const char* s = std::getenv("PLEXUS_PROCESS");
  return s && *s ? std::string(s) : std::string(fallback);
}

int process_replica() noexcept {
  const char* s = std::getenv("PLEXUS_REPLICA");
  return s ? std::atoi(s) : 0;
}

}  // namespace plexus::rpc
