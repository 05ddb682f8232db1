// examples/ticker: publishes `tick <count>` every second (the demo's publisher).
// A client, not a service, so it tells `plexus run` it is ready itself. It may start
// before the router and outlives a router restart: ticks while the router is away are
// skipped.
//
//   ticker --router ipc:///tmp/plexus.sock --interval 1 &
//   plexus subscribe tick          # tick [1], tick [2], …

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iostream>

#include "plexus/rpc/client.hpp"
#include "plexus/rpc/supervision.hpp"

namespace asio = boost::asio;

int main(int argc, char** argv) {
  CLI::App app{"ticker — publishes tick <count> every interval"};
  plexus::rpc::client_options opts;
  opts.name = "ticker";
  std::string topic = "tick";
  double interval = 1.0;
  app.add_option("--router", opts.router, "router address")->capture_default_str();
  app.add_option("--topic", topic, "topic to publish under")->capture_default_str();
  app.add_option("--interval", interval, "seconds between ticks")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  asio::io_context io(1);
  plexus::rpc::client c(io, opts);
  c.on_link_event([](plexus::rpc::link_event e, const plexus::error& why) {
    if (e == plexus::rpc::link_event::lost)
      std::cerr << "ticker: lost the router: " << why.message << "; waiting for it to come back"
                << std::endl;
    else if (e == plexus::rpc::link_event::reconnected)
      std::cerr << "ticker: reconnected to the router" << std::endl;
  });
  if (auto ok = c.connect(); !ok) {
    std::cerr << "ticker: " << ok.error().message << "\n";
    return 3;
  }
  plexus::rpc::notify_ready();
  std::cout << "ticker ready: publishing " << topic << " every " << interval << " s" << std::endl;

  std::int64_t count = 0;
  asio::steady_timer timer(io);
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
        std::chrono::duration<double>(interval)));
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      if (!c.connected()) {  // waiting for the router: this tick is skipped
        tick();
        return;
      }
      ++count;
      (void)c.publish(topic, plexus::value::array({count}));
      // A structured log record now and then (plexus logs shows it), not one per tick:
      // plexus run's log history is bounded and shared by every process.
      if (count % 10 == 0) (void)c.log("info", "published", {{"topic", topic}, {"count", count}});
      tick();
    });
  };
  tick();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  io.run();
  return 0;
}
