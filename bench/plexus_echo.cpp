// The plexus system of `plexus-bench echo`: `plexus_router` and `plexus_service` roles
// in their own processes, the client in the calling process, all over ipc. The client
// runs its io_context on the calling thread, so every call completes where it was made.

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <stdexcept>

#include "common.hpp"
#include "echo.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/rpc/service.hpp"

namespace asio = boost::asio;
using namespace bench;

namespace {

std::string router_path(const std::string& workdir) {
  return workdir + "/plexus.sock";
}

// Runs io until SIGTERM/SIGINT.
void run_until_signalled(asio::io_context& io) {
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  io.run();
}

}  // namespace

int plexus_router_role(const std::vector<std::string>& args) {
  if (args.empty()) return 2;
  asio::io_context io(1);
  plexus::broker::router r(io, {.listen = {"ipc://" + router_path(args[0])}});
  if (auto ok = r.start(); !ok) {
    std::cerr << "plexus_router: " << ok.error().message << "\n";
    return 1;
  }
  run_until_signalled(io);
  return 0;
}

int plexus_service_role(const std::vector<std::string>& args) {
  if (args.empty()) return 2;
  asio::io_context io(1);
  plexus::rpc::service s(io, {.router = "ipc://" + router_path(args[0]), .name = "echo"});
  s.route("echo", [](plexus::value v) { return v; });
  if (auto ok = s.start(); !ok) {
    std::cerr << "plexus_service: " << ok.error().message << "\n";
    return 1;
  }
  s.on_disconnect([&](const plexus::error&) { io.stop(); });
  run_until_signalled(io);
  return 0;
}

echo_result run_plexus_echo(const echo_config& cfg) {
  child_guard children;
  const auto path = router_path(cfg.workdir);
  const pid_t router_pid = children.spawn(cfg.self_exe, "plexus_router", {cfg.workdir});
  wait_for_unix_socket(path, std::chrono::seconds(5), router_pid);
  children.spawn(cfg.self_exe, "plexus_service", {cfg.workdir});

  asio::io_context io(1);
  plexus::rpc::client client(io, {.router = "ipc://" + path, .name = "bench"});
  if (auto ok = client.connect(); !ok) throw std::runtime_error(ok.error().message);

  const plexus::value payload = plexus::value::binary(std::vector<std::uint8_t>(cfg.payload, 0x5a));
  auto params = [&] { return plexus::value::array({payload}); };
  auto check = [](const plexus::result<plexus::value>& r) {
    if (!r) throw std::runtime_error("plexus echo failed: " + r.error().message);
  };

  // The service registers asynchronously: retry until the route exists.
  for (const auto until = mono_now() + std::chrono::seconds(5);;) {
    auto r = client.call_value("echo", "echo", params(), std::chrono::seconds(1));
    if (r) break;
    if (r.error().code != plexus::errc::unavailable || mono_now() > until)
      throw std::runtime_error("plexus service never became ready: " + r.error().message);
    io.run_for(std::chrono::milliseconds(5));  // lets the registration land; bounded
  }

  // Sequential round trips, each call issued from the previous one's completion.
  std::vector<mono_clock::duration> samples;
  samples.reserve(cfg.calls);
  {
    int remaining = cfg.warmup + cfg.calls;
    mono_clock::time_point sent;
    std::function<void()> next = [&] {
      sent = mono_now();
      client.async_call("echo", "echo", params(), [&](plexus::result<plexus::value> r) {
        const auto rtt = mono_now() - sent;
        check(r);
        if (remaining-- <= cfg.calls) samples.push_back(rtt);
        if (remaining > 0) next();
      });
    };
    next();
    io.restart();
    while (remaining > 0)
      io.run_one();
  }

  // Pipelined: keep `inflight` calls outstanding for `seconds`.
  double calls_per_s = 0;
  {
    std::uint64_t completed = 0;
    int outstanding = 0;
    bool open = true;
    const auto start = mono_now();
    const auto end = start + std::chrono::duration_cast<mono_clock::duration>(
                                 std::chrono::duration<double>(cfg.seconds));
    std::function<void()> issue = [&] {
      ++outstanding;
      client.async_call("echo", "echo", params(), [&](plexus::result<plexus::value> r) {
        --outstanding;
        check(r);
        ++completed;
        if (open) issue();
      });
    };
    for (int i = 0; i < cfg.inflight; ++i)
      issue();
    while (open) {
      io.run_one();
      if (mono_now() >= end) open = false;
    }
    const auto elapsed = mono_now() - start;
    calls_per_s = static_cast<double>(completed) / std::chrono::duration<double>(elapsed).count();
    while (outstanding > 0)
      io.run_one();
  }

  echo_result out;
  out.rtt_p50_us = percentile_us(samples, 0.50);
  out.rtt_p99_us = percentile_us(samples, 0.99);
  out.calls_per_s = calls_per_s;
  out.broker_rss_kib = read_vm_hwm_kib(router_pid);
  client.close();
  children.stop_all();
  return out;
}
