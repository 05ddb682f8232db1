// The terminal side of `plexus run` (issue 10 item 11): lines echoed on its stdout
// without the loop ever waiting for the terminal. The loop appends to a bounded buffer
// (1 MiB by default) and returns; a writer thread of its own writes the buffer out with
// blocking write(2) calls. A line that does not fit is dropped and counted; once the
// buffer has drained, the writer says how many with one line of its own:
//   [plexus] 1234 lines not echoed: terminal too slow
// The descriptor's flags are left alone (O_NONBLOCK on a terminal shared with the shell
// would be the shell's problem too). Log files are written elsewhere, and get every line.
//
//   echo_writer echo(STDOUT_FILENO);
//   echo.line("12:00:00.000 calc[0] info ready");   // never blocks
//   echo.dropped();                                 // for plexus.stats
//
// Threading: line() and the counters from any thread; the destructor waits at most
// `drain_limit` for what is buffered to be written, then leaves the writer to finish
// alone (it owns what it uses).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace plexus::app {

class echo_writer {
 public:
  // `fd` is not owned and must stay open for the life of the process.
  explicit echo_writer(int fd, std::size_t capacity = std::size_t{1} << 20,
                       std::chrono::milliseconds drain_limit = std::chrono::seconds(1));
  ~echo_writer();
  echo_writer(const echo_writer&) = delete;
  echo_writer& operator=(const echo_writer&) = delete;

  // Queues `text` and a newline; false (and counted) if the buffer has no room for it.
  bool line(std::string_view text);
  // Lines dropped so far (never reset).
  std::uint64_t dropped() const noexcept;
  // Bytes buffered and not yet written.
  std::size_t pending() const;

 private:
  struct shared;
  std::shared_ptr<shared> s_;
  std::chrono::milliseconds drain_limit_;
};

}  // namespace plexus::app
