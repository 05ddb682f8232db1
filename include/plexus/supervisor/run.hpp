// `plexus run`: a router and a supervision tree in one process, on one loop.
//
//   auto cfg = plexus::config::load_file("app.toml");
//   return plexus::supervisor::run({.app = *cfg, .config_dir = "."});
//
// The router gains the methods plexus.ps, plexus.stop, plexus.restart and plexus.logs
// (docs/protocol.md §15); the children get $PLEXUS_ROUTER. Ends on SIGINT/SIGTERM
// (a second one kills the children at once), on `plexus stop`, or when the tree gives
// up; the exit code says which.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "plexus/config/app_config.hpp"

namespace plexus::supervisor {

inline constexpr int exit_stopped = 0;     // stopped on request
inline constexpr int exit_bad_config = 2;  // a command not found, a group misdeclared
inline constexpr int exit_failure = 4;     // cannot listen, cannot create the log directory
inline constexpr int exit_intensity = 5;   // too many restarts: the tree gave up
inline constexpr int exit_emergency = 6;   // a child exited with the emergency exit code

struct run_options {
  config::app_config app;
  std::string config_dir;      // relative commands are found from here
  std::string program_dir;     // commands without '/' are looked up here first
  bool demo = false;           // print the demo's "try next" hints
  std::string cli = "plexus";  // how the hints spell the plexus command
  std::FILE* out = stdout;     // echoed log lines and status messages
};

int run(run_options opts);

// A log record as one line: "2026-12-02T12:00:00.123Z info  calc[0] message {fields}".
std::string format_log_record(const value& record);
// Whether a record is of `process` (empty: any) and at least the level of rank
// `min_rank` (rpc::level_rank; 0: any).
bool log_record_matches(const value& record, std::string_view process, int min_rank);

// The built-in demo app (app.toml text): calc ×2, ticker, flaky.
std::string_view demo_config();

}  // namespace plexus::supervisor
