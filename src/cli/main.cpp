// The plexus command. Exit codes: 0 success, 1 the remote side answered with an
// error, 2 usage error, 3 unavailable (no router, no route, peer gone) or deadline
// exceeded, 4 a local failure (cannot bind, internal error).

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iostream>

#include "plexus/broker/router.hpp"
#include "plexus/config/app_config.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/rpc/supervision.hpp"
#include "plexus/supervisor/run.hpp"
#include "plexus/transport/address.hpp"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <unordered_set>

namespace {

namespace asio = boost::asio;

constexpr int exit_ok = 0;
constexpr int exit_remote_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_unavailable = 3;
constexpr int exit_local_failure = 4;

int exit_code_for(const plexus::error& e) {
  switch (e.code) {
    case plexus::errc::unavailable:
    case plexus::errc::deadline_exceeded:
      return exit_unavailable;
    default:
      return exit_remote_error;
  }
}

void print_error(const plexus::error& e, bool json) {
  if (json) {
    std::cerr << plexus::value{{"error", e.message},
                               {"code", std::string(to_string(e.code))},
                               {"context", e.context}}
                     .dump()
              << "\n";
  } else {
    std::cerr << "plexus: " << e.message << " (" << to_string(e.code) << ")\n";
  }
}

// A command-line argument as a value: JSON when it parses, else the text itself, so
// `plexus call calc echo hello` sends "hello" and `... echo 1` sends 1.
plexus::value parse_arg(const std::string& text) {
  auto v = plexus::value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return text;
  return v;
}

int run_router(plexus::broker::router_options opts) {
  asio::io_context io(1);
  plexus::broker::router r(io, std::move(opts));
  if (auto ok = r.start(); !ok) {
    std::cerr << "plexus router: " << ok.error().message << "\n";
    return exit_local_failure;
  }
  for (const auto& a : r.addresses())
    std::cerr << "plexus router listening on " << a << "\n";
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    r.stop();
    io.stop();
  });
  io.run();
  return exit_ok;
}

struct client_args {
  std::string router = plexus::transport::default_router_address();
  double timeout_s = 5.0;
  bool json = false;
};

// Connects `c` to the router; on failure prints why (the exit code is then 3).
bool connect_or_report(plexus::rpc::client& c, const client_args& a) {
  if (auto ok = c.connect(); !ok) {
    print_error(ok.error(), a.json);
    return false;
  }
  return true;
}

int with_client(const client_args& a, const std::string& service, const std::string& method,
                plexus::value params, bool raw_json_output) {
  asio::io_context io(1);
  plexus::rpc::client c(io, {.router = a.router, .name = "plexus-cli"});
  if (!connect_or_report(c, a)) return exit_unavailable;
  const auto deadline =
      std::chrono::duration_cast<plexus::rpc::duration>(std::chrono::duration<double>(a.timeout_s));
  auto r = c.call_value(service, method, std::move(params), deadline);
  if (!r) {
    print_error(r.error(), a.json);
    return exit_code_for(r.error());
  }
  std::cout << (raw_json_output ? r->dump(2) : r->dump()) << "\n";
  return exit_ok;
}

plexus::rpc::duration seconds(double s) {
  return std::chrono::duration_cast<plexus::rpc::duration>(std::chrono::duration<double>(s));
}

// Stops `io` with exit code 3 once the client's connection has ended: the client has
// no "connection lost" callback for subscribers, so it looks once a second.
class connection_watch {
 public:
  connection_watch(asio::io_context& io, plexus::rpc::client& c, bool json, int& rc)
      : io_(io), c_(c), json_(json), rc_(rc), timer_(io) {
    arm();
  }

 private:
  void arm() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (!c_.connected()) {
        print_error({plexus::errc::unavailable, "connection to the router lost"}, json_);
        rc_ = exit_unavailable;
        io_.stop();
        return;
      }
      arm();
    });
  }

  asio::io_context& io_;
  plexus::rpc::client& c_;
  bool json_;
  int& rc_;
  asio::steady_timer timer_;
};

