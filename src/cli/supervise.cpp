// plexus run and the commands that ask it about its processes: ps, stop, restart.

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "app/demo.hpp"
#include "app/run.hpp"
#include "cli/command.hpp"

namespace plexus::cli {

namespace {

std::string program_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

struct run_args {
  std::string config;
  bool print_demo = false;
};

int run_tree(const run_args& r, const std::string& argv0) {
  if (r.print_demo) {
    std::cout << app::demo_config();
    return exit_ok;
  }
  app::run_options o;
  o.program_dir = program_dir();
  if (argv0.find('/') != std::string::npos) o.cli = argv0;  // as the user typed it
  auto cfg = r.config.empty() ? config::parse(app::demo_config(), "(built-in demo)")
                              : config::load_file(r.config);
  if (!cfg) {
    std::cerr << "plexus run: " << cfg.error().message << "\n";
    return exit_usage;
  }
  o.app = std::move(*cfg);
  o.demo = r.config.empty();
  o.config_dir =
      r.config.empty() ? std::string() : std::filesystem::absolute(r.config).parent_path().string();
  return app::run(std::move(o));
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

void print_ps(const value& processes) {
  std::printf("%-16s %3s %8s  %-9s %8s %9s %9s %6s  %s\n", "NAME", "#", "PID", "STATE", "RESTARTS",
              "UPTIME", "RSS", "CPU%", "LAST EXIT");
  for (const auto& p : processes) {
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
}

// plexus.stop / plexus.restart: prints the router's answer.
int control(const client_args& a, const std::string& method, value params) {
  int rc = exit_ok;
  auto r = ask_router(a, method, std::move(params), rc);
  if (!r) return rc;
  std::cout << (r->is_string() ? r->get<std::string>() : r->dump()) << "\n";
  return exit_ok;
}

struct supervise_args {
  client_args client;
  run_args run;
  std::string target;  // stop, restart
};

}  // namespace

void add_supervisor_commands(CLI::App& app, commands& cmds, std::string argv0) {
  auto a = std::make_shared<supervise_args>();
  auto& ca = a->client;

  auto* run_cmd = app.add_subcommand(
      "run", "run a router and supervise the processes of CONFIG (no CONFIG: the demo app)");
  run_cmd->add_option("config", a->run.config, "app.toml (docs/config.md)");
  run_cmd->add_option("--config,-c", a->run.config, "app.toml (the same as the positional CONFIG)");
  run_cmd->add_flag("--print-demo", a->run.print_demo, "print the demo app's config and exit");
  run_cmd->footer(
      "Exit codes: 0 stopped on request, 2 bad config, 4 cannot listen or log, 5 too many "
      "restarts (intensity exceeded), 6 emergency stop by a child");
  cmds.add(run_cmd, [a, argv0] { return run_tree(a->run, argv0); });

  auto* ps_cmd = app.add_subcommand("ps", "show the supervised processes (plexus run)");
  add_client_flags(ps_cmd, ca);
  cmds.add(ps_cmd, [a] { return show(a->client, "ps", value::array(), print_ps); });

  auto* stop_cmd = app.add_subcommand(
      "stop",
      "stop process NAME (it stays stopped until restarted), or with no NAME the whole "
      "plexus run");
  stop_cmd->add_option("name", a->target, "process name");
  add_client_flags(stop_cmd, ca);
  cmds.add(stop_cmd, [a] {
    return control(a->client, "stop",
                   a->target.empty() ? value::array() : value::array({a->target}));
  });

  auto* restart_cmd = app.add_subcommand("restart", "restart every replica of process NAME");
  restart_cmd->add_option("name", a->target, "process name")->required();
  add_client_flags(restart_cmd, ca);
  cmds.add(restart_cmd, [a] { return control(a->client, "restart", value::array({a->target})); });
}

}  // namespace plexus::cli
