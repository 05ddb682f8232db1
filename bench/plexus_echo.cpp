// The plexus system of `plexus-bench echo`: `plexus_router` and `plexus_service` roles
// in their own processes, the client in the calling process, all over ipc. The client
// runs its io_context on the calling thread, so every call completes where it was made.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <utility>

#include "common.hpp"
#include "echo.hpp"
#include "measure.hpp"
#include "plexus/broker/router.hpp"
#include "plexus/rpc/client.hpp"
#include "plexus/rpc/service.hpp"

namespace asio = boost::asio;
using namespace bench;

namespace {

std::string router_path(const std::string& workdir) {
  return workdir + "/plexus.sock";
}

// A plexus::rpc::client calling echo.echo with a binary payload; completions run on the calling
// thread inside run_one(). A failed call throws from its completion, out of run_one().
class plexus_client final : public echo_client {
 public:
  plexus_client(const echo_config& cfg, const std::string& path)
      : client_(io_, {.router = "ipc://" + path, .name = "bench"}),
        payload_(plexus::value::binary(std::vector<std::uint8_t>(cfg.payload, 0x5a))) {
    if (auto ok = client_.connect(); !ok) throw std::runtime_error(ok.error().message);
    // The service registers asynchronously: retry until the route exists.
    for (const auto until = mono_now() + std::chrono::seconds(5);;) {
      auto r = client_.call_value("echo", "echo", params(), std::chrono::seconds(1));
      if (r) break;
      if (r.error().code != plexus::errc::unavailable || mono_now() > until)
        throw std::runtime_error("plexus service never became ready: " + r.error().message);
      io_.run_for(std::chrono::milliseconds(5));  // lets the registration land; bounded
    }
    io_.restart();
  }

  void round_trip() override {
    bool done = false;
    client_.async_call("echo", "echo", params(), [&](plexus::result<plexus::value> r) {
      check(r);
      done = true;
    });
    while (!done)
      io_.run_one();
  }

  void send(std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) {
      ++outstanding_;
      client_.async_call("echo", "echo", params(), [this](plexus::result<plexus::value> r) {
        --outstanding_;
        check(r);
        ++answered_;
      });
    }
  }

  std::size_t receive() override {
    io_.run_one();
    return std::exchange(answered_, 0);
  }

  // Lets the calls still outstanding complete, then closes the connection.
  void close() {
    while (outstanding_ > 0)
      io_.run_one();
    client_.close();
  }

 private:
  plexus::value params() const { return plexus::value::array({payload_}); }
  static void check(const plexus::result<plexus::value>& r) {
    if (!r) throw std::runtime_error("plexus echo failed: " + r.error().message);
  }

  asio::io_context io_{1};
  plexus::rpc::client client_;
  plexus::value payload_;
  std::size_t outstanding_ = 0, answered_ = 0;
};

}  // namespace

int plexus_router_role(const std::vector<std::string>& args) {
  asio::io_context io(1);
  plexus::broker::router r(io, {.listen = {"ipc://" + router_path(args[0])}});
  if (auto ok = r.start(); !ok) throw std::runtime_error(ok.error().message);
  run_until_signalled(io);
  return 0;
}

int plexus_service_role(const std::vector<std::string>& args) {
  asio::io_context io(1);
  plexus::rpc::service s(io, {.router = "ipc://" + router_path(args[0]), .name = "echo"});
  s.route("echo", [](plexus::value v) { return v; });
  if (auto ok = s.start(); !ok) throw std::runtime_error(ok.error().message);
  s.on_disconnect([&](const plexus::error&) { io.stop(); });
  run_until_signalled(io);
  return 0;
}

echo_result run_plexus_echo(const echo_config& cfg) {
  child_guard children;
  const auto path = router_path(cfg.workdir);
  const auto roles = start_roles(children, cfg, {"plexus_router", {cfg.workdir}}, {path},
                                 {"plexus_service", {cfg.workdir}});
  plexus_client client(cfg, path);
  echo_result out = measure_echo(client, cfg);
  out.broker_rss_kib = read_vm_hwm_kib(roles.broker);
  client.close();
  children.stop_all();
  return out;
}