// Publishes, then waits for the router to answer a ping on the same connection, so the
// publication has reached the router when the command exits.
int publish(const client_args& a, const std::string& topic, plexus::value params) {
  asio::io_context io(1);
  plexus::rpc::client c(io, {.router = a.router, .name = "plexus-cli"});
  if (!connect_or_report(c, a)) return exit_unavailable;
  if (auto ok = c.publish(topic, std::move(params)); !ok) {
    print_error(ok.error(), a.json);
    return exit_code_for(ok.error());
  }
  if (auto r = c.call_value("plexus", "ping", plexus::value::array(), seconds(a.timeout_s)); !r) {
    print_error(r.error(), a.json);
    return exit_code_for(r.error());
  }
  return exit_ok;
}

// Prints publications as they arrive, one line each: `topic [args...]`, or with
// --json {"topic":…,"params":[…]}. Ends after `count` of them (0: never), after
// `for_s` seconds (0: never), on Ctrl-C, or when the router goes away (exit 3).
int subscribe(const client_args& a, std::vector<std::string> prefixes, std::size_t count,
              double for_s) {
  asio::io_context io(1);
  plexus::rpc::client c(io, {.router = a.router, .name = "plexus-subscribe"});
  if (!connect_or_report(c, a)) return exit_unavailable;
  if (prefixes.empty()) prefixes.push_back("");
  std::size_t seen = 0;
  auto print = [&](std::string_view topic, const plexus::value& params) {
    // Several publications can arrive in one read: --count is exact all the same.
    if (count != 0 && seen >= count) return;
    if (a.json)
      std::cout << plexus::value{{"topic", std::string(topic)}, {"params", params}}.dump() << "\n";
    else
      std::cout << topic << " " << params.dump() << "\n";
    std::cout.flush();
    if (count != 0 && ++seen >= count) io.stop();
  };
  for (const auto& p : prefixes)
    if (auto ok = c.subscribe(p, print); !ok) {
      print_error(ok.error(), a.json);
      return exit_code_for(ok.error());
    }
  // The router has the subscriptions once it answers a call sent after them.
  if (auto r = c.call_value("plexus", "ping", plexus::value::array(), seconds(a.timeout_s)); !r) {
    print_error(r.error(), a.json);
    return exit_code_for(r.error());
  }
  std::cerr << "plexus: subscribed to";
  for (const auto& p : prefixes)
    std::cerr << " '" << p << "'";
  std::cerr << std::endl;
  int rc = exit_ok;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  asio::steady_timer until(io);
  if (for_s > 0) {
    until.expires_after(seconds(for_s));
    until.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) io.stop();
    });
  }
  connection_watch watch(io, c, a.json, rc);
  io.run();
  if (c.dropped_publications() > 0)
    std::cerr << "plexus: the router dropped " << c.dropped_publications()
              << " publications for this subscriber (it read too slowly)\n";
  return rc;
}

// A call to the router's own service, with the error of a router that is not a
// `plexus run` made plain.
plexus::result<plexus::value> supervisor_call(const client_args& a, plexus::rpc::client& c,
                                              const std::string& method, plexus::value params) {
  auto r = c.call_value("plexus", method, std::move(params), seconds(a.timeout_s));
  if (!r && r.error().code == plexus::errc::not_found &&
      r.error().message.starts_with("the router has no method"))
    return plexus::error(plexus::errc::unavailable,
                         "the router at " + a.router +
                             " supervises nothing (it is a `plexus router`, not a `plexus run`)");
  return r;
}

// One call to the router's own service on a connection of its own; a failure is
// printed and its exit code left in `rc`.
std::optional<plexus::value> ask_router(const client_args& a, const std::string& method,
                                        plexus::value params, int& rc) {
  asio::io_context io(1);
  plexus::rpc::client c(io, {.router = a.router, .name = "plexus-cli"});
  if (!connect_or_report(c, a)) {
    rc = exit_unavailable;
    return std::nullopt;
  }
  auto r = supervisor_call(a, c, method, std::move(params));
  if (!r) {
    print_error(r.error(), a.json);
    rc = exit_code_for(r.error());
    return std::nullopt;
  }
  return std::move(*r);
}

int print_services(const client_args& a) {
  int rc = exit_ok;
  auto r = ask_router(a, "services", plexus::value::array(), rc);
  if (!r) return rc;
  if (a.json) {
    std::cout << r->dump() << "\n";
    return exit_ok;
  }
  if (r->empty()) {
    std::cout << "no services registered\n";
    return exit_ok;
  }
  std::printf("%-24s %8s  %s\n", "SERVICE", "WORKERS", "PIDS");
  for (const auto& s : *r) {
    std::string pids;
    for (const auto& p : s["pids"])
      pids += (pids.empty() ? "" : ",") + p.dump();
    std::printf("%-24s %8zu  %s\n", s["name"].get<std::string>().c_str(),
                s["workers"].get<std::size_t>(), pids.c_str());
  }
  return exit_ok;
}

