// plexus router: a router on its own, configured by flags and/or app.toml's [router].

#include <iostream>

#include "cli/command.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/config/app_config.hpp"

namespace plexus::cli {

namespace {

int run_router(broker::router_options opts) {
  boost::asio::io_context io(1);
  broker::router r(io, std::move(opts));
  if (auto ok = r.start(); !ok) {
    std::cerr << "plexus router: " << ok.error().message << "\n";
    return exit_local_failure;
  }
  for (const auto& a : r.addresses())
    std::cerr << "plexus router listening on " << a << "\n";
  run_until_signal(io);
  r.stop();
  return exit_ok;
}

struct router_args {
  broker::router_options opts;
  std::string config_path;
};

}  // namespace

void add_router_command(CLI::App& app, commands& cmds) {
  auto a = std::make_shared<router_args>();
  auto& o = a->opts;
  auto* cmd = app.add_subcommand("router", "run a router");
  cmd->add_option("--config,-c", a->config_path,
                  "app.toml to read the [router] section from (docs/config.md); "
                  "options given here override it");
  cmd->add_option("--zmq-frontend", o.zmq_frontend,
                  "ZeroMQ endpoint for seed-style client DEALERs (repeatable)");
  cmd->add_option("--zmq-backend", o.zmq_backend,
                  "ZeroMQ endpoint for seed-style service DEALERs, identity = service "
                  "name (repeatable)");
  cmd->add_option("--listen,-l", o.listen,
                  "address to listen on (repeatable): ipc:///path, tcp://host:port")
      ->expected(1, -1);
  cmd->add_option("--zmq-publishers", o.zmq_publishers,
                  "ZeroMQ endpoint for seed-style PUB clients: [topic, notification] "
                  "messages are published (repeatable)");
  cmd->add_option("--zmq-subscribers", o.zmq_subscribers,
                  "ZeroMQ endpoint for seed-style SUB services: every publication is "
                  "sent as [topic, notification] (repeatable)");
  cmd->add_option("--udp", o.udp,
                  "UDP endpoint udp://host:port[?interface=IP] (multicast joins the "
                  "group): each datagram, one notification, is published (repeatable)");
  cmd->add_option("--subscriber-queue-bytes", o.subscriber_queue_bytes,
                  "bytes queued to one subscriber beyond which publications to it are "
                  "dropped and counted")
      ->capture_default_str();
  cmd->add_option("--max-frame-bytes", o.transport.max_frame_bytes,
                  "largest frame a peer may send; larger ones disconnect it")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{64}, std::size_t{1} << 31));
  cmd->add_option("--max-queued-bytes", o.transport.max_queued_bytes,
                  "bytes queued to one peer beyond which frames to it are refused")
      ->capture_default_str();

  cmds.add(cmd, [a, cmd]() -> int {
    auto& r = a->opts;
    if (!a->config_path.empty()) {
      auto cfg = config::load_file(a->config_path);
      if (!cfg) {
        std::cerr << "plexus router: " << cfg.error().message << "\n";
        return exit_usage;
      }
      // The file gives what the command line did not.
      const auto given = [&](const char* flag) { return cmd->count(flag) > 0; };
      const auto& c = cfg->router;
      if (!given("--listen")) r.listen = c.listen;
      if (!given("--zmq-frontend")) r.zmq_frontend = c.zmq_frontend;
      if (!given("--zmq-backend")) r.zmq_backend = c.zmq_backend;
      if (!given("--zmq-publishers")) r.zmq_publishers = c.zmq_publishers;
      if (!given("--zmq-subscribers")) r.zmq_subscribers = c.zmq_subscribers;
      if (!given("--udp")) r.udp = c.udp;
      if (!given("--max-frame-bytes")) r.transport.max_frame_bytes = c.transport.max_frame_bytes;
      if (!given("--max-queued-bytes")) r.transport.max_queued_bytes = c.transport.max_queued_bytes;
      if (!given("--subscriber-queue-bytes")) r.subscriber_queue_bytes = c.subscriber_queue_bytes;
    }
    if (r.listen.empty()) r.listen.push_back(transport::default_router_address());
    return run_router(std::move(r));
  });
}

}  // namespace plexus::cli
