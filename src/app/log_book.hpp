// The log side of `plexus run`: every record published under "log." (children's
// captured lines, supervisor events, library log calls) is kept in a bounded history
// for `plexus logs`, appended to a rotating file per process and replica, and echoed
// on the terminal. What it keeps, serves and echoes is valid UTF-8 (log::make_valid);
// the file gets a captured line's "raw" bytes as the child wrote them. Files are
// opened only for the processes the supervisor knows (and their replicas): a record
// under any other name is kept in the history and echoed, but filed nowhere, and
// counted (unfiled()), so that publishers cannot make the supervisor open a file per
// name they invent.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>

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
  // there, the files still get it). Files are flushed once per turn of `io` (after a
  // batch of lines), not per line.
  log_book(boost::asio::io_context& io, supervisor::log_options opts, std::string dir,
           echo_writer* echo, known_processes known);
  // The processes of `spec` and the supervisor's own name "plexus", one replica each
  // unless the spec says more.
  static known_processes known_from(const supervisor::tree_spec& spec);
  ~log_book();
  log_book(const log_book&) = delete;
  log_book& operator=(const log_book&) = delete;

  // A publication under "log.<process>": params [record] (plexus/log/record.hpp).
  void add(std::string_view topic, const value& params);
  // `plexus.logs` params [{process?, level?, limit?}]: the newest matching records,
  // oldest first.
  result<value> query(const value& params) const;

  const std::string& dir() const noexcept { return dir_; }
  std::size_t file_errors() const noexcept { return file_errors_; }
  // Records not written to any file: their process or replica is not one the
  // supervisor knows.
  std::size_t unfiled() const noexcept { return unfiled_; }
  // Log files open now.
  std::size_t open_files() const noexcept { return files_.size(); }

 private:
  void flush_soon();
  void flush();
  bool known(std::string_view process, const value& record) const;

  boost::asio::io_context& io_;
  bool flush_posted_ = false;
  supervisor::log_options opts_;
  std::string dir_;
  echo_writer* echo_;
  std::deque<value> history_;
  std::map<std::string, std::unique_ptr<supervisor::rotating_file>> files_;
  std::size_t file_errors_ = 0;
  known_processes known_;
  std::size_t unfiled_ = 0;
};

}  // namespace plexus::app
