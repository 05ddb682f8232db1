// One owning, move-only handle for a file descriptor: the descriptor is closed when the
// handle is destroyed or reset, exactly once.
//
//   plexus::os::unique_fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
//   if (!fd) return error(...);          // -1: nothing owned
//   ::dup2(fd.get(), 0);                 // still owned; fd.release() gives it away
//
// close() is idempotent and the destructor never throws (a failed close(2) is ignored:
// the descriptor is released by the kernel either way).
#pragma once

#include <unistd.h>

#include <utility>

namespace plexus::os {

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  ~unique_fd() { close(); }
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives the descriptor away (the caller closes it); the handle owns nothing after.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes what it owns, then owns `fd` (-1: nothing).
  void reset(int fd = -1) noexcept {
    const int old = std::exchange(fd_, fd < 0 ? -1 : fd);
    if (old >= 0) ::close(old);
  }
  void close() noexcept { reset(); }

 private:
  int fd_ = -1;
};

}  // namespace plexus::os
