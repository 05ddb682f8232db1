// The process's descriptor limit (RLIMIT_NOFILE). A supervisor holds about five
// descriptors per child and a router one per peer; the usual soft limit (1024) is far
// below what a configuration may ask for, so `plexus run` and `plexus router` raise it
// to the hard limit when they start.
//
//   const auto lim = plexus::os::raise_fd_limit();
//   if (lim.soft < wanted) std::fprintf(stderr, "only %llu descriptors\n", lim.soft);
#pragma once

#include <cstdint>

namespace plexus::os {

struct fd_limit {
  std::uint64_t soft = 0;  // RLIMIT_NOFILE's current value
  std::uint64_t hard = 0;  // its ceiling
};

// Raises the soft descriptor limit to the hard one (it never lowers it) and returns the
// limits in force afterwards ({0, 0}: they could not be read). A refused raise leaves
// the soft limit as it was. The limit is the whole process's, and children started
// afterwards inherit it. Call early, from the main thread.
fd_limit raise_fd_limit() noexcept;

}  // namespace plexus::os
