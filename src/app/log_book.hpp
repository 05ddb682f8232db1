// The log side of `plexus run`: every record published under "log." (children's
// captured lines, supervisor events, library log calls) is kept in a bounded history
// for `plexus logs`, appended to a rotating file per process and replica, and echoed
// on the terminal. What it keeps, serves and echoes is valid UTF-8 (log::make_valid);
// the file gets a captured line's "raw" bytes as the child wrote them. Files are
// opened only for the processes the supervisor knows (and their replicas): a record
// under any other name is kept in the history and echoed, but filed nowhere, and
// counted (unfiled()), so that publishers cannot make the supervisor open a file per
// name they invent.
//
// The files are opened, written, rotated and flushed by a thread of the book's own,
// never on the loop: creating a file and writing to a disk can wait (a journal, a slow
// or full disk), and the loop carries every call. The loop hands the lines of one turn
// over in one go; at most `max_unwritten` bytes wait for the writer, beyond that a line
// is not filed and counted (unwritten()).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "app/echo_writer.hpp"
#include "plexus/supervisor/logs.hpp"
#include "plexus/supervisor/spec.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::app {

class log_book {
 public:
  // Which processes get files: name → number of replicas (replicas 0 … n-1).
  using known_processes = std::map<std::string, std::size_t, std::less<>>;

  // `dir` must be set (the resolved log directory); `echo` null: no echo (not owned;
  // it never blocks: a line the terminal cannot take in time is dropped and counted
  // there, the files still get it). The lines of one turn of `io` go to the writer
  // thread together, which flushes the files after each batch.
  log_book(boost::asio::io_context& io, supervisor::log_options opts, std::string dir,
           echo_writer* echo, known_processes known,
           std::size_t max_unwritten = std::size_t{16} << 20);
  // The processes of `spec` and the supervisor's own name "plexus", one replica each
  // unless the spec says more.
  static known_processes known_from(const supervisor::tree_spec& spec);
  // Writes out everything added (waits for the writer), then stops it.
  ~log_book();
  log_book(const log_book&) = delete;
  log_book& operator=(const log_book&) = delete;

  // A publication under "log.<process>": params [record] (plexus/log/record.hpp).
  void add(std::string_view topic, const value& params);
  // `plexus.logs` params [{process?, level?, limit?}]: the newest matching records,
  // oldest first.
  result<value> query(const value& params) const;
  // Runs `f` with every record added, as the history keeps it (valid text, "process"
  // and "time" filled in), after it was filed.
  void on_record(std::function<void(const value&)> f) { on_record_ = std::move(f); }

  // Blocks until every line added so far is written and flushed (tests; the end).
  void wait_written();

  const std::string& dir() const noexcept { return dir_; }
  // Lines that could not be written: their file could not be opened, or a write failed.
  std::size_t file_errors() const noexcept { return file_errors_.load(); }
  // Records not written to any file: their process or replica is not one the
  // supervisor knows.
  std::size_t unfiled() const noexcept { return unfiled_; }
  // Lines not filed because `max_unwritten` bytes were already waiting for the writer.
  std::size_t unwritten() const noexcept { return unwritten_; }
  // The files lines have been filed to (each opened once by the writer).
  std::size_t open_files() const noexcept { return filed_.size(); }

 private:
  struct line_for {
    std::string key;  // the file: dir/KEY.log
    std::string text;
  };
  void hand_over_soon();
  void hand_over();
  void write_loop();
  bool known(std::string_view process, const value& record) const;

  boost::asio::io_context& io_;
  bool hand_over_posted_ = false;
  supervisor::log_options opts_;
  std::string dir_;
  echo_writer* echo_;
  std::deque<value> history_;
  std::function<void(const value&)> on_record_;
  known_processes known_;
  std::size_t unfiled_ = 0;
  std::size_t unwritten_ = 0;
  std::set<std::string, std::less<>> filed_;  // keys handed to the writer
  std::vector<line_for> batch_;               // this turn's lines (the loop's)
  std::size_t batch_bytes_ = 0;

  // Shared with the writer thread, under mu_.
  std::mutex mu_;
  std::condition_variable wake_;     // the writer: work, or the end
  std::condition_variable written_;  // wait_written(): the writer caught up
  std::vector<line_for> queued_;
  std::size_t queued_bytes_ = 0;  // also what the writer holds but has not written yet
  std::uint64_t handed_ = 0;      // batches handed over …
  std::uint64_t done_ = 0;        // … and written
  bool ending_ = false;
  std::size_t max_unwritten_;
  std::atomic<std::size_t> file_errors_{0};

  // The writer's own.
  std::map<std::string, std::unique_ptr<supervisor::rotating_file>, std::less<>> files_;
  std::thread writer_;  // last: started once the rest is built
};

}  // namespace plexus::app
