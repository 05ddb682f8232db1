#include "plexus/supervisor/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <set>

extern char** environ;

namespace plexus::supervisor {

namespace asio = boost::asio;

std::string exit_status::describe() const {
  if (!signaled) return "exited with " + std::to_string(code);
  const char* name = sigabbrev_np(code);
  return std::string("killed by ") + (name ? std::string("SIG") + name : std::to_string(code));
}

namespace {

// The write end of the keeper's socket (-1: no keeper). Each line is "+PGID" when a
// child's group starts, "-PGID" when it has been swept.
int keeper_fd = -1;

void tell_keeper(char op, pid_t pgid) noexcept {
  if (keeper_fd < 0) return;
  char line[32];
  const int n = std::snprintf(line, sizeof line, "%c%d\n", op, static_cast<int>(pgid));
  while (::send(keeper_fd, line, static_cast<std::size_t>(n), MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void keeper_main(int fd) {
  ::prctl(PR_SET_NAME, "plexus-keeper");
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP})
    ::signal(sig, SIG_IGN);
  std::set<pid_t> groups;
  std::string pending;
  char buf[4096];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the supervisor is gone
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0, end;
    while ((end = pending.find('\n', start)) != std::string::npos) {
      const pid_t pgid = static_cast<pid_t>(std::atoi(pending.c_str() + start + 1));
      if (pgid > 0) {
        if (pending[start] == '+')
          groups.insert(pgid);
        else
          groups.erase(pgid);
      }
      start = end + 1;
    }
    pending.erase(0, start);
  }
  for (pid_t g : groups)
    ::kill(-g, SIGKILL);
  ::_exit(0);
}

}  // namespace

result<void> process::start_keeper() {
  if (keeper_fd >= 0) return {};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return plexus::error(errc::internal, std::string("socketpair: ") + ::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    return plexus::error(errc::internal, std::string("fork: ") + ::strerror(err));
  }
  if (pid == 0) {
    ::close(sv[1]);
    ::setpgid(0, 0);  // out of the terminal's Ctrl-C
    // Everything else this process had open stays with it; the keeper needs none of it.
    for (int fd = 3; fd < 1024; ++fd)
      if (fd != sv[0]) ::close(fd);
    keeper_main(sv[0]);
  }
  ::close(sv[0]);
  keeper_fd = sv[1];
  return {};
}

struct process::state : std::enable_shared_from_this<process::state> {
  explicit state(asio::io_context& io) : pidfd(io), kill_timer(io) {}

  void watch() {
    pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       if (ec || !self->alive) return;
                       self->reap(true);
                     });
  }

  // Collects the exit status; runs the handler when `notify`.
  void reap(bool notify) {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd.native_handle()), &info, WEXITED | WNOHANG) !=
            0 ||
        info.si_pid == 0) {
      if (notify) watch();  // spurious wake-up: keep waiting
      return;
    }
    alive = false;
    kill_timer.cancel();
    // Whatever the child left behind in its group goes with it.
    ::kill(-pid, SIGKILL);
    tell_keeper('-', pid);
    boost::system::error_code ignored;
    pidfd.close(ignored);
    exit_status s;
    s.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
    s.code = info.si_status;
    if (notify && on_exit) {
      auto handler = std::move(on_exit);
      handler(s);
    }
  }

  pid_t pid = 0;
  bool alive = true;
  bool stopping = false;
  asio::posix::stream_descriptor pidfd;
  asio::steady_timer kill_timer;
  exit_handler on_exit;
};

process::process(std::shared_ptr<state> s) : s_(std::move(s)) {}

process::~process() {
  if (!s_ || !s_->alive) return;
  s_->on_exit = nullptr;
  s_->stopping = true;
  ::kill(-s_->pid, SIGKILL);
  // The loop made the pidfd non-blocking (waitid would say EAGAIN): wait blocking here;
  // SIGKILL cannot be ignored, so this is short.
  const int fd = s_->pidfd.native_handle();
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(s_->pidfd.native_handle()), &info, WEXITED) != 0 &&
         errno == EINTR) {
  }
  s_->alive = false;
  ::kill(-s_->pid, SIGKILL);
  tell_keeper('-', s_->pid);
  boost::system::error_code ignored;
  s_->kill_timer.cancel();
  s_->pidfd.close(ignored);
}

