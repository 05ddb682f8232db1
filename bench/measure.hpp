// The measurement loop of `plexus-bench echo`, one for every system: sequential round trips
// (`warmup` unrecorded, then `calls` timed one by one: p50, p99), then a pipelined window
// (`inflight` requests outstanding for `seconds`: calls/s). A system supplies its client as an
// echo_client; the loop never names a socket. Also the start of a system's two roles.
//
//   bench::child_guard children;
//   const auto roles = bench::start_roles(children, cfg, {"floor_broker", {cfg.workdir}},
//                                         {path}, {"floor_service", {cfg.workdir}});
//   floor_client client(cfg, path);
//   echo_result r = bench::measure_echo(client, cfg);  // r.broker_rss_kib left for the caller
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <string>
#include <vector>

#include "common.hpp"
#include "echo.hpp"

namespace bench {

// The client side of one system, driven by measure_echo() from the calling thread. Every wait is
// bounded by the system's own receive deadline; a failed, unexpected or mismatched echo throws.
class echo_client {
 public:
  virtual ~echo_client() = default;

  // One request; returns once its echo is back and checked.
  virtual void round_trip() = 0;

  // Sends `n` more requests (n >= 1) without waiting for their echoes.
  virtual void send(std::size_t n) = 0;

  // Waits for echoes of sent requests and returns how many arrived (each checked); may return 0
  // when a wake-up brought none. Throws when none arrive within the system's deadline.
  virtual std::size_t receive() = 0;
};

// Runs the sequential and the pipelined phases on `client` as `cfg` says and returns
// rtt_p50_us, rtt_p99_us and calls_per_s (broker_rss_kib is 0: the caller reads it). Requests of
// the pipelined window still in flight when it closes are left to the caller. Throws what the
// client throws, and std::invalid_argument unless calls >= 1, warmup >= 0, inflight >= 1 and
// seconds > 0.
echo_result measure_echo(echo_client& client, const echo_config& cfg);

struct role_command {
  std::string role;
  std::vector<std::string> args;
};

struct started_roles {
  pid_t broker = 0, service = 0;
};

// Starts a system's broker role, waits (startup deadline 10 s, or at once if the broker exits)
// until every Unix socket in `broker_sockets` accepts connections (stale files are unlinked
// first), then starts the service role. Both pids are registered in `children`.
started_roles start_roles(child_guard& children, const echo_config& cfg, const role_command& broker,
                          const std::vector<std::string>& broker_sockets,
                          const role_command& service);

// Runs `io` on the calling thread until SIGTERM or SIGINT: the body of the roles built on plexus.
void run_until_signalled(boost::asio::io_context& io);

}  // namespace bench
