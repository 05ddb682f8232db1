// The supervision tree of `plexus run`: starts the processes of a tree_spec in declared
// order, keeps them alive by their restart policies (Erlang/OTP semantics), and stops
// them in reverse order.
//
//   plexus::supervisor::tree t(io, spec, {.router_address = "ipc:///tmp/r.sock"});
//   t.start([](plexus::supervisor::outcome o, const std::string& why) { ... });
//   io.run();                       // t.stop() from a signal handler ends it
//
// Rules (docs/architecture.md, "The supervisor"; the rules themselves are
// supervisor::policy, policy.hpp — the tree carries out its plans):
// - Entries start one after another: entry k+1 starts once every replica of entry k
//   is ready. Replicas of one entry start together.
// - A child that exits unexpectedly, or is not ready within its ready_timeout, has
//   failed. Its restart policy decides whether it comes back; the tree's strategy
//   decides which siblings come back with it; the backoff delays it.
// - More than `intensity` restarts within `period` stop the tree (outcome
//   intensity_exceeded). A child exiting with the emergency exit code stops the tree
//   at once, with SIGKILL (outcome emergency).
// Threading: the io_context's thread only; the io_context must outlive the tree. The
// tree starts its children on a thread of its own (the clone and the exec never hold up
// the loop), which lives as long as the tree: destroy the tree from a thread that may
// wait for one exec to finish.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/supervisor/policy.hpp"
#include "plexus/supervisor/spec.hpp"
#include "plexus/wire/error.hpp"

namespace plexus::supervisor {

// What `plexus ps` shows of one child.
struct child_status {
  std::string name;
  std::string group;  // "" directly under the tree
  std::size_t replica = 0;
  pid_t pid = 0;  // 0 when not running
  child_state state = child_state::stopped;
  std::size_t restarts = 0;
  double uptime_s = 0;  // since the last start; 0 when not running
  std::uint64_t rss_bytes = 0;
  double cpu_percent = 0;  // over the last sampling period (1 s)
  int threads = 0;
  std::string last_exit;  // "exited with 3", "killed by SIGKILL", "" if never
  value health;           // the child's last HEALTH report (null if none)
};

struct tree_options {
  std::string router_address;  // given to every child as $PLEXUS_ROUTER
  // Every line a child writes to stdout/stderr and every supervisor event about a
  // child, as a log record (plexus/log/record.hpp) and its topic "log.<name>". Its
  // text is valid UTF-8; a line that was not also carries its bytes as "raw".
  std::function<void(std::string_view topic, value record)> on_log;
  // A command without '/' is looked up here first, then in $PATH.
  std::string program_dir;
  // A relative command with '/' is relative to this directory.
  std::string config_dir;
  std::chrono::milliseconds sample_interval{1000};  // RSS/CPU sampling from /proc
};

class tree {
 public:
  using done_handler = std::function<void(outcome, const std::string& message)>;

  tree(boost::asio::io_context& io, tree_spec spec, tree_options opts);
  // Kills (SIGKILL) and reaps whatever still runs.
  ~tree();
  tree(const tree&) = delete;
  tree& operator=(const tree&) = delete;

  // Checks that every command can be found and is executable. Errors: not_found,
  // invalid_argument (the message names the process and the command).
  result<void> check() const;
  // Starts the tree; `done` runs once when it has ended and every child has exited.
  void start(done_handler done);
  // Stops every child in reverse declared order (SIGTERM, SIGKILL after stop_timeout),
  // then runs `done` with outcome::stopped. Idempotent.
  void stop();

  // `plexus stop NAME`: stops every replica of NAME; they stay stopped (no restart)
  // until restart(NAME). Errors: not_found.
  result<void> stop(std::string_view name);
  // `plexus restart NAME`: stops every replica of NAME, then starts them again. Not
  // counted against the intensity. Errors: not_found.
  result<void> restart(std::string_view name);

  std::vector<child_status> status() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace plexus::supervisor
