#include "app/run.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <optional>

#include "app/echo_writer.hpp"
#include "app/exit_codes.hpp"
#include "app/log_book.hpp"
#include "app/log_stream.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/gateway/gateway.hpp"
#include "plexus/os/limits.hpp"
#include "plexus/os/private_dir.hpp"
#include "plexus/supervisor/process.hpp"
#include "plexus/supervisor/tree.hpp"
#include "plexus/transport/address.hpp"

namespace plexus::app {

namespace asio = boost::asio;

namespace {

value status_json(const supervisor::child_status& s) {
  return {{"name", s.name},
          {"group", s.group},
          {"replica", s.replica},
          {"pid", s.pid},
          {"state", std::string(to_string(s.state))},
          {"restarts", s.restarts},
          {"uptime_s", s.uptime_s},
          {"rss_bytes", s.rss_bytes},
          {"cpu_percent", s.cpu_percent},
          {"threads", s.threads},
          {"last_exit", s.last_exit},
          {"health", s.health}};
}

std::string name_param(const value& params, const char* method) {
  if (params.is_array() && params.size() == 1 && params[0].is_string())
    return params[0].get<std::string>();
  throw remote_error(errc::invalid_argument, std::string(method) + " expects (text process)");
}

}  // namespace

int run(run_options o) {
  os::raise_fd_limit();  // about five descriptors per child, one per peer
  auto& app = o.app;
  broker::add_default_listen(app.router, transport::default_router_address());
  // The gateway reaches the router over an address of its own: inproc, no system call.
  static std::atomic<unsigned> runs{0};
  const auto gateway_address =
      "inproc://plexus-gateway-" + std::to_string(::getpid()) + "-" + std::to_string(runs++);
  if (app.gateway.enabled) app.router.listen.push_back(gateway_address);
  const auto log_dir =
      app.supervisor.log.dir.empty() ? os::runtime_dir() + "/logs" : app.supervisor.log.dir;
  if (auto why = os::ensure_private_dir(log_dir)) {
    std::fprintf(stderr, "plexus run: the log directory: %s\n", why->c_str());
    return exit_local_failure;
  }

  // A closed stdout (plexus run | head) must not kill the supervisor; the children get
  // the default disposition back (process.cpp).
  ::signal(SIGPIPE, SIG_IGN);
  // Before anything else opens: the keeper sweeps the children's groups if this
  // process dies without doing it (kill -9).
  if (auto ok = supervisor::process::start_keeper(); !ok) {
    std::fprintf(stderr, "plexus run: cannot start the keeper: %s\n", ok.error().message.c_str());
    return exit_local_failure;
  }
  // A grandchild that leaves its parent's group (setsid) is out of reach of the group
  // signals; as a subreaper this process inherits it when its parent exits, and kills
  // it when the tree has stopped (the sweeper below, destroyed after the tree).
  if (auto ok = supervisor::process::adopt_orphans(); !ok)
    std::fprintf(stderr, "plexus run: %s (a grandchild that calls setsid() may outlive the tree)\n",
                 ok.error().message.c_str());
  // Where the machine allows it, the children and all their descendants are also born
  // in a cgroup of their own, killed as one at the end, or by the keeper after a kill -9.
  (void)supervisor::process::contain_children();
  struct orphan_sweeper {
    ~orphan_sweeper() { supervisor::process::sweep_orphans(); }
  } sweeper;
  asio::io_context io(1);
  broker::router router(io, app.router);
  if (auto ok = router.start(); !ok) {
    std::fprintf(stderr, "plexus run: %s\n", ok.error().message.c_str());
    return exit_local_failure;
  }
  const auto address = transport::connectable(router.addresses().front());

  // Once the loop runs, nothing writes to the terminal but this: the loop only queues
  // (dropped and counted when the terminal is too slow, plexus.stats echo_dropped).
  std::fflush(o.out);
  echo_writer echo(::fileno(o.out));
  router.add_stat("echo_dropped", [&] { return echo.dropped(); });
  log_book book(io, app.supervisor.log, log_dir, app.supervisor.log.echo ? &echo : nullptr,
                log_book::known_from(app.supervisor));
  router.tap("log.", [&](std::string_view topic, const value& params) { book.add(topic, params); });
  log_stream logs(book);  // the gateway's /api/logs
  book.on_record([&](const value& record) { logs.publish(record); });
  // Lines the log files did not get: the writer too far behind, or a file that failed.
  router.add_stat("log_unwritten", [&] { return book.unwritten(); });
  router.add_stat("log_file_errors", [&] { return book.file_errors(); });

  supervisor::tree t(
      io, app.supervisor,
      {.router_address = address,
       .on_log = [&](std::string_view topic,
                     value record) { router.publish(topic, value::array({std::move(record)})); },
       .program_dir = o.program_dir,
       .config_dir = o.config_dir});
  if (auto ok = t.check(); !ok) {
    std::fprintf(stderr, "plexus run: %s\n", ok.error().message.c_str());
    return exit_usage;
  }

  std::optional<gateway::gateway> gw;
  if (app.gateway.enabled) {
    gw.emplace(io, router, app.gateway, gateway_address);
    if (auto ok = gw->start(); !ok) {
      std::fprintf(stderr, "plexus run: %s\n", ok.error().message.c_str());
      return exit_local_failure;
    }
    gw->add_event_stream("/api/logs",
                         [&](std::string_view query, gateway::gateway::event_send send) {
                           return logs.open(query, std::move(send));
                         });
    gw->add_endpoint("/api/processes", [&] {
      value out = value::array();
      for (const auto& s : t.status())
        out.push_back(status_json(s));
      return out;
    });
    gw->add_metrics([&](std::string& out) {
      // One series per replica for each of these.
      struct per_replica {
        const char* name;
        const char* help_and_type;
        double (*read)(const supervisor::child_status&);
      };
      static constexpr per_replica series[] = {
          {"plexus_process_up",
           "# HELP plexus_process_up 1 when the replica is ready.\n"
           "# TYPE plexus_process_up gauge\n",
           [](const supervisor::child_status& p) {
             return p.state == supervisor::child_state::ready ? 1.0 : 0.0;
           }},
          {"plexus_process_restarts_total",
           "# HELP plexus_process_restarts_total Restarts of the replica since plexus run "
           "started.\n# TYPE plexus_process_restarts_total counter\n",
           [](const supervisor::child_status& p) { return static_cast<double>(p.restarts); }},
          {"plexus_process_resident_bytes",
           "# HELP plexus_process_resident_bytes The replica's resident set (sampled every "
           "second).\n# TYPE plexus_process_resident_bytes gauge\n",
           [](const supervisor::child_status& p) { return static_cast<double>(p.rss_bytes); }},
      };
      const auto status = t.status();
      for (const auto& m : series) {
        out += m.help_and_type;
        for (const auto& p : status)
          gateway::append_metric(out, m.name,
                                 {{"process", p.name}, {"replica", std::to_string(p.replica)}},
                                 m.read(p));
      }
      const auto st = router.stats();
      out +=
          "# HELP plexus_router_in_flight Requests forwarded and not yet answered.\n"
          "# TYPE plexus_router_in_flight gauge\n";
      gateway::append_metric(out, "plexus_router_in_flight", {}, static_cast<double>(st.in_flight));
      out +=
          "# HELP plexus_router_peers Connections to the router now.\n"
          "# TYPE plexus_router_peers gauge\n";
      gateway::append_metric(out, "plexus_router_peers", {}, static_cast<double>(st.peers));
      for (const auto& [name, n] : {std::pair{"forwarded", st.forwarded},
                                    {"no_route", st.no_route},
                                    {"failed_by_peer_loss", st.failed_by_peer_loss},
                                    {"expired", st.expired},
                                    {"malformed", st.malformed},
                                    {"over_budget", st.over_budget},
                                    {"published", st.published},
                                    {"dropped", st.dropped}}) {
        const std::string metric = std::string("plexus_router_") + name + "_total";
        out += "# TYPE " + metric + " counter\n";
        gateway::append_metric(out, metric, {}, static_cast<double>(n));
      }
    });
    router.add_stat("http_requests", [&] { return gw->stats().requests; });
    router.add_stat("http_5xx", [&] { return gw->stats().responses_5xx; });
  }

  // What changes the tree is for this user only (SO_PEERCRED); reading it is for all.
  constexpr auto owner_only = broker::router::method_access::same_user;
  router.add_method("ps", [&](const value&) -> result<value> {
    value out = value::array();
    for (const auto& s : t.status())
      out.push_back(status_json(s));
    return out;
  });
  router.add_method(
      "stop",
      [&](const value& params) -> result<value> {
        if (params.is_array() && params.empty()) {
          asio::post(io, [&] { t.stop(); });  // after the answer has gone out
          return value("stopping");
        }
        const auto name = name_param(params, "stop");
        if (auto ok = t.stop(name); !ok) return std::move(ok).error();
        return value("stopping " + name);
      },
      owner_only);
  router.add_method(
      "restart",
      [&](const value& params) -> result<value> {
        const auto name = name_param(params, "restart");
        if (auto ok = t.restart(name); !ok) return std::move(ok).error();
        return value("restarting " + name);
      },
      owner_only);
  router.add_method("logs", [&](const value& params) { return book.query(params); });

  int rc = exit_ok;
  t.start([&](supervisor::outcome how, const std::string& message) {
    switch (how) {
      case supervisor::outcome::stopped:
        rc = exit_ok;
        break;
      case supervisor::outcome::intensity_exceeded:
        rc = exit_intensity;
        std::fprintf(stderr, "plexus run: %s\n", message.c_str());
        break;
      case supervisor::outcome::emergency:
        rc = exit_emergency;
        std::fprintf(stderr, "plexus run: %s\n", message.c_str());
        break;
    }
    if (gw) gw->stop();
    router.stop();
    io.stop();
  });

  std::fprintf(o.out, "plexus run: router on %s, %zu process%s, logs in %s\n", address.c_str(),
               app.supervisor.processes.size(), app.supervisor.processes.size() == 1 ? "" : "es",
               log_dir.c_str());
  if (gw) std::fprintf(o.out, "plexus run: HTTP gateway on %s/\n", gw->url().c_str());
  if (o.demo) {
    std::string p = o.cli;
    if (address != transport::default_router_address()) p = "PLEXUS_ROUTER=" + address + " " + p;
    const std::string web =
        gw ? "  curl -X POST " + gw->url() + "/api/counter/a   # the web module's counter\n" : "";
    std::fprintf(o.out,
                 "plexus run: the demo app. In another terminal try:\n"
                 "  %s ps                  # the processes, their state and restarts\n"
                 "  %s call calc add 1 2   # 3\n"
                 "  %s logs -f             # every process's output; flaky crashes now and then\n"
                 "  %s subscribe tick      # the ticker's publications\n"
                 "%s"
                 "Ctrl-C stops everything.\n",
                 p.c_str(), p.c_str(), p.c_str(), p.c_str(), web.c_str());
  }
  std::fflush(o.out);

  // SIGHUP (the terminal closed) stops the tree in order, as SIGINT and SIGTERM do.
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  int signals_seen = 0;
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (++signals_seen == 1) {
        echo.line(std::string("plexus run: ") +
                  (sig == SIGINT   ? "interrupted"
                   : sig == SIGHUP ? "hangup"
                                   : "terminated") +
                  ": stopping (again to kill at once)");
        t.stop();
        wait_signal();
      } else {
        rc = exit_ok;
        if (gw) gw->stop();
        router.stop();
        io.stop();  // ~tree kills and reaps the children
      }
    });
  };
  wait_signal();
  // Adopted orphans that exit during the run are reaped as they go.
  asio::signal_set child_exits(io, SIGCHLD);
  {
    // asio (1.81) installs its handler without SA_RESTART: a child's exit must not make
    // a blocking call elsewhere fail with EINTR.
    struct sigaction sa {};
    if (::sigaction(SIGCHLD, nullptr, &sa) == 0) {
      sa.sa_flags |= SA_RESTART | SA_NOCLDSTOP;
      ::sigaction(SIGCHLD, &sa, nullptr);
    }
  }
  std::function<void()> wait_child = [&] {
    child_exits.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      supervisor::process::reap_orphans();
      wait_child();
    });
  };
  wait_child();
  io.run();
  return rc;
}

}  // namespace plexus::app
