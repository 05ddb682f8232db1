#include "measure.hpp"

#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <cstdint>
#include <stdexcept>

namespace bench {

echo_result measure_echo(echo_client& client, const echo_config& cfg) {
  if (cfg.calls < 1 || cfg.warmup < 0 || cfg.inflight < 1 || !(cfg.seconds > 0)) {
    throw std::invalid_argument("calls >= 1, warmup >= 0, inflight >= 1 and seconds > 0 required");
  }
  for (int i = 0; i < cfg.warmup; ++i)
    client.round_trip();
  std::vector<mono_clock::duration> samples;
  samples.reserve(static_cast<std::size_t>(cfg.calls));
  for (int i = 0; i < cfg.calls; ++i) {
    const auto t0 = mono_now();
    client.round_trip();
    samples.push_back(mono_now() - t0);
  }

  // Pipelined: `inflight` requests out; per wake-up take every echo, send as many new requests.
  std::uint64_t completed = 0;
  const auto start = mono_now();
  const auto end = start + std::chrono::duration_cast<mono_clock::duration>(
                               std::chrono::duration<double>(cfg.seconds));
  auto stop = start;
  client.send(static_cast<std::size_t>(cfg.inflight));
  for (;;) {
    const std::size_t answered = client.receive();
    completed += answered;
    stop = mono_now();
    if (stop >= end) break;
    if (answered != 0) client.send(answered);
  }
  const double elapsed = std::chrono::duration<double>(stop - start).count();

  echo_result result;
  result.rtt_p50_us = percentile_us(samples, 0.50);
  result.rtt_p99_us = percentile_us(samples, 0.99);
  result.calls_per_s = static_cast<double>(completed) / elapsed;
  return result;
}

started_roles start_roles(child_guard& children, const echo_config& cfg, const role_command& broker,
                          const std::vector<std::string>& broker_sockets,
                          const role_command& service) {
  constexpr auto startup_timeout = std::chrono::seconds(10);
  for (const auto& path : broker_sockets)
    ::unlink(path.c_str());
  started_roles roles;
  roles.broker = children.spawn(cfg.self_exe, broker.role, broker.args);
  for (const auto& path : broker_sockets)
    wait_for_unix_socket(path, startup_timeout, roles.broker);
  roles.service = children.spawn(cfg.self_exe, service.role, service.args);
  return roles;
}

void run_until_signalled(boost::asio::io_context& io) {
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  io.run();
}

}  // namespace bench