pid_t process::pid() const noexcept {
  return s_->pid;
}
bool process::running() const noexcept {
  return s_->alive;
}

result<void> process::signal(int sig) {
  if (!s_->alive) return plexus::error(errc::unavailable, "the process has exited");
  if (::kill(-s_->pid, sig) != 0)
    return plexus::error(errc::internal, std::string("kill: ") + ::strerror(errno));
  return {};
}

void process::stop(std::chrono::milliseconds grace) {
  if (!s_->alive || s_->stopping) return;
  s_->stopping = true;
  ::kill(-s_->pid, SIGTERM);
  s_->kill_timer.expires_after(grace);
  s_->kill_timer.async_wait([weak = std::weak_ptr<state>(s_)](const boost::system::error_code& ec) {
    auto s = weak.lock();
    if (ec || !s || !s->alive) return;
    ::kill(-s->pid, SIGKILL);
  });
}

result<std::unique_ptr<process>> process::spawn(asio::io_context& io, const spawn_spec& spec,
                                                exit_handler on_exit) {
  if (spec.program.empty()) return plexus::error(errc::invalid_argument, "empty program");

  // Everything the child needs is built before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> argv_s{spec.program};
  argv_s.insert(argv_s.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [k, v] : spec.env)
      overridden = overridden || k == name;
    if (!overridden) env_s.emplace_back(entry);
  }
  for (const auto& [k, v] : spec.env)
    env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  // The child reports a failed exec (its errno) through a close-on-exec pipe; a
  // successful exec closes the pipe with nothing written.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return plexus::error(errc::internal, std::string("pipe: ") + ::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return plexus::error(errc::unavailable, std::string("fork: ") + ::strerror(err));
  }
  if (pid == 0) {
    ::close(report[0]);
    auto fail = [&](int err) {
      (void)!::write(report[1], &err, sizeof err);
      ::_exit(127);
    };
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD})
      ::signal(sig, SIG_DFL);
    if (spec.stdin_fd >= 0 && ::dup2(spec.stdin_fd, STDIN_FILENO) < 0) fail(errno);
    if (spec.stdout_fd >= 0 && ::dup2(spec.stdout_fd, STDOUT_FILENO) < 0) fail(errno);
    if (spec.stderr_fd >= 0 && ::dup2(spec.stderr_fd, STDERR_FILENO) < 0) fail(errno);
    if (spec.fd3 >= 0 && report[1] == 3) report[1] = ::fcntl(3, F_DUPFD_CLOEXEC, 4);
    if (spec.fd3 == 3) {
      ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
    } else if (spec.fd3 >= 0 && ::dup2(spec.fd3, 3) < 0) {
      fail(errno);
    }
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) fail(errno);
    ::execvpe(argv[0], argv.data(), envp.data());
    fail(errno);
  }
  ::close(report[1]);
  ::setpgid(pid, pid);  // also from here, so the group exists before anyone signals it
  tell_keeper('+', pid);
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    tell_keeper('-', pid);
    const std::string what = spec.cwd.empty() || child_errno != ENOENT
                                 ? spec.program
                                 : spec.program + " (in " + spec.cwd + ")";
    return plexus::error(
        child_errno == ENOENT || child_errno == EACCES ? errc::not_found : errc::invalid_argument,
        "cannot run " + what + ": " + ::strerror(child_errno), {{"program", spec.program}});
  }
  // Through syscall(2): glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    tell_keeper('-', pid);
    return plexus::error(errc::internal, std::string("pidfd_open: ") + ::strerror(err));
  }
  auto s = std::make_shared<state>(io);
  s->pid = pid;
  s->pidfd.assign(fd);
  s->on_exit = std::move(on_exit);
  s->watch();
  return std::unique_ptr<process>(new process(std::move(s)));
}

}  // namespace plexus::supervisor
