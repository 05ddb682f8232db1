#include "router_client.hpp"

#include <stdexcept>
#include <thread>

namespace bench {

void router_client::connect(const std::string& address, const std::string& name, pid_t watched,
                            mono_clock::time_point deadline) {
  for (;;) {
    c = std::make_unique<plexus::rpc::client>(
        io, plexus::rpc::client_options{.router = address, .name = name});
    auto ok = c->connect();
    if (ok) return;
    c.reset();
    if (child_exited(watched))
      throw std::runtime_error("process " + std::to_string(watched) + " exited before " + address +
                               " accepted connections");
    if (mono_now() > deadline)
      throw std::runtime_error("cannot connect to " + address + ": " + ok.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // bounded by the deadline
  }
}

plexus::value router_client::call(const std::string& method, std::chrono::milliseconds deadline) {
  auto r = c->call_value("plexus", method, plexus::value::array(), deadline);
  if (!r) throw std::runtime_error("plexus." + method + ": " + r.error().message);
  return std::move(*r);
}

router_client::~router_client() {
  if (c) c->close();
}

}  // namespace bench
