// The commands that talk to services through a router: call, publish, subscribe,
// services, describe, routes, ping.

#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <iostream>

#include "cli/command.hpp"

namespace plexus::cli {

namespace asio = boost::asio;

namespace {

// One call; the result printed as JSON (`pretty`: indented).
int call(const client_args& a, const std::string& service, const std::string& method, value params,
         bool pretty) {
  asio::io_context io(1);
  rpc::client c(io, one_shot_client(a, "plexus-cli"));
  if (!connect_or_report(c, a)) return exit_unavailable;
  auto r = c.call_value(service, method, std::move(params), seconds(a.timeout_s));
  if (!r) {
    print_error(r.error(), a.json);
    return exit_code(r.error().code);
  }
  std::cout << (pretty ? r->dump(2) : r->dump()) << "\n";
  return exit_ok;
}

// Publishes, then waits for the router to answer a ping on the same connection, so the
// publication has reached the router when the command exits.
int publish(const client_args& a, const std::string& topic, value params) {
  asio::io_context io(1);
  rpc::client c(io, one_shot_client(a, "plexus-cli"));
  if (!connect_or_report(c, a)) return exit_unavailable;
  if (auto ok = c.publish(topic, std::move(params)); !ok) {
    print_error(ok.error(), a.json);
    return exit_code(ok.error().code);
  }
  if (auto r = c.call_value("plexus", "ping", value::array(), seconds(a.timeout_s)); !r) {
    print_error(r.error(), a.json);
    return exit_code(r.error().code);
  }
  return exit_ok;
}

struct subscribe_args {
  std::vector<std::string> prefixes;
  std::size_t count = 0;
  double for_s = 0;
};

// Prints publications as they arrive, one line each: `topic [args...]`, or with
// --json {"topic":…,"params":[…]}. Ends after `count` of them (0: never), after
// `for_s` seconds (0: never), on Ctrl-C, or when the router goes away (exit 3).
int subscribe(const client_args& a, subscribe_args s) {
  asio::io_context io(1);
  rpc::client c(io, one_shot_client(a, "plexus-subscribe"));
  if (!connect_or_report(c, a)) return exit_unavailable;
  if (s.prefixes.empty()) s.prefixes.push_back("");
  std::size_t seen = 0;
  auto print = [&](std::string_view topic, const value& params) {
    // Several publications can arrive in one read: --count is exact all the same.
    if (s.count != 0 && seen >= s.count) return;
    if (a.json)
      std::cout << value{{"topic", std::string(topic)}, {"params", params}}.dump() << "\n";
    else
      std::cout << topic << " " << params.dump() << "\n";
    std::cout.flush();
    if (s.count != 0 && ++seen >= s.count) io.stop();
  };
  for (const auto& p : s.prefixes)
    if (auto ok = c.subscribe(p, print); !ok) {
      print_error(ok.error(), a.json);
      return exit_code(ok.error().code);
    }
  // The router has the subscriptions once it answers a call sent after them.
  if (auto r = c.call_value("plexus", "ping", value::array(), seconds(a.timeout_s)); !r) {
    print_error(r.error(), a.json);
    return exit_code(r.error().code);
  }
  std::cerr << "plexus: subscribed to";
  for (const auto& p : s.prefixes)
    std::cerr << " '" << p << "'";
  std::cerr << std::endl;
  int rc = exit_ok;
  asio::steady_timer until(io);
  if (s.for_s > 0) {
    until.expires_after(seconds(s.for_s));
    until.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  }
  connection_watch watch(io, c, a.json, rc);
  run_until_signal(io);
  if (c.dropped_publications() > 0)
    std::cerr << "plexus: the router dropped " << c.dropped_publications()
              << " publications for this subscriber (it read too slowly)\n";
  return rc;
}

void print_services(const value& services) {
  if (services.empty()) {
    std::cout << "no services registered\n";
    return;
  }
  std::printf("%-24s %8s  %s\n", "SERVICE", "WORKERS", "PIDS");
  for (const auto& s : services) {
    std::string pids;
    for (const auto& p : s["pids"])
      pids += (pids.empty() ? "" : ",") + p.dump();
    std::printf("%-24s %8zu  %s\n", s["name"].get<std::string>().c_str(),
                s["workers"].get<std::size_t>(), pids.c_str());
  }
}

void print_routes(const value& routes) {
  if (routes.empty()) {
    std::cout << "no HTTP routes declared\n";
    return;
  }
  std::printf("%-7s %-32s %-6s %-20s %8s  %s\n", "VERB", "PATTERN", "KIND", "SERVICE", "REPLICAS",
              "DECLARED AT");
  for (const auto& r : routes)
    std::printf("%-7s %-32s %-6s %-20s %8zu  %s\n", r.value("verb", "").c_str(),
                r.value("pattern", "").c_str(), r.value("kind", "").c_str(),
                r.value("service", "").c_str(), r.value("replicas", std::size_t{0}),
                r.value("where", "").c_str());
}

struct call_args {
  client_args client;
  std::string service, method;  // call; describe uses service
  std::string topic;            // publish
  subscribe_args subscription;
};

}  // namespace

void add_call_commands(CLI::App& app, commands& cmds) {
  auto a = std::make_shared<call_args>();
  auto& ca = a->client;

  auto* call_cmd =
      app.add_subcommand("call", "call SERVICE METHOD [ARGS...]; args are JSON values");
  call_cmd->add_option("service", a->service, "service name")->required();
  call_cmd->add_option("method", a->method, "method name")->required();
  // The arguments are taken as they stand: a declared vector option would split a
  // JSON array like '[1,"a,b"]' at its commas (CLI11's "[a,b]" list syntax).
  call_cmd->allow_extras();
  call_cmd->footer("ARGS: JSON values (bare words are strings), one argument each");
  add_client_flags(call_cmd, ca);
  cmds.add(call_cmd, [a, call_cmd] {
    return call(a->client, a->service, a->method, parse_args(call_cmd->remaining()), false);
  });

  auto* publish_cmd = app.add_subcommand("publish", "publish TOPIC [ARGS...] to its subscribers");
  publish_cmd->add_option("topic", a->topic, "topic (the notification's method)")->required();
  publish_cmd->allow_extras();  // as for call: each argument whole
  publish_cmd->footer("ARGS: JSON values (bare words are strings), one argument each");
  add_client_flags(publish_cmd, ca);
  cmds.add(publish_cmd, [a, publish_cmd] {
    return publish(a->client, a->topic, parse_args(publish_cmd->remaining()));
  });

  auto& s = a->subscription;
  auto* subscribe_cmd = app.add_subcommand(
      "subscribe", "print publications whose topic starts with a PREFIX (default: all)");
  subscribe_cmd->add_option("prefix", s.prefixes, "topic prefixes (repeatable)");
  subscribe_cmd->add_option("--count,-n", s.count, "exit after this many publications");
  subscribe_cmd->add_option("--for", s.for_s, "exit after this many seconds")
      ->check(CLI::NonNegativeNumber);
  add_client_flags(subscribe_cmd, ca);
  cmds.add(subscribe_cmd, [a] { return subscribe(a->client, a->subscription); });

  auto* services_cmd = app.add_subcommand("services", "list the services the router knows");
  add_client_flags(services_cmd, ca);
  cmds.add(services_cmd,
           [a] { return show(a->client, "services", value::array(), print_services); });

  auto* describe_cmd = app.add_subcommand("describe", "show a service's methods and signatures");
  describe_cmd->add_option("service", a->service, "service name")->required();
  add_client_flags(describe_cmd, ca);
  cmds.add(describe_cmd, [a] {
    return call(a->client, "plexus", "describe", value::array({a->service}), !a->client.json);
  });

  auto* routes_cmd =
      app.add_subcommand("routes", "list the HTTP routes services declared (plexus run's gateway)");
  add_client_flags(routes_cmd, ca);
  cmds.add(routes_cmd, [a] { return show(a->client, "routes", value::array(), print_routes); });

  auto* ping_cmd = app.add_subcommand("ping", "check that the router answers");
  add_client_flags(ping_cmd, ca);
  cmds.add(ping_cmd, [a] { return call(a->client, "plexus", "ping", value::array(), false); });
}

}  // namespace plexus::cli
