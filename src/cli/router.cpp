// plexus router: a router on its own, configured by app.toml's [router] and/or flags.
// The flags are made from the router's option table (plexus/broker/router_options.hpp),
// the same table the config parser and docs/config.md use.

#include <iostream>
#include <map>

#include "cli/command.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/config/app_config.hpp"
#include "plexus/os/limits.hpp"

namespace plexus::cli {

namespace {

int run_router(broker::router_options opts) {
  os::raise_fd_limit();  // one descriptor per peer
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
  std::string config_path;
  // Each option's texts as given on the command line, by TOML key.
  std::map<std::string_view, std::vector<std::string>> given;
};

// The file's [router] (if any), then each option given on the command line in its
// place. Errors name the flag.
result<broker::router_options> options_of(const router_args& a, const CLI::App& cmd) {
  broker::router_options o;
  if (!a.config_path.empty()) {
    auto cfg = config::load_file(a.config_path);
    if (!cfg) return std::move(cfg).error();
    o = std::move(cfg->router);
  }
  for (const auto& opt : broker::router_option_table()) {
    if (cmd.count(std::string(opt.long_flag())) == 0) continue;
    auto v = opt.from_text(a.given.at(opt.key));
    auto ok = v ? opt.set(o, *v) : result<void>(std::move(v).error());
    if (!ok)
      return plexus::error(errc::invalid_argument,
                           std::string(opt.long_flag()) + ": " + ok.error().message);
  }
  broker::add_default_listen(o, transport::default_router_address());
  return o;
}

}  // namespace

void add_router_command(CLI::App& app, commands& cmds) {
  auto a = std::make_shared<router_args>();
  auto* cmd = app.add_subcommand("router", "run a router");
  cmd->add_option("--config,-c", a->config_path,
                  "app.toml to read the [router] section from (docs/config.md); "
                  "options given here override it");
  for (const auto& opt : broker::router_option_table()) {
    auto* o = cmd->add_option(std::string(opt.flags), a->given[opt.key], opt.plain_help());
    if (opt.repeatable())
      o->expected(1, -1);
    else
      o->expected(1)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->default_str(opt.default_value());
  }
  cmds.add(cmd, [a, cmd]() -> int {
    auto o = options_of(*a, *cmd);
    if (!o) {
      std::cerr << "plexus router: " << o.error().message << "\n";
      return exit_usage;
    }
    return run_router(std::move(*o));
  });
}

}  // namespace plexus::cli
