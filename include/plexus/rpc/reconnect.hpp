// How a client or service keeps its connection to the router (issue 10): it waits for
// a router that is not listening yet, reconnects after the router went away, says who
// it is again (a service re-registers, a client re-subscribes) and tells the program.
//
//   plexus::rpc::service s(io, {.name = "calc"});           // reconnects by default
//   s.on_link_event([](plexus::rpc::link_event e, const plexus::error& why) { ... });
//   plexus::rpc::client once(io, {.reconnect = {.enabled = false}});  // fail fast
//
// Attempts are spaced by a capped exponential backoff with jitter, as ZeroMQ peers do:
// the n-th wait lasts between half and all of min(first_delay * 2^(n-1), max_delay).
// Each attempt is one connect on the event loop from a timer, never a sleep (an ipc or
// loopback connect returns at once).
#pragma once

#include <chrono>
#include <functional>

#include "plexus/wire/error.hpp"

namespace plexus::rpc {

struct reconnect_options {
  // true: connect()/start() succeed while nothing listens yet and the owner keeps
  // trying; a lost connection is tried again. false: fail fast as before issue 10:
  // connect()/start() fail with unavailable, and a loss is final.
  bool enabled = true;
  std::chrono::milliseconds first_delay{10};
  std::chrono::milliseconds max_delay{1000};
};

enum class link_event {
  connected,    // the first connection to the router is up (hello and registration sent)
  lost,         // the connection ended without close()/stop(); calls in flight have failed
  reconnected,  // a later connection is up, and the owner has registered again
};

constexpr const char* to_string(link_event e) noexcept {
  switch (e) {
    case link_event::connected:
      return "connected";
    case link_event::lost:
      return "lost";
    case link_event::reconnected:
      return "reconnected";
  }
  return "?";
}

// Runs on the io_context's thread, from the event loop. For `lost`, `why` says why the
// connection ended (unavailable: the router went away); for the others its message is
// empty.
using link_handler = std::function<void(link_event, const plexus::error& why)>;

}  // namespace plexus::rpc