// ---- plexus run and its companions ---------------------------------------------------

std::string program_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

int run_tree(const std::string& config_path, bool print_demo, const std::string& argv0) {
  if (print_demo) {
    std::cout << plexus::supervisor::demo_config();
    return exit_ok;
  }
  plexus::supervisor::run_options o;
  o.program_dir = program_dir();
  if (argv0.find('/') != std::string::npos) o.cli = argv0;  // as the user typed it
  auto cfg = config_path.empty()
                 ? plexus::config::parse(plexus::supervisor::demo_config(), "(built-in demo)")
                 : plexus::config::load_file(config_path);
  if (!cfg) {
    std::cerr << "plexus run: " << cfg.error().message << "\n";
    return exit_usage;
  }
  o.app = std::move(*cfg);
  o.demo = config_path.empty();
  o.config_dir = config_path.empty()
                     ? std::string()
                     : std::filesystem::absolute(config_path).parent_path().string();
  return plexus::supervisor::run(std::move(o));
}

std::string human_duration(double s) {
  char buf[32];
  const auto t = static_cast<long>(s);
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  return buf;
}

int print_ps(const client_args& a) {
  int rc = exit_ok;
  auto r = ask_router(a, "ps", plexus::value::array(), rc);
  if (!r) return rc;
  if (a.json) {
    std::cout << r->dump() << "\n";
    return exit_ok;
  }
  std::printf("%-16s %3s %8s  %-9s %8s %9s %9s %6s  %s\n", "NAME", "#", "PID", "STATE", "RESTARTS",
              "UPTIME", "RSS", "CPU%", "LAST EXIT");
  for (const auto& p : *r) {
    const auto pid = p.value("pid", 0);
    const bool up = pid != 0;
    char rss[32] = "-";
    if (up)
      std::snprintf(rss, sizeof rss, "%.1f MiB",
                    static_cast<double>(p.value("rss_bytes", std::uint64_t{0})) / (1 << 20));
    char cpu[16] = "-";
    if (up) std::snprintf(cpu, sizeof cpu, "%.1f", p.value("cpu_percent", 0.0));
    const auto last = p.value("last_exit", std::string());
    std::printf("%-16s %3zu %8s  %-9s %8zu %9s %9s %6s  %s\n",
                p.value("name", std::string()).c_str(), p.value("replica", std::size_t{0}),
                up ? std::to_string(pid).c_str() : "-", p.value("state", std::string()).c_str(),
                p.value("restarts", std::size_t{0}),
                up ? human_duration(p.value("uptime_s", 0.0)).c_str() : "-", rss, cpu,
                last.empty() ? "-" : last.c_str());
  }
  return exit_ok;
}

int supervisor_command(const client_args& a, const std::string& method, plexus::value params) {
  int rc = exit_ok;
  auto r = ask_router(a, method, std::move(params), rc);
  if (!r) return rc;
  std::cout << (r->is_string() ? r->get<std::string>() : r->dump()) << "\n";
  return exit_ok;
}

struct logs_args {
  bool follow = false;
  std::string level = "info";
  std::string process;
  std::size_t lines = 100;
};

