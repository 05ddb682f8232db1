#include "cli/command.hpp"

#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <iostream>

namespace plexus::cli {

namespace asio = boost::asio;

void add_client_flags(CLI::App* cmd, client_args& a) {
  cmd->add_option("--router", a.router,
                  "router address (default: $PLEXUS_ROUTER or a per-user ipc path)")
      ->capture_default_str();
  cmd->add_option("--timeout", a.timeout_s, "deadline in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a.json, "machine-readable output (errors as JSON on stderr)");
}

void print_error(const plexus::error& e, bool json) {
  if (json) {
    std::cerr << value{{"error", e.message},
                       {"code", std::string(to_string(e.code))},
                       {"context", e.context}}
                     .dump()
              << "\n";
  } else {
    std::cerr << "plexus: " << e.message << " (" << to_string(e.code) << ")\n";
  }
}

value parse_arg(const std::string& text) {
  auto v = value::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return text;
  return v;
}

value parse_args(const std::vector<std::string>& args) {
  value params = value::array();
  for (const auto& a : args)
    params.push_back(parse_arg(a));
  return params;
}

rpc::duration seconds(double s) {
  return std::chrono::duration_cast<rpc::duration>(std::chrono::duration<double>(s));
}

rpc::client_options one_shot_client(const client_args& a, std::string name) {
  return {.router = a.router, .name = std::move(name), .reconnect = {.enabled = false}};
}

bool connect_or_report(rpc::client& c, const client_args& a) {
  if (auto ok = c.connect(); !ok) {
    print_error(ok.error(), a.json);
    return false;
  }
  return true;
}

result<value> supervisor_call(const client_args& a, rpc::client& c, const std::string& method,
                              value params) {
  auto r = c.call_value("plexus", method, std::move(params), seconds(a.timeout_s));
  // Recognised by code and context: the router's own service has no such method.
  if (!r && r.error().code == errc::not_found &&
      r.error().context.value("service", std::string()) == "plexus" &&
      r.error().context.value("method", std::string()) == method)
    return plexus::error(errc::unavailable,
                         "the router at " + a.router +
                             " supervises nothing (it is a `plexus router`, not a `plexus run`)",
                         {{"router", a.router}, {"method", method}});
  return r;
}

std::optional<value> ask_router(const client_args& a, const std::string& method, value params,
                                int& rc) {
  asio::io_context io(1);
  rpc::client c(io, one_shot_client(a, "plexus-cli"));
  if (!connect_or_report(c, a)) {
    rc = exit_unavailable;
    return std::nullopt;
  }
  auto r = supervisor_call(a, c, method, std::move(params));
  if (!r) {
    print_error(r.error(), a.json);
    rc = exit_code(r.error().code);
    return std::nullopt;
  }
  return std::move(*r);
}

int show(const client_args& a, const std::string& method, value params,
         const std::function<void(const value&)>& print) {
  int rc = exit_ok;
  auto r = ask_router(a, method, std::move(params), rc);
  if (!r) return rc;
  if (a.json)
    std::cout << r->dump() << "\n";
  else
    print(*r);
  return exit_ok;
}

connection_watch::connection_watch(asio::io_context& io, rpc::client& c, bool json, int& rc)
    : io_(io), c_(c), json_(json), rc_(rc), timer_(io) {
  arm();
}

void connection_watch::arm() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (!c_.connected()) {
      print_error({errc::unavailable, "connection to the router lost"}, json_);
      rc_ = exit_unavailable;
      io_.stop();
      return;
    }
    arm();
  });
}

void run_until_signal(asio::io_context& io) {
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  io.run();
}

}  // namespace plexus::cli
