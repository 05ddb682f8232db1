// The plexus command: one subcommand per job, each family in its own file
// (cli/command.hpp). Exit codes (app/exit_codes.hpp): 0 success, 1 the remote side
// answered with an error, 2 usage error, 3 unavailable (no router, no route, peer gone)
// or deadline exceeded, 4 a local failure (cannot bind, internal error); `plexus run`
// adds 5 (too many restarts) and 6 (emergency stop).

#include "cli/command.hpp"

int main(int argc, char** argv) {
  namespace cli = plexus::cli;
  CLI::App app{"plexus — supervisor, router and gateway for a tree of worker processes"};
  app.require_subcommand(1);
  cli::commands cmds;
  cli::add_router_command(app, cmds);
  cli::add_call_commands(app, cmds);
  cli::add_supervisor_commands(app, cmds, argv[0]);
  cli::add_logs_command(app, cmds);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? cli::exit_ok : cli::exit_usage;
  }
  return cmds.run_parsed();
}
