// The exit codes of the plexus programs, in one place (README, docs/protocol.md §8).
//
//   if (auto r = c.call_value(...); !r) return plexus::app::exit_code(r.error().code);
#pragma once

#include "plexus/wire/error.hpp"

namespace plexus::app {

inline constexpr int exit_ok = 0;             // success; `plexus run` stopped on request
inline constexpr int exit_remote_error = 1;   // the service answered with an error
inline constexpr int exit_usage = 2;          // bad command line or bad config
inline constexpr int exit_unavailable = 3;    // no router, no route, peer gone, deadline
inline constexpr int exit_local_failure = 4;  // cannot listen, cannot log, internal
inline constexpr int exit_intensity = 5;      // `plexus run`: too many restarts
inline constexpr int exit_emergency = 6;      // `plexus run`: a child's emergency exit code

// The exit code of a command that failed with `code`: unavailable and deadline_exceeded
// are 3 (try again later), any other error a service answered is 1.
constexpr int exit_code(errc code) noexcept {
  switch (code) {
    case errc::unavailable:
    case errc::deadline_exceeded:
      return exit_unavailable;
    default:
      return exit_remote_error;
  }
}

}  // namespace plexus::app
