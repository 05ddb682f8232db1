// The log plumbing of `plexus run`: a child's stdout/stderr read line by line from a
// pipe on the event loop, and a size-rotated file per child.
//
//   supervisor::line_reader r(io, fd, {.max_line = 64 << 10},
//       [](std::string_view line, bool partial) { ... },   // one whole line, no '\n'
//       [] { /* end of input */ });
//   r.start();
//   supervisor::rotating_file f("/var/log/x/calc.log", {.max_bytes = 1 << 20, .files = 3});
//   f.write_line("hello");   // rotates calc.log → calc.log.1 → … beyond max_bytes
//
// Threading: the io_context's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "plexus/wire/error.hpp"

namespace plexus::supervisor {

struct line_reader_options {
  // A line longer than this is delivered in pieces of at most max_line bytes, each
  // with partial = true except the last one. A piece ends before a UTF-8 character
  // that would cross the limit (log::cut_at_boundary), so a piece is up to 3 bytes
  // shorter; the bytes are passed on as read, valid or not.
  std::size_t max_line = 64u << 10;
};

class line_reader {
 public:
  using line_handler = std::function<void(std::string_view line, bool partial)>;

  // Takes ownership of `fd` (made non-blocking). `on_line` gets every line without its
  // '\n' (a trailing '\r' is removed too); at end of input a last unterminated line is
  // delivered, then `on_eof` runs once. Neither runs after the reader is destroyed.
  line_reader(boost::asio::io_context& io, int fd, line_reader_options opts, line_handler on_line,
              std::function<void()> on_eof);
  ~line_reader();
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  void start();

 private:
  struct state;
  std::shared_ptr<state> s_;
};

struct rotating_file_options {
  std::size_t max_bytes = 10u << 20;  // rotate before a write would pass this size
  std::size_t files = 3;              // keep path.1 … path.N (0: truncate instead)
};

class rotating_file {
 public:
  // Opens `path` for appending, creating its directory 0700 (os::ensure_private_dir:
  // a directory found must be ours and writable by nobody else). A symbolic link or
  // anything but a regular file at `path` is refused, then and at every reopen; a file
  // created is 0600. Errors: unavailable (the message names the path and why).
  static result<std::unique_ptr<rotating_file>> open(std::string path, rotating_file_options opts);
  ~rotating_file();
  rotating_file(const rotating_file&) = delete;
  rotating_file& operator=(const rotating_file&) = delete;

  // Appends `line` and a '\n'. A failed write is counted, never thrown.
  void write_line(std::string_view line);
  void flush();
  const std::string& path() const noexcept { return path_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t write_errors() const noexcept { return errors_; }

 private:
  rotating_file(std::string path, rotating_file_options opts, std::FILE* f, std::size_t size);
  void rotate();

  std::string path_;
  rotating_file_options opts_;
  std::FILE* file_ = nullptr;
  std::size_t size_ = 0;
  std::size_t errors_ = 0;
};

}  // namespace plexus::supervisor
