// Child processes owned by the test. A `child` is started with its
// stdout and stderr on one pipe, can wait for a line to appear (with a deadline,
// never a fixed sleep), and is killed and reaped by its destructor.
//
//   plexus::test::child router({bin("plexus"), "router", "--listen", addr});
//   ASSERT_TRUE(router.wait_for_output("listening", std::chrono::seconds(5)));
//   router.kill(SIGKILL);
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

extern char** environ;

namespace plexus::test {

inline std::string bin(const std::string& name) {
  return std::string(PLEXUS_BIN_DIR) + "/" + name;
}

// The session id of `pid` (field 6 of /proc/PID/stat), 0 if unknown: a process that
// called setsid() is its session's leader, session_of(pid) == pid.
inline pid_t session_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  char state = 0;
  pid_t ppid = 0, pgrp = 0, session = 0;
  rest >> state >> ppid >> pgrp >> session;
  return session;
}

class child {
 public:
  explicit child(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_fd_ = fds[0];
    if (rc != 0) {
      ::close(out_fd_);
      throw std::runtime_error("cannot start " + argv[0]);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    kill(SIGKILL);
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  pid_t pid() const { return pid_; }

  // Reads output until `needle` appears or the deadline passes. Returns whether it did.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (output_.find(needle) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const auto n = ::read(out_fd_, buf, sizeof buf);
      if (n <= 0) {  // the child closed its output
        eof_ = true;
        return output_.find(needle) != std::string::npos;
      }
      output_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  const std::string& output() const { return output_; }
  bool output_closed() const { return eof_; }

  // Sends `sig` (if still running) and reaps. Returns the wait status, or -1.
  int kill(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    return wait();
  }

  // Reaps the child, blocking until it exits.
  int wait() {
    if (pid_ <= 0) return status_;
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int status_ = -1;
  std::string output_;
  bool eof_ = false;
};

// Runs a command to completion, capturing stdout+stderr. Returns {exit status, output}.
inline std::pair<int, std::string> run(
    const std::vector<std::string>& argv,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  child c(argv);
  c.wait_for_output("\x01never\x01", timeout);  // reads until the child closes its output
  const int status = c.output_closed() ? c.wait() : c.kill(SIGKILL);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), c.output()};
}

}  // namespace plexus::test
