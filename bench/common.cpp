#include "common.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

namespace bench {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string strip_ipc_scheme(const std::string& path) {
  constexpr std::string_view scheme = "ipc://";
  if (path.compare(0, scheme.size(), scheme) == 0) return path.substr(scheme.size());
  return path;
}

sockaddr_un make_unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw std::invalid_argument("unix socket path empty or longer than " +
                                std::to_string(sizeof(addr.sun_path) - 1) + " bytes: " + path);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Waits up to `timeout` for `pid` to exit and reaps it; -1 on timeout or if not our child.
int reap_within(pid_t pid, std::chrono::milliseconds timeout) noexcept {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) return status;
  if (r < 0) return -1;
  const auto deadline = mono_now() + timeout;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd pfd{pidfd, POLLIN, 0};
    for (;;) {
      const int n = ::poll(&pfd, 1, remaining_ms(deadline));
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    ::close(pidfd);
    r = ::waitpid(pid, &status, WNOHANG);
    return r == pid ? status : -1;
  }
  // No pidfd (kernel < 5.3): short sleeps bounded by the deadline.
  while (mono_now() < deadline) {
    r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return -1;
}

}  // namespace

// ---- time ------------------------------------------------------------------------------------

int remaining_ms(mono_clock::time_point deadline) noexcept {
  const auto left = deadline - mono_now();
  if (left <= mono_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

double percentile_us(std::vector<mono_clock::duration> samples, double fraction) {
  if (samples.empty()) return 0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const auto n = samples.size();
  auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(n)));
  const std::size_t index = rank == 0 ? 0 : std::min(rank - 1, n - 1);
  std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(index),
                   samples.end());
  return to_us(samples[index]);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// ---- output ----------------------------------------------------------------------------------

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

void print_json_line(std::string_view bench, std::string_view system, std::string_view metric,
                     double value, int decimals) {
  std::string line = "{\"bench\":";
  append_json_string(line, bench);
  line += ",\"system\":";
  append_json_string(line, system);
  line += ",\"metric\":";
  append_json_string(line, metric);
  line += ",\"value\":";
  if (std::isfinite(value)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", std::clamp(decimals, 0, 9), value);
    line += buf;
  } else {
    line += "null";
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

void round_figures::add(std::string_view metric, double value, int decimals, bool whole) {
  auto it = std::find_if(series_.begin(), series_.end(),
                         [&](const series& s) { return s.metric == metric; });
  if (it == series_.end())
    it = series_.insert(series_.end(), {std::string(metric), decimals, whole, {}});
  it->values.push_back(value);
}

double round_figures::median(std::string_view metric) const {
  for (const auto& s : series_) {
    if (s.metric == metric) return bench::median(s.values);
  }
  return 0;
}

void round_figures::print(std::string_view bench, std::string_view system) const {
  for (const auto& s : series_) {
    const double m = bench::median(s.values);
    print_json_line(bench, system, s.metric,
                    s.whole ? static_cast<double>(static_cast<long>(m)) : m, s.decimals);
  }
}

// ---- child processes -------------------------------------------------------------------------

pid_t spawn_process(const std::string& exe, const spawn_options& opts) {
  // Everything the child needs is built before fork: after fork only async-signal-safe calls.
  std::vector<std::string> storage;
  storage.reserve(opts.args.size() + 1);
  storage.push_back(exe);
  storage.insert(storage.end(), opts.args.begin(), opts.args.end());
  std::vector<char*> argv;
  argv.reserve(storage.size() + 1);
  for (auto& s : storage)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  unique_fd devnull;
  if (opts.out == child_stdout::to_null) {
    devnull.reset(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    if (!devnull) throw_errno("open /dev/null");
  }
  const int stdout_target = devnull ? devnull.get() : STDERR_FILENO;
  const char* path = exe.c_str();
  const pid_t parent = ::getpid();

  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ::_exit(127);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    if (::dup2(stdout_target, STDOUT_FILENO) < 0) ::_exit(127);
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
      for (int fd = 3; fd < 1024; ++fd)
        ::close(fd);
    }
    ::execv(path, argv.data());
    ::_exit(127);
  }
  return pid;
}

pid_t spawn_role(const std::string& self_exe, const std::string& role,
                 const std::vector<std::string>& args) {
  spawn_options opts;
  opts.args.reserve(args.size() + 2);
  opts.args.emplace_back("_role");
  opts.args.push_back(role);
  opts.args.insert(opts.args.end(), args.begin(), args.end());
  return spawn_process(self_exe, opts);
}

bool child_exited(pid_t pid) noexcept {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;  // not (or no longer) our child: treat as gone
  }
  return info.si_pid == pid;
}

