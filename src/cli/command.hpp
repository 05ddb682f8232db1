// The plexus command's pieces: each command family (router.cpp, calls.cpp,
// supervise.cpp, logs.cpp) adds its subcommands to the CLI11 app and registers what
// each one runs; main.cpp parses and runs the one given. Exit codes: app/exit_codes.hpp.
//
//   cli::commands cmds;
//   cli::add_call_commands(app, cmds);   // call, publish, subscribe, services, …
//   app.parse(argc, argv);  return cmds.run_parsed();
#pragma once

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/exit_codes.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/transport/address.hpp"

namespace plexus::cli {

using app::exit_code;
using app::exit_local_failure;
using app::exit_ok;
using app::exit_unavailable;
using app::exit_usage;

// The subcommands and what each runs once parsed.
class commands {
 public:
  void add(CLI::App* cmd, std::function<int()> run) { table_.emplace_back(cmd, std::move(run)); }
  // Runs the parsed subcommand; exit_usage if none was.
  int run_parsed() const {
    for (const auto& [cmd, run] : table_)
      if (cmd->parsed()) return run();
    return exit_usage;
  }

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> table_;
};

// Options every command that talks to a router takes.
struct client_args {
  std::string router = transport::default_router_address();
  double timeout_s = 5.0;
  bool json = false;
};
void add_client_flags(CLI::App* cmd, client_args& a);

// "plexus: message (code)", or with --json {"error","code","context"} on stderr.
void print_error(const plexus::error& e, bool json);
// A command-line argument as a value: JSON when it parses, else the text itself, so
// `plexus call calc echo hello` sends "hello" and `... echo 1` sends 1.
value parse_arg(const std::string& text);
// Each argument through parse_arg, as a params array.
value parse_args(const std::vector<std::string>& args);
rpc::duration seconds(double s);

// The options of the command's client: fail fast, without waiting for the router or
// reconnecting to it (a command reports a missing router with exit code 3 at once).
rpc::client_options one_shot_client(const client_args& a, std::string name);
// Connects `c` to the router; on failure prints why (the exit code is then 3).
bool connect_or_report(rpc::client& c, const client_args& a);

// A call to the router's own service, with the error of a router that is not a
// `plexus run` (it has no such method) made plain.
result<value> supervisor_call(const client_args& a, rpc::client& c, const std::string& method,
                              value params);
// One call to the router's own service on a connection of its own; a failure is
// printed and its exit code left in `rc`.
std::optional<value> ask_router(const client_args& a, const std::string& method, value params,
                                int& rc);

// Asks the router's own service `method` and shows the answer: as JSON with --json,
// else through `print`. Returns the exit code.
int show(const client_args& a, const std::string& method, value params,
         const std::function<void(const value&)>& print);

// Stops `io` with exit code 3 once the client's connection has ended: the client has
// no "connection lost" callback for subscribers, so it looks once a second.
class connection_watch {
 public:
  connection_watch(boost::asio::io_context& io, rpc::client& c, bool json, int& rc);

 private:
  void arm();

  boost::asio::io_context& io_;
  rpc::client& c_;
  bool json_;
  int& rc_;
  boost::asio::steady_timer timer_;
};

// Runs `io` until SIGINT/SIGTERM (or until something else stops it).
void run_until_signal(boost::asio::io_context& io);

// The command families.
void add_router_command(CLI::App& app, commands& cmds);
void add_call_commands(CLI::App& app, commands& cmds);
void add_supervisor_commands(CLI::App& app, commands& cmds, std::string argv0);
void add_logs_command(CLI::App& app, commands& cmds);

}  // namespace plexus::cli
