// plexus logs: the recent history of `plexus run`'s log book, then with -f the live
// stream.

#include <iostream>
#include <unordered_set>

#include "cli/command.hpp"
#include "plexus/log/record.hpp"

namespace plexus::cli {

namespace asio = boost::asio;

namespace {

struct logs_args {
  client_args client;
  bool follow = false;
  std::string level = "info";
  std::string process;
  std::size_t lines = 100;
};

// The recent history (plexus.logs), then with -f the live stream (subscription to
// "log."). A record that arrives while the history is fetched is printed once.
int print_logs(const logs_args& l) {
  const auto& a = l.client;
  const int rank = log::level_rank(l.level);
  if (rank < 0) {
    std::cerr << "plexus logs: unknown level " << l.level
              << " (levels: trace, debug, info, warn, error, critical)\n";
    return exit_usage;
  }
  asio::io_context io(1);
  rpc::client c(io, one_shot_client(a, "plexus-logs"));
  if (!connect_or_report(c, a)) return exit_unavailable;
  auto print = [&](const value& record) {
    if (!a.json) {
      std::cout << log::format(record) << "\n";
    } else if (record.contains("raw")) {
      // A live line that was not UTF-8 carries its bytes for the log file: not shown.
      value shown = record;
      shown.erase("raw");
      std::cout << shown.dump() << "\n";
    } else {
      std::cout << record.dump() << "\n";
    }
  };
  std::vector<value> live;
  bool history_done = false;
  std::unordered_set<std::string> seen;  // the history's records, to skip them live
  const std::string prefix = l.process.empty() ? log::topic("") : log::topic(l.process);
  if (l.follow) {
    auto ok = c.subscribe(prefix, [&](std::string_view, const value& params) {
      if (!params.is_array() || params.empty() || !params[0].is_object()) return;
      const auto& record = params[0];
      if (!log::matches(record, l.process, rank)) return;
      if (!history_done) {
        live.push_back(record);
        return;
      }
      print(record);
      std::cout.flush();
    });
    if (!ok) {
      print_error(ok.error(), a.json);
      return exit_code(ok.error().code);
    }
  }
  value filter = {{"limit", l.lines}, {"level", l.level}};
  if (!l.process.empty()) filter["process"] = l.process;
  auto history = supervisor_call(a, c, "logs", value::array({filter}));
  if (!history) {
    print_error(history.error(), a.json);
    return exit_code(history.error().code);
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
  connection_watch watch(io, c, a.json, rc);
  run_until_signal(io);
  return rc;
}

}  // namespace

void add_logs_command(CLI::App& app, commands& cmds) {
  auto l = std::make_shared<logs_args>();
  auto* cmd = app.add_subcommand("logs", "show the processes' logs (plexus run)");
  cmd->add_flag("--follow,-f", l->follow, "keep printing new records");
  cmd->add_option("--level", l->level,
                  "the lowest level shown: trace, debug, info, warn, error, critical")
      ->capture_default_str();
  cmd->add_option("--process,-p", l->process, "only this process");
  cmd->add_option("--lines,-n", l->lines, "how many recent records first")->capture_default_str();
  add_client_flags(cmd, l->client);
  cmds.add(cmd, [l] { return print_logs(*l); });
}

}  // namespace plexus::cli
