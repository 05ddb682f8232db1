// The `plexus-bench loop` benchmark (issue 10 item 11): how long calls through `plexus run` take
// while it starts N replicas of calc, next to the same calls while it is idle, measured in the
// same run. A call is plexus.ping, answered by the router on the loop that also supervises: the
// ratio of the two p99s shows how much the starts hold the loop up (target: at most 2).
//
//   loop_config cfg;
//   cfg.bin_dir = "/work/main/build/bin";  // holds plexus and calc
//   cfg.workdir = "/tmp/plexus-bench-abc123";
//   loop_result r = run_loop_once(cfg, false);  // r.idle_p99_us, r.start_p99_us, ...
#pragma once

#include <string>

struct loop_config {
  int replicas = 100;         // calc replicas started at once (1-1000)
  double idle_s = 1.0;        // length of the idle window
  int interval_us = 1000;     // a ping is due every interval_us (latency counted from then)
  int start_concurrency = 0;  // [supervisor] start_concurrency (0: not set, plexus's default)
  std::string bin_dir;        // `plexus` and `calc` are taken from it
  std::string workdir;        // unique temp dir owned by the caller
};

struct loop_result {
  double idle_p50_us = 0, idle_p99_us = 0, idle_max_us = 0;
  double start_p50_us = 0, start_p99_us = 0, start_max_us = 0;
  int idle_calls = 0, start_calls = 0;
  double start_window_ms = 0;  // the gate opened -> every replica ready in plexus.ps
  // Where the loop thread's time went in each window (its schedstat): on a CPU, and runnable
  // but waiting for a CPU (the machine busy with the starting processes).
  double idle_loop_cpu_ms = 0, idle_loop_wait_ms = 0;
  double start_loop_cpu_ms = 0, start_loop_wait_ms = 0;
};

// One run: spawns `plexus run`, measures, stops it. `direct`: the control; the gate stays shut and
// the bench starts the N calc itself (fork/exec from another of its threads), registering with
// the same router: what N starting processes cost the calls without the supervisor's part. Throws
// std::runtime_error on a failed call, a dead process or a missed deadline; every process it
// started is gone when it returns.
loop_result run_loop_once(const loop_config& cfg, bool direct);

// The whole subcommand: `repeat` runs, medians printed as JSON lines, the ratio target checked
// when `check`. Returns the exit code (0, 1 target missed, 2 a run failed).
int run_loop_bench(const loop_config& cfg, int repeat, bool check);
