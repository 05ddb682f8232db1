// A process's resident memory, as the kernel reports it, for tests that hold a
// process to a memory budget.
//
//   const auto before = plexus::test::resident_bytes(::getpid());
//   ... // work that must not allocate much
//   EXPECT_LT(plexus::test::resident_bytes(::getpid()) - before, 8u << 20);
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <fstream>
#include <string>

namespace plexus::test {

// VmRSS from /proc/PID/status, in bytes; 0 when it cannot be read.
inline std::size_t resident_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "… kB"
  return 0;
}

}  // namespace plexus::test
