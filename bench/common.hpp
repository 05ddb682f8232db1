// Helpers shared by the benchmark runners: child processes (the benchmark re-executed as a hidden
// role, or another program), readiness of Unix socket endpoints, RSS, percentiles, medians over
// rounds and JSON output. The echo measurement loop itself is in measure.hpp.
//
//   bench::child_guard children;  // kills and reaps everything it spawned, at scope exit
//   pid_t broker = children.spawn(cfg.self_exe, "floor_broker", {cfg.workdir});
//   bench::wait_for_unix_socket(cfg.workdir + "/floor.sock", std::chrono::seconds(10), broker);
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/os/unique_fd.hpp"

namespace bench {

// ---- time ------------------------------------------------------------------------------------

using mono_clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC, read through the vDSO

inline mono_clock::time_point mono_now() noexcept {
  return mono_clock::now();
}

inline double to_us(mono_clock::duration d) noexcept {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Milliseconds left until `deadline`, clamped to [0, INT_MAX]; for poll()-style timeouts.
int remaining_ms(mono_clock::time_point deadline) noexcept;

// Nearest-rank percentile, `fraction` in [0, 1] (0.5 = p50, 0.99 = p99), in microseconds.
// Takes the samples by value (reorders the copy). Empty input: returns 0.
double percentile_us(std::vector<mono_clock::duration> samples, double fraction);

// Median of `values` (mean of the two middle ones for an even count). Empty input: returns 0.
double median(std::vector<double> values);

// ---- output ----------------------------------------------------------------------------------

// Writes one line `{"bench":B,"system":S,"metric":M,"value":V}` to stdout and flushes it.
// `value` is printed with `decimals` digits after the point; a non-finite value prints as null.
// stdout carries these lines only: everything else goes to stderr.
void print_json_line(std::string_view bench, std::string_view system, std::string_view metric,
                     double value, int decimals = 1);

// The figures of one system over the rounds of a run: every metric's values in the order its
// first value was added, reported as their median.
//
//   bench::round_figures f;
//   f.add("rtt_p50_us", 41.5, 1);  // once per round
//   f.print("echo", "plexus");     // {"bench":"echo","system":"plexus","metric":"rtt_p50_us",...}
class round_figures {
 public:
  // One round's value of `metric`, printed with `decimals`; `whole`: the median is truncated to
  // a whole number before it is printed (a byte count).
  void add(std::string_view metric, double value, int decimals, bool whole = false);

  // Median of the values of `metric`; 0 if it has none.
  double median(std::string_view metric) const;

  // print_json_line() of every metric's median, in the order of the first add().
  void print(std::string_view bench, std::string_view system) const;

 private:
  struct series {
    std::string metric;
    int decimals = 1;
    bool whole = false;
    std::vector<double> values;
  };
  std::vector<series> series_;
};

// ---- child processes -------------------------------------------------------------------------

// Where a spawned child's stdout goes: to the bench's stderr (a role must never write to the JSON
// stream), or to /dev/null (programs other than the bench, which print what the bench ignores).
enum class child_stdout { to_stderr, to_null };

struct spawn_options {
  std::vector<std::string> args;  // argv[1..]; argv[0] is the executable path
  child_stdout out = child_stdout::to_stderr;
};

// Starts `exe args...` with fork/exec. In the child: PR_SET_PDEATHSIG(SIGKILL) (the child dies
// when the *thread* that spawned it exits, so spawn from a thread that outlives the child,
// normally the main thread), stdout redirected as `opts.out` says (stderr stays), every fd above
// 2 closed. The caller owns the returned pid and must reap it (kill_child, or use child_guard).
// Throws std::system_error if fork (or opening /dev/null) fails; an exec failure shows as the
// child exiting with status 127.
pid_t spawn_process(const std::string& exe, const spawn_options& opts);

// spawn_process(self_exe, {"_role", role, args...}): the benchmark re-executed as a hidden role.
pid_t spawn_role(const std::string& self_exe, const std::string& role,
                 const std::vector<std::string>& args);

// True if `pid` (a child of the caller) has exited, without reaping it. Never blocks.
bool child_exited(pid_t pid) noexcept;

// Sends SIGTERM, waits up to `grace` for the exit (on a pidfd, no polling), then SIGKILLs and
// reaps. Returns the waitpid status, or -1 if `pid` was not a child of the caller. Never throws.
int kill_child(pid_t pid,
               std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) noexcept;

// Waits up to `timeout` for `pid` to exit by itself, then reaps it. Returns the waitpid status,
// or -1 on timeout (the child is left running and unreaped) or if it is not a child.
int wait_child(pid_t pid, std::chrono::milliseconds timeout) noexcept;

// Readable description of a waitpid status: "exited 0", "killed by signal 9".
std::string describe_status(int status);

// Owns the children it spawns: its destructor kill_child()s every one still registered, newest
// first. Move-only; not thread-safe (use it from the thread that spawned).
class child_guard {
 public:
  child_guard() = default;
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;
  child_guard(child_guard&& other) noexcept;
  child_guard& operator=(child_guard&& other) noexcept;
  ~child_guard();

  // spawn_role() and register the pid. Throws like spawn_role.
  pid_t spawn(const std::string& self_exe, const std::string& role,
              const std::vector<std::string>& args);

  // Registers `pid` (a child the caller spawned some other way, spawn_process); returns it.
  pid_t adopt(pid_t pid) {
    pids_.push_back(pid);
    return pid;
  }

  // kill_child() a registered pid and forget it; returns its status (-1 if not registered).
  int stop(pid_t pid, std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) noexcept;

  // wait_child() a registered pid; forgets it once reaped. Returns -1 on timeout.
  int wait(pid_t pid, std::chrono::milliseconds timeout) noexcept;

  // Stops every registered child, newest first. Idempotent.
  void stop_all(std::chrono::milliseconds grace = std::chrono::milliseconds(2000)) noexcept;

  const std::vector<pid_t>& pids() const noexcept { return pids_; }

 private:
  std::vector<pid_t> pids_;
};

// ---- file descriptors ------------------------------------------------------------------------

// The library's owning descriptor handle.
using unique_fd = plexus::os::unique_fd;

// ---- endpoints -------------------------------------------------------------------------------

// Connects to the Unix stream socket `path` until a connect succeeds (the probe connection is
// closed at once: the listener sees an accept followed by EOF and must tolerate that), retrying
// with a short backoff. Throws std::runtime_error when `timeout` passes, or at once if
// `watched_pid` (when > 0) has exited. `path` may be given as "ipc://path" (ZeroMQ endpoint).
void wait_for_unix_socket(const std::string& path, std::chrono::milliseconds timeout,
                          pid_t watched_pid = 0);

// Connected, blocking Unix stream socket to `path` with SO_RCVTIMEO/SO_SNDTIMEO = `io_timeout`
// (a blocked read or write then fails with EAGAIN). Returns the fd, owned by the caller. Throws
// std::system_error.
int connect_unix(const std::string& path, std::chrono::milliseconds io_timeout);

// Bound, listening Unix stream socket at `path` (an existing file at `path` is unlinked first),
// accept() timing out after `accept_timeout`. Returns the fd, owned by the caller. Throws
// std::system_error; throws std::invalid_argument if `path` does not fit sockaddr_un.
int listen_unix(const std::string& path, std::chrono::milliseconds accept_timeout);

// Sets SO_RCVTIMEO and SO_SNDTIMEO on `fd`. Throws std::system_error.
void set_io_timeout(int fd, std::chrono::milliseconds timeout);

// Writes all `size` bytes to the socket `fd` with send(MSG_NOSIGNAL) (a closed peer is EPIPE, not
// SIGPIPE), retrying on partial writes and EINTR. Throws std::system_error (EAGAIN means the
// SO_SNDTIMEO deadline passed).
void write_all(int fd, const void* data, std::size_t size);

// Reads exactly `size` bytes. Returns false on EOF before the first byte; throws
// std::system_error on error (EAGAIN: SO_RCVTIMEO passed) and std::runtime_error on EOF midway.
bool read_exact(int fd, void* data, std::size_t size);

// ---- memory ----------------------------------------------------------------------------------

// A field ("VmRSS", "VmHWM") of /proc/<pid>/status, in KiB; -1 if unreadable.
long read_status_kib(pid_t pid, std::string_view field);

// VmHWM (peak resident set) of `pid`, in KiB; -1 if unreadable.
inline long read_vm_hwm_kib(pid_t pid) {
  return read_status_kib(pid, "VmHWM");
}

}  // namespace bench
