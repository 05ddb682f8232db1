// examples/calc: a small service. Prints "calc ready" on stdout once the router
// confirmed its registration; SIGINT/SIGTERM drain it gracefully. It may start before
// the router (it waits for it) and outlives a router restart (it registers again);
// --fail-fast exits 3 instead when there is no router or the router goes away.
//
//   calc --router ipc:///tmp/plexus.sock &
//   plexus call calc add 1 2      # 3
//   plexus call calc div 1 0      # error: division by zero (exit 1)

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <iostream>
#include <thread>

#include <unistd.h>

#include "plexus/rpc/service.hpp"

namespace asio = boost::asio;

int main(int argc, char** argv) {
  CLI::App app{"calc — an example plexus service: add, div, echo, pid, sleep, nap"};
  plexus::rpc::service_options opts;
  opts.name = "calc";
  app.add_option("--router", opts.router, "router address")->capture_default_str();
  app.add_option("--name", opts.name, "service name to register")->capture_default_str();
  app.add_option("--workers", opts.worker_threads, "threads for blocking handlers")
      ->capture_default_str();
  bool fail_fast = false;
  app.add_flag("--fail-fast", fail_fast,
               "exit when no router listens or the router goes away, instead of waiting for it");
  CLI11_PARSE(app, argc, argv);
  opts.reconnect.enabled = !fail_fast;

  asio::io_context io(1);
  plexus::rpc::service calc(io, opts);

  // Integers stay integers; any float makes the sum a float.
  calc.route("add", [](plexus::value a, plexus::value b) -> plexus::value {
    if (!a.is_number() || !b.is_number())
      throw plexus::remote_error(plexus::errc::invalid_argument, "add expects two numbers");
    if (a.is_number_integer() && b.is_number_integer())
      return a.get<std::int64_t>() + b.get<std::int64_t>();
    return a.get<double>() + b.get<double>();
  });
  calc.route("div", [](double a, double b) {
    if (b == 0)
      throw plexus::remote_error(plexus::errc::invalid_argument, "division by zero",
                                 {{"dividend", a}});
    return a / b;
  });
  calc.route("echo", [](plexus::value v) { return v; });
  calc.route("pid", [] { return static_cast<int>(::getpid()); });
  // Blocking: runs on the worker pool, so the loop keeps answering other calls.
  calc.route("sleep",
             [](double seconds) {
               std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
               return seconds;
             },
             {.blocking = true});
  // The same, as a coroutine on the loop: no thread is held while it waits.
  calc.route("nap", [&io](double seconds) -> asio::awaitable<double> {
    asio::steady_timer t(io, std::chrono::duration_cast<asio::steady_timer::duration>(
                                 std::chrono::duration<double>(seconds)));
    co_await t.async_wait(asio::use_awaitable);
    co_return seconds;
  });

  // Before start(): a stop asked for while calc waits for the router is orderly too.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) calc.stop([&] { io.stop(); });
  });
  calc.on_link_event([&](plexus::rpc::link_event e, const plexus::error& why) {
    if (e == plexus::rpc::link_event::lost)
      std::cerr << "calc: lost the router: " << why.message << "; waiting for it to come back"
                << std::endl;
    else if (e == plexus::rpc::link_event::reconnected)
      std::cerr << "calc: reconnected to the router, registered again" << std::endl;
  });
  auto started = calc.start([&] { std::cout << opts.name << " ready" << std::endl; });
  if (!started) {
    std::cerr << "calc: " << started.error().message << "\n";
    return 3;
  }
  if (!calc.connected())
    std::cerr << "calc: waiting for the router at " << opts.router << std::endl;
  int rc = 0;
  calc.on_disconnect([&](const plexus::error& e) {  // --fail-fast only
    std::cerr << "calc: lost the router: " << e.message << "\n";
    rc = 3;
    io.stop();
  });
  io.run();
  return rc;
}
