// The `plexus-bench gateway` benchmark (issue 12 item 7): HTTP requests per second and
// latency with wrk (1 thread, N connections) against a plain route that a C++ module
// declares, served by `plexus run`'s gateway, beside baselines measured in the same run:
//
//   builtin        the gateway's own /api/healthz (no hop to a module)
//   plexus         GET /bench, a route of a C++ module, through the gateway and router
//   aiohttp        the seed-000 design: a parent aiohttp server forwarding each request to
//                  a child aiohttp server on a Unix socket (Debian's python3-aiohttp)
//   nginx-aiohttp  nginx (nginx-light) proxying to that same child
//   nginx-beast    nginx proxying to a minimal C++ Beast server on a Unix socket
//
// Every system answers "Hello, World!" (text/plain). Targets: plexus req/s >= 10 x
// aiohttp's; plexus req/s >= nginx-beast's and p99 <= nginx-beast's.
#pragma once

#include <string>
#include <vector>

struct gateway_config {
  double seconds = 8;    // wrk -d
  int connections = 32;  // wrk -c (one thread, -t1)
  std::string bin_dir;   // plexus is taken from it
  std::string self_exe;  // plexus-bench itself (the module and Beast server roles)
  std::string workdir;   // unique temp dir owned by the caller
};

// The whole subcommand: `repeat` interleaved rounds of `systems` (all when empty),
// medians printed as JSON lines, targets checked when `check`. Returns the exit code
// (0, 1 a target missed, 2 a run failed).
int run_gateway_bench(const gateway_config& cfg, const std::vector<std::string>& systems,
                      int repeat, bool check);

// Roles (`plexus-bench _role NAME ARG`): the module under plexus run, and the Beast
// server nginx proxies to (ARG: its Unix socket path).
int gateway_module_role(const std::vector<std::string>& args);
int gateway_beast_server_role(const std::vector<std::string>& args);