int kill_child(pid_t pid, std::chrono::milliseconds grace) noexcept {
  if (pid <= 0) return -1;
  int status = 0;
  const pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) return status;
  if (r < 0) return -1;
  ::kill(pid, SIGTERM);
  status = reap_within(pid, grace);
  if (status != -1) return status;
  ::kill(pid, SIGKILL);
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) return status;
    if (errno != EINTR) return -1;
  }
}

int wait_child(pid_t pid, std::chrono::milliseconds timeout) noexcept {
  if (pid <= 0) return -1;
  return reap_within(pid, timeout);
}

std::string describe_status(int status) {
  if (status == -1) return "not reaped";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

child_guard::child_guard(child_guard&& other) noexcept : pids_(std::move(other.pids_)) {
  other.pids_.clear();
}

child_guard& child_guard::operator=(child_guard&& other) noexcept {
  if (this != &other) {
    stop_all();
    pids_ = std::move(other.pids_);
    other.pids_.clear();
  }
  return *this;
}

child_guard::~child_guard() {
  stop_all();
}

pid_t child_guard::spawn(const std::string& self_exe, const std::string& role,
                         const std::vector<std::string>& args) {
  pids_.reserve(pids_.size() + 1);  // so registering cannot throw after the fork
  const pid_t pid = spawn_role(self_exe, role, args);
  pids_.push_back(pid);
  return pid;
}

int child_guard::stop(pid_t pid, std::chrono::milliseconds grace) noexcept {
  const auto it = std::find(pids_.begin(), pids_.end(), pid);
  if (it == pids_.end()) return -1;
  pids_.erase(it);
  return kill_child(pid, grace);
}

int child_guard::wait(pid_t pid, std::chrono::milliseconds timeout) noexcept {
  const auto it = std::find(pids_.begin(), pids_.end(), pid);
  if (it == pids_.end()) return -1;
  const int status = wait_child(pid, timeout);
  if (status != -1) pids_.erase(it);
  return status;
}

void child_guard::stop_all(std::chrono::milliseconds grace) noexcept {
  // SIGTERM everyone first so they wind down in parallel, then reap newest first.
  for (const pid_t pid : pids_)
    ::kill(pid, SIGTERM);
  while (!pids_.empty()) {
    const pid_t pid = pids_.back();
    pids_.pop_back();
    kill_child(pid, grace);
  }
}

// ---- endpoints -------------------------------------------------------------------------------

void wait_for_unix_socket(const std::string& path, std::chrono::milliseconds timeout,
                          pid_t watched_pid) {
  const std::string fs_path = strip_ipc_scheme(path);
  const sockaddr_un addr = make_unix_address(fs_path);
  const auto deadline = mono_now() + timeout;
  auto backoff = std::chrono::microseconds(200);
  int last_error = 0;
  for (;;) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) throw_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return;
    last_error = errno;
    if (watched_pid > 0 && child_exited(watched_pid)) {
      throw std::runtime_error("process " + std::to_string(watched_pid) + " exited before " +
                               fs_path + " accepted connections");
    }
    if (mono_now() + backoff >= deadline) break;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
  throw std::runtime_error(
      "timed out after " + std::to_string(timeout.count()) + " ms waiting for " + fs_path +
      " to accept connections (last error: " + std::strerror(last_error) + ")");
}

void set_io_timeout(int fd, std::chrono::milliseconds timeout) {
  const timeval tv = to_timeval(timeout);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
    throw_errno("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)");
  }
}

int connect_unix(const std::string& path, std::chrono::milliseconds io_timeout) {
  const sockaddr_un addr = make_unix_address(strip_ipc_scheme(path));
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket");
  set_io_timeout(fd.get(), io_timeout);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw_errno("connect " + path);
  }
  return fd.release();
}

int listen_unix(const std::string& path, std::chrono::milliseconds accept_timeout) {
  const sockaddr_un addr = make_unix_address(strip_ipc_scheme(path));
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_errno("socket");
  ::unlink(addr.sun_path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    throw_errno("bind " + path);
  }
  if (::listen(fd.get(), 16) != 0) throw_errno("listen " + path);
  const timeval tv = to_timeval(accept_timeout);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    throw_errno("setsockopt(SO_RCVTIMEO)");
  }
  return fd.release();
}

void write_all(int fd, const void* data, std::size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("send");
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

bool read_exact(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read");
    }
    if (n == 0) {
      if (got == 0) return false;
      throw std::runtime_error("peer closed the connection in the middle of a frame");
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// ---- memory ----------------------------------------------------------------------------------

long read_status_kib(pid_t pid, std::string_view field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      try {
        return std::stol(line.substr(field.size() + 1));
      } catch (const std::exception&) {
        return -1;
      }
    }
  }
  return -1;
}

}  // namespace bench
