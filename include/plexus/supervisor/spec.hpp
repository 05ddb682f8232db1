// What `plexus run` supervises: the processes of app.toml and the rules that keep them
// alive (Erlang/OTP semantics; docs/config.md is the reference for every field).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plexus::supervisor {

// When a child that exited is started again.
enum class restart_policy {
  permanent,  // always
  transient,  // only after an abnormal exit (non-zero code, or killed by a signal)
  temporary,  // never
};

// Which children are restarted with the one that failed.
enum class restart_strategy {
  one_for_one,   // only the failed child
  one_for_all,   // every child of the tree
  rest_for_one,  // the failed child and every child declared after it
};

// When a started child counts as ready (routable, and the next child may start).
enum class readiness {
  notify,  // the child writes "READY=1" to $PLEXUS_NOTIFY_FD (the library does it)
  spawn,   // as soon as it has been executed
};

std::string_view to_string(restart_policy p) noexcept;
std::string_view to_string(restart_strategy s) noexcept;
std::string_view to_string(readiness r) noexcept;
// "5", "0.1", "2.25": a duration as seconds, for messages (exact to the millisecond).
std::string seconds_text(std::chrono::milliseconds d);

struct child_spec {
  std::string name;  // unique; tags logs, names the child in `plexus ps`
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the inherited one
  std::string cwd;                                       // empty: the supervisor's
  std::size_t replicas = 1;
  restart_policy restart = restart_policy::permanent;
  readiness ready = readiness::notify;
  std::chrono::milliseconds stop_timeout{5000};    // SIGTERM → SIGKILL
  std::chrono::milliseconds ready_timeout{10000};  // started → ready, else failed
  // The group it belongs to (group_spec::name); empty: directly under the tree.
  std::string group;
};

// A supervisor inside the tree (OTP's child supervisor): its processes are restarted
// by its own strategy and intensity; beyond its intensity the group itself has
// failed, and the tree restarts it as one child, by the tree's strategy and intensity.
// A group's processes are declared one after another; the group sits in the tree
// where its first process is declared.
struct group_spec {
  std::string name;
  restart_strategy strategy = restart_strategy::one_for_one;
  std::size_t intensity = 5;
  std::chrono::milliseconds period{10000};
};

struct log_options {
  std::string dir;                    // empty: <runtime dir>/logs
  std::size_t max_bytes = 10u << 20;  // a file is rotated beyond this size
  std::size_t files = 3;              // rotated files kept: name.log.1 … name.log.N
  std::size_t history = 1000;         // records kept in memory for `plexus logs`
  bool echo = true;                   // also print each line on plexus run's stdout
};

struct tree_spec {
  restart_strategy strategy = restart_strategy::one_for_one;
  // More than `intensity` restarts within `period` stops the whole tree.
  std::size_t intensity = 5;
  std::chrono::milliseconds period{10000};
  // Delay before the n-th consecutive restart of a child: initial·2^(n-1), at most max.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // A child exiting with this code stops the whole tree at once (0: disabled).
  int emergency_exit_code = 99;
  // At most this many children starting at once (launched, not ready yet); the others
  // wait for a slot. 0: one per CPU this process may run on, but one (at least 1).
  std::size_t start_concurrency = 0;
  std::vector<child_spec> processes;  // started in this order, stopped in reverse
  std::vector<group_spec> groups;     // [group.NAME] tables
  log_options log;
};

// The first process whose `group` names no group_spec, or whose group's processes are
// not declared one after another (nullopt: the groups are well declared).
struct group_problem {
  enum kind { unknown, scattered } what;
  std::size_t process;  // index in tree_spec::processes
};
std::optional<group_problem> find_group_problem(const tree_spec& spec);

}  // namespace plexus::supervisor
