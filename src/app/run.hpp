// `plexus run`: a router and a supervision tree in one process, on one loop.
//
//   auto cfg = plexus::config::load_file("app.toml");
//   return plexus::app::run({.app = *cfg, .config_dir = "."});
//
// The router gains the methods plexus.ps, plexus.stop, plexus.restart and plexus.logs
// (docs/protocol.md §15); the children get $PLEXUS_ROUTER. Ends on SIGINT, SIGTERM or
// SIGHUP (a second one kills the children at once), on `plexus stop`, or when the tree
// gives up; the exit code (app/exit_codes.hpp) says which. Grandchildren orphaned on
// the way (setsid() included) are adopted and killed at the end.
#pragma once

#include <cstdio>
#include <string>

#include "plexus/config/app_config.hpp"

namespace plexus::app {

struct run_options {
  config::app_config app;
  std::string config_dir;      // relative commands are found from here
  std::string program_dir;     // commands without '/' are looked up here first
  bool demo = false;           // print the demo's "try next" hints
  std::string cli = "plexus";  // how the hints spell the plexus command
  std::FILE* out = stdout;     // echoed log lines and status messages
};

// Runs until the tree has stopped; returns the process's exit code.
int run(run_options opts);

}  // namespace plexus::app
