// The `plexus-bench echo` benchmark: client, broker and service in three processes, echoing a
// fixed-size payload. One runner per system; each spawns its broker and service as hidden roles
// of self_exe (start_roles, measure.hpp), measures from the calling process with the loop every
// system shares (measure_echo, through the system's echo_client), and stops its children before
// returning.
//
//   echo_config cfg;
//   cfg.self_exe = "/proc/self/exe"; cfg.workdir = "/tmp/plexus-bench-abc123";
//   echo_result r = run_floor_echo(cfg);  // r.rtt_p50_us, r.calls_per_s, r.broker_rss_kib
#pragma once

#include <cstddef>
#include <string>
#include <vector>

struct echo_config {
  int warmup = 2000;         // sequential calls before measuring, not recorded
  int calls = 20000;         // sequential calls measured for the round-trip percentiles
  double seconds = 5;        // length of the pipelined window
  int inflight = 64;         // requests kept in flight in the pipelined window
  std::size_t payload = 32;  // echo body size; floor/zmq need >= 8 (a sequence number rides in it)
  std::string self_exe;      // executable re-executed as `self_exe _role NAME ARGS...`
  std::string workdir;       // unique temp dir owned by the caller; runners put ipc paths here
};

struct echo_result {
  double rtt_p50_us = 0, rtt_p99_us = 0, calls_per_s = 0;
  long broker_rss_kib = 0;  // VmHWM of the broker process, read just before it is stopped
};

// Each runner blocks for about warmup + calls round trips + `seconds`, throws std::runtime_error
// (or std::system_error) on a failed echo, a dead child or a missed deadline, and has stopped and
// reaped every process it started by the time it returns or throws.
echo_result run_floor_echo(const echo_config&);        // broker: a thread per direction
echo_result run_floor_epoll_echo(const echo_config&);  // broker: one thread, epoll
echo_result run_zmq_echo(const echo_config&);
echo_result run_plexus_echo(const echo_config&);  // bench/plexus_echo.cpp

// `plexus-bench echo --transport zmq` (bench/zmq_transport_echo.cpp): the same seed-style DEALER
// client and DEALER echo service, speaking CBOR requests/responses as seeds/001 does, through
// either the raw ZeroMQ broker of run_zmq_echo (system "zmq") or the plexus router's ZeroMQ
// frontend/backend (system "plexus-zmq").
echo_result run_zmq_cbor_echo(const echo_config&);
echo_result run_plexus_zmq_echo(const echo_config&);

// Runs the hidden role `role` (what follows `_role` on the command line) with its arguments and
// returns the process exit code. Every role takes one argument. Unknown role or another number of
// arguments: message on stderr, returns 2; a role that throws: "<role>: <what>" on stderr,
// returns 1. The role functions below may throw; run_role is their only caller.
int run_role(const std::string& role, const std::vector<std::string>& args);

// Roles of the baselines; args = {workdir}. They run until their peer disconnects, they are
// signalled, or they have been idle for a minute.
int floor_broker_role(const std::vector<std::string>& args);
int floor_epoll_broker_role(const std::vector<std::string>& args);
int floor_service_role(const std::vector<std::string>& args);
int zmq_broker_role(const std::vector<std::string>& args);
int zmq_service_role(const std::vector<std::string>& args);

// The ipc paths (without "ipc://") the zmq_broker role binds in `workdir`.
std::string zmq_front_path(const std::string& workdir);
std::string zmq_back_path(const std::string& workdir);

// Roles of `--transport zmq`: args = {backend ipc path} for the CBOR echo service (a DEALER with
// identity "echo"), {workdir} for the plexus router bound to ZeroMQ endpoints only.
int zmq_cbor_service_role(const std::vector<std::string>& args);
int plexus_zmq_router_role(const std::vector<std::string>& args);

// Roles of the plexus system, implemented in bench/plexus_echo.cpp; dispatched as
// `_role plexus_router ...` and `_role plexus_service ...`.
int plexus_router_role(const std::vector<std::string>& args);
int plexus_service_role(const std::vector<std::string>& args);
