// The `plexus-bench supervisor` benchmark: `plexus run` with N replicas of the example service
// calc (startup until every replica is ready, crash-to-ready after SIGKILL, RSS of the
// supervisor+router process), next to a baseline measured in the same run: the same N calc
// processes spawned directly by the bench against a plain `plexus router`.
//
//   supervisor_config cfg;
//   cfg.bin_dir = "/work/main/build/bin";  // holds plexus and calc
//   cfg.workdir = "/tmp/plexus-bench-abc123";
//   supervisor_result s = run_supervisor_tree(cfg);   // s.ready_all_ms, s.crash_p50_ms, ...
//   direct_result d = run_supervisor_direct(cfg);     // d.ready_all_ms
#pragma once

#include <string>

struct supervisor_config {
  int replicas = 100;   // calc replicas (1-1000, the [[process]] limit)
  int crashes = 20;     // SIGKILLs in the crash-to-ready phase
  std::string bin_dir;  // directory of plexus-bench; `plexus` and `calc` are taken from it
  std::string workdir;  // unique temp dir owned by the caller; runners make subdirs in it
};

struct supervisor_result {
  double ready_all_ms = 0;     // spawn of `plexus run` -> every replica "ready" in plexus.ps
  double spawn_window_ms = 0;  // from its log files: first replica started -> last started
  double ready_window_ms = 0;  // from its log files: first replica started -> last ready
  double crash_p50_ms = 0;     // SIGKILL of a replica -> plexus.ps shows it ready, new pid
  double crash_max_ms = 0;
  double rss_mib = 0;         // VmRSS of `plexus run`, max of after startup and at the end
  double rss_peak_mib = 0;    // VmHWM of `plexus run` at the end
  double keeper_rss_mib = 0;  // VmRSS of its keeper process (0 if not found)
  double stop_ms = 0;         // SIGTERM -> `plexus run` exited, children stopped
  int children = 0;           // entries in plexus.ps
};

struct direct_result {
  double ready_all_ms = 0;  // first posix_spawn -> plexus.services shows N calc workers
  double spawn_all_ms = 0;  // first posix_spawn -> the N-th posix_spawn returned
  double rss_mib = 0;       // VmRSS of the plain router with the N workers connected
};

// Each runner blocks for a few seconds, throws std::runtime_error (or std::system_error) on a
// failed call, a dead process or a missed deadline (every wait is bounded), and has stopped and
// reaped every process it started by the time it returns or throws.
supervisor_result run_supervisor_tree(const supervisor_config&);
direct_result run_supervisor_direct(const supervisor_config&);

// The whole subcommand: `repeat` interleaved rounds (direct, then plexus), medians printed as
// JSON lines, targets checked when `check`. Returns the exit code (0, 1 target missed, 2 a run
// failed).
int run_supervisor_bench(const supervisor_config& cfg, int repeat, bool check);
