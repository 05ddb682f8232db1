// A client of the router of a system under test (`plexus run`, `plexus router`) that may
// not listen yet: connect() retries until it does, while the process that will listen
// lives, up to a deadline. call() calls the router's own `plexus` service.
//
//   bench::router_client rc;
//   rc.connect(address, "plexus-bench", run_pid, mono_now() + 20s);
//   plexus::value ps = rc.call("ps", 2s);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common.hpp"
#include "plexus/rpc/client.hpp"

namespace bench {

struct router_client {
  boost::asio::io_context io{1};
  std::unique_ptr<plexus::rpc::client> c;

  // Throws if `watched` exits first or the deadline passes, naming the address.
  void connect(const std::string& address, const std::string& name, pid_t watched,
               mono_clock::time_point deadline);
  // plexus.<method>() on the router; throws with the router's error.
  plexus::value call(const std::string& method, std::chrono::milliseconds deadline);

  router_client() = default;
  router_client(const router_client&) = delete;
  router_client& operator=(const router_client&) = delete;
  ~router_client();
};

}  // namespace bench
