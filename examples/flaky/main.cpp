// examples/flaky: a service that crashes now and then, so that `plexus run` has
// something to restart (the demo's third process). It answers `ping` and `uptime`,
// logs a structured record per call, and exits with code 3 after a random time.
//
//   flaky --crash-after 4 --crash-jitter 6    # crashes 4 to 10 s after it started

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <iostream>
#include <random>

#include <unistd.h>

#include "plexus/rpc/service.hpp"

namespace asio = boost::asio;

int main(int argc, char** argv) {
  CLI::App app{"flaky — a service that crashes now and then (for the plexus run demo)"};
  plexus::rpc::service_options opts;
  opts.name = "flaky";
  double crash_after = 4, crash_jitter = 6;
  app.add_option("--router", opts.router, "router address")->capture_default_str();
  app.add_option("--crash-after", crash_after, "seconds before the earliest crash (0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--crash-jitter", crash_jitter, "random extra seconds before the crash")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  asio::io_context io(1);
  plexus::rpc::service flaky(io, opts);
  const auto born = std::chrono::steady_clock::now();
  flaky.route("ping", [&flaky] {
    (void)flaky.log("info", "ping answered", {{"pid", static_cast<int>(::getpid())}});
    return std::string("pong");
  });
  flaky.route("uptime", [born] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - born).count();
  });
  if (auto ok = flaky.start([] { std::cout << "flaky ready" << std::endl; }); !ok) {
    std::cerr << "flaky: " << ok.error().message << "\n";
    return 3;
  }

  asio::steady_timer crash(io);
  if (crash_after > 0) {
    std::mt19937 rng(std::random_device{}());
    const double at = crash_after + std::uniform_real_distribution<double>(0, crash_jitter)(rng);
    crash.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
        std::chrono::duration<double>(at)));
    crash.async_wait([at](const boost::system::error_code& ec) {
      if (ec) return;
      std::cerr << "flaky: simulated crash after " << at << " s" << std::endl;
      std::_Exit(3);
    });
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) flaky.stop([&] { io.stop(); });
  });
  io.run();
  return 0;
}