// The recent history (plexus.logs), then with -f the live stream (subscription to
// "log."). A record that arrives while the history is fetched is printed once.
int print_logs(const client_args& a, const logs_args& l) {
  const int rank = plexus::rpc::level_rank(l.level);
  if (rank < 0) {
    std::cerr << "plexus logs: unknown level " << l.level
              << " (levels: trace, debug, info, warn, error, critical)\n";
    return exit_usage;
  }
  asio::io_context io(1);
  plexus::rpc::client c(io, {.router = a.router, .name = "plexus-logs"});
  if (!connect_or_report(c, a)) return exit_unavailable;
  auto print = [&](const plexus::value& record) {
    if (a.json)
      std::cout << record.dump() << "\n";
    else
      std::cout << plexus::supervisor::format_log_record(record) << "\n";
  };
  std::vector<plexus::value> live;
  bool history_done = false;
  std::unordered_set<std::string> seen;  // the history's records, to skip them live
  const std::string prefix = l.process.empty() ? "log." : "log." + l.process;
  if (l.follow) {
    auto ok = c.subscribe(prefix, [&](std::string_view, const plexus::value& params) {
      if (!params.is_array() || params.empty() || !params[0].is_object()) return;
      const auto& record = params[0];
      if (!plexus::supervisor::log_record_matches(record, l.process, rank)) return;
      if (!history_done) {
        live.push_back(record);
        return;
      }
      print(record);
      std::cout.flush();
    });
    if (!ok) {
      print_error(ok.error(), a.json);
      return exit_code_for(ok.error());
    }
  }
  plexus::value filter = {{"limit", l.lines}, {"level", l.level}};
  if (!l.process.empty()) filter["process"] = l.process;
  auto history = supervisor_call(a, c, "logs", plexus::value::array({filter}));
  if (!history) {
    print_error(history.error(), a.json);
    return exit_code_for(history.error());
  }
  for (const auto& record : *history) {
    print(record);
    if (l.follow) seen.insert(record.dump());
  }
  std::cout.flush();
  if (!l.follow) return exit_ok;
  history_done = true;
  for (const auto& record : live)
    if (!seen.contains(record.dump())) print(record);
  std::cout.flush();
  int rc = exit_ok;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  connection_watch watch(io, c, a.json, rc);
  io.run();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"plexus — supervisor, router and gateway for a tree of worker processes"};
  app.require_subcommand(1);
  client_args ca;

  auto add_client_flags = [&](CLI::App* cmd) {
    cmd->add_option("--router", ca.router,
                    "router address (default: $PLEXUS_ROUTER or a per-user ipc path)")
        ->capture_default_str();
    cmd->add_option("--timeout", ca.timeout_s, "deadline in seconds")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_flag("--json", ca.json, "machine-readable output (errors as JSON on stderr)");
  };

  auto* router_cmd = app.add_subcommand("router", "run a router");
  std::string config_path;
  router_cmd->add_option("--config,-c", config_path,
                         "app.toml to read the [router] section from (docs/config.md); "
                         "options given here override it");
  // One flag per router option (plexus/broker/router_options.hpp), as the texts given.
  std::map<std::string_view, std::vector<std::string>> router_flags;
  for (const auto& o : plexus::broker::router_option_table()) {
    auto* opt = router_cmd->add_option(std::string(o.flags), router_flags[o.key], o.plain_help());
    if (o.repeatable())
      opt->expected(1, -1);
    else
      opt->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)->default_str(
          o.default_value());
  }

  std::string service, method;
  auto* call_cmd =
      app.add_subcommand("call", "call SERVICE METHOD [ARGS...]; args are JSON values");
  call_cmd->add_option("service", service, "service name")->required();
  call_cmd->add_option("method", method, "method name")->required();
  // The arguments are taken as they stand: a declared vector option would split a
  // JSON array like '[1,"a,b"]' at its commas (CLI11's "[a,b]" list syntax).
  call_cmd->allow_extras();
  call_cmd->footer("ARGS: JSON values (bare words are strings), one argument each");
  add_client_flags(call_cmd);

  std::string topic;
  auto* publish_cmd = app.add_subcommand("publish", "publish TOPIC [ARGS...] to its subscribers");
  publish_cmd->add_option("topic", topic, "topic (the notification's method)")->required();
  publish_cmd->allow_extras();  // as for call: each argument whole
  publish_cmd->footer("ARGS: JSON values (bare words are strings), one argument each");
  add_client_flags(publish_cmd);

  std::vector<std::string> prefixes;
  std::size_t sub_count = 0;
  double sub_for = 0;
  auto* subscribe_cmd = app.add_subcommand(
      "subscribe", "print publications whose topic starts with a PREFIX (default: all)");
  subscribe_cmd->add_option("prefix", prefixes, "topic prefixes (repeatable)");
  subscribe_cmd->add_option("--count,-n", sub_count, "exit after this many publications");
  subscribe_cmd->add_option("--for", sub_for, "exit after this many seconds")
      ->check(CLI::NonNegativeNumber);
  add_client_flags(subscribe_cmd);

  auto* services_cmd = app.add_subcommand("services", "list the services the router knows");
  add_client_flags(services_cmd);

  std::string describe_name;
  auto* describe_cmd = app.add_subcommand("describe", "show a service's methods and signatures");
  describe_cmd->add_option("service", describe_name, "service name")->required();
  add_client_flags(describe_cmd);

  auto* ping_cmd = app.add_subcommand("ping", "check that the router answers");
  add_client_flags(ping_cmd);

  std::string run_config;
  bool print_demo = false;
  auto* run_cmd = app.add_subcommand(
      "run", "run a router and supervise the processes of CONFIG (no CONFIG: the demo app)");
  run_cmd->add_option("config", run_config, "app.toml (docs/config.md)");
  run_cmd->add_option("--config,-c", run_config, "app.toml (the same as the positional CONFIG)");
  run_cmd->add_flag("--print-demo", print_demo, "print the demo app's config and exit");
  run_cmd->footer(
      "Exit codes: 0 stopped on request, 2 bad config, 4 cannot listen or log, 5 too many "
      "restarts (intensity exceeded), 6 emergency stop by a child");

  auto* ps_cmd = app.add_subcommand("ps", "show the supervised processes (plexus run)");
  add_client_flags(ps_cmd);

  std::string target;
  auto* stop_cmd = app.add_subcommand(
      "stop",
      "stop process NAME (it stays stopped until restarted), or with no NAME the whole "
      "plexus run");
  stop_cmd->add_option("name", target, "process name");
  add_client_flags(stop_cmd);
  auto* restart_cmd = app.add_subcommand("restart", "restart every replica of process NAME");
  restart_cmd->add_option("name", target, "process name")->required();
  add_client_flags(restart_cmd);

  logs_args la;
  auto* logs_cmd = app.add_subcommand("logs", "show the processes' logs (plexus run)");
  logs_cmd->add_flag("--follow,-f", la.follow, "keep printing new records");
  logs_cmd
      ->add_option("--level", la.level,
                   "the lowest level shown: trace, debug, info, warn, error, critical")
      ->capture_default_str();
  logs_cmd->add_option("--process,-p", la.process, "only this process");
  logs_cmd->add_option("--lines,-n", la.lines, "how many recent records first")
      ->capture_default_str();
  add_client_flags(logs_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }

  if (router_cmd->parsed()) {
    plexus::broker::router_options router_opts;
    if (!config_path.empty()) {
      auto cfg = plexus::config::load_file(config_path);
      if (!cfg) {
        std::cerr << "plexus router: " << cfg.error().message << "\n";
        return exit_usage;
      }
      router_opts = cfg->router;
    }
    // The command line overrides the file, option by option.
    for (const auto& o : plexus::broker::router_option_table()) {
      if (router_cmd->count(std::string(o.long_flag())) == 0) continue;
      auto v = o.from_text(router_flags[o.key]);
      auto ok = v ? o.set(router_opts, *v) : plexus::result<void>(std::move(v).error());
      if (!ok) {
        std::cerr << "plexus router: " << o.long_flag() << ": " << ok.error().message << "\n";
        return exit_usage;
      }
    }
    plexus::broker::add_default_listen(router_opts, plexus::transport::default_router_address());
    return run_router(std::move(router_opts));
  }
  if (call_cmd->parsed()) {
    plexus::value params = plexus::value::array();
    for (const auto& a : call_cmd->remaining())
      params.push_back(parse_arg(a));
    return with_client(ca, service, method, std::move(params), false);
  }
  if (publish_cmd->parsed()) {
    plexus::value params = plexus::value::array();
    for (const auto& a : publish_cmd->remaining())
      params.push_back(parse_arg(a));
    return publish(ca, topic, std::move(params));
  }
  if (subscribe_cmd->parsed()) return subscribe(ca, prefixes, sub_count, sub_for);
  if (services_cmd->parsed()) return print_services(ca);
  if (describe_cmd->parsed())
    return with_client(ca, "plexus", "describe", plexus::value::array({describe_name}), !ca.json);
  if (ping_cmd->parsed()) return with_client(ca, "plexus", "ping", plexus::value::array(), false);
  if (run_cmd->parsed()) return run_tree(run_config, print_demo, argv[0]);
  if (ps_cmd->parsed()) return print_ps(ca);
  if (stop_cmd->parsed())
    return supervisor_command(
        ca, "stop", target.empty() ? plexus::value::array() : plexus::value::array({target}));
  if (restart_cmd->parsed())
    return supervisor_command(ca, "restart", plexus::value::array({target}));
  if (logs_cmd->parsed()) return print_logs(ca, la);
  return exit_usage;
}
