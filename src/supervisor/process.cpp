#include "plexus/supervisor/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "plexus/os/unique_fd.hpp"

extern char** environ;

namespace plexus::supervisor {

namespace asio = boost::asio;

std::string exit_status::describe() const {
  if (!signaled) return "exited with " + std::to_string(code);
  const char* name = sigabbrev_np(code);
  return std::string("killed by ") + (name ? std::string("SIG") + name : std::to_string(code));
}

namespace {

// The write end of the keeper's socket (empty: no keeper). Each line is "+PGID" when a
// child's group starts, "-PGID" when it has been swept, "=DIR" when the children's
// cgroup is DIR (empty: none). Closed only by the exit of this process, which the
// keeper reads as EOF.
os::unique_fd keeper_fd;

// The children spawn() started that have not been reaped yet, and the keeper: the
// children of this process that are not adopted orphans.
std::mutex spawned_mutex;
std::set<pid_t> spawned;  // guarded by spawned_mutex
pid_t keeper_pid = 0;

void track(pid_t pid, bool running) {
  std::lock_guard lock(spawned_mutex);
  if (running)
    spawned.insert(pid);
  else
    spawned.erase(pid);
}

// The children of this process (of any of its threads) that are adopted orphans.
std::vector<pid_t> orphans() {
  std::vector<pid_t> out;
  std::lock_guard lock(spawned_mutex);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream children(task.path() / "children");
    pid_t pid;
    while (children >> pid)
      if (pid != keeper_pid && !spawned.contains(pid)) out.push_back(pid);
  }
  return out;
}

// The cgroup v2 group the children are born in (contain_children), and its cgroup.procs
// open for writing; empty when they are not contained.
std::string cgroup_dir;
os::unique_fd cgroup_procs;

// Kills every process in the cgroup `dir` (cgroup.kill) and removes the group once it
// is empty, waiting for that at most `limit`.
void kill_cgroup(const std::string& dir, std::chrono::milliseconds limit) {
  if (os::unique_fd all(::open((dir + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC)); all)
    (void)!::write(all.get(), "1", 1);
  os::unique_fd events(::open((dir + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
  const auto end = std::chrono::steady_clock::now() + limit;
  while (events) {
    char buf[256];
    const auto n = ::pread(events.get(), buf, sizeof buf - 1, 0);
    if (n <= 0) break;
    buf[n] = '\0';
    if (std::strstr(buf, "populated 0")) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{events.get(), POLLPRI, 0};  // a change of cgroup.events wakes it
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  ::rmdir(dir.c_str());
}

void tell_keeper_cgroup(const std::string& dir) {
  if (!keeper_fd) return;
  const std::string line = "=" + dir + "\n";
  while (::send(keeper_fd.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void tell_keeper(char op, pid_t pgid) noexcept {
  if (!keeper_fd) return;
  char line[32];
  const int n = std::snprintf(line, sizeof line, "%c%d\n", op, static_cast<int>(pgid));
  while (::send(keeper_fd.get(), line, static_cast<std::size_t>(n), MSG_NOSIGNAL) < 0 &&
         errno == EINTR) {
  }
}

[[noreturn]] void keeper_main(int fd) {
  ::prctl(PR_SET_NAME, "plexus-keeper");
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP})
    ::signal(sig, SIG_IGN);
  std::set<pid_t> groups;
  std::string cgroup;  // "=DIR": the children's cgroup ("=": none any more)
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
      if (pending[start] == '=') {
        cgroup = pending.substr(start + 1, end - start - 1);
      } else if (pgid > 0) {
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
  if (!cgroup.empty()) kill_cgroup(cgroup, std::chrono::seconds(2));
  ::_exit(0);
}

// Closes the descriptors [first, last]. System calls only: it runs in the child between
// clone and exec. close_range(2) where the kernel has it (5.9), else one close per
// descriptor the limit allows.
void close_fds(unsigned first, unsigned last) noexcept {
  if (first > last) return;
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, last, 0) == 0) return;
#endif
  rlimit lim{};
  const unsigned end = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < (1u << 20)
                           ? static_cast<unsigned>(lim.rlim_cur)
                           : (1u << 20);
  for (unsigned fd = first; fd <= last && fd < end; ++fd)
    ::close(static_cast<int>(fd));
}

// Closes every descriptor from `first` up except `keep` (-1: none).
void close_fds_from(int first, int keep) noexcept {
  if (keep >= first) {
    close_fds(static_cast<unsigned>(first), static_cast<unsigned>(keep) - 1);
    close_fds(static_cast<unsigned>(keep) + 1, ~0u);
  } else {
    close_fds(static_cast<unsigned>(first), ~0u);
  }
}

// What the child of spawn() needs, prepared before the clone: after it, only
// async-signal-safe calls, and nothing that allocates (the memory is the parent's).
struct exec_plan {
  char** argv;
  char** envp;
  const char* cwd;  // null: stay
  int stdin_fd, stdout_fd, stderr_fd, fd3;
  int report_read, report_write;
  pid_t parent;
  int cgroup_procs;  // -1: not contained
};

int exec_child(void* arg) {
  auto* p = static_cast<exec_plan*>(arg);
  int report = p->report_write;
  const auto fail = [&](int err) {
    (void)!::write(report, &err, sizeof err);
    ::_exit(127);
  };
  ::close(p->report_read);
  // Every handler back to its default before the signals are unblocked: a handler of
  // the parent must not run here, in the parent's memory.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction cur {};
    if (::sigaction(sig, nullptr, &cur) == 0 && cur.sa_handler != SIG_DFL &&
        cur.sa_handler != SIG_IGN)
      ::sigaction(sig, &dfl, nullptr);
  }
  // Also the ones the supervisor ignores (SIGPIPE always; SIGINT when started in the
  // background by a script): a child starts with the defaults.
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    ::sigaction(sig, &dfl, nullptr);
  ::setpgid(0, 0);
  // Into the children's cgroup before anything of the child's own runs, so that all it
  // starts is born there (best effort: a failed write leaves it outside).
  if (p->cgroup_procs >= 0) (void)!::write(p->cgroup_procs, "0", 1);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != p->parent) ::_exit(127);  // the parent died before prctl
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (p->stdin_fd >= 0 && ::dup2(p->stdin_fd, STDIN_FILENO) < 0) fail(errno);
  if (p->stdout_fd >= 0 && ::dup2(p->stdout_fd, STDOUT_FILENO) < 0) fail(errno);
  if (p->stderr_fd >= 0 && ::dup2(p->stderr_fd, STDERR_FILENO) < 0) fail(errno);
  if (p->fd3 >= 0 && report == 3) report = ::fcntl(3, F_DUPFD_CLOEXEC, 4);
  if (p->fd3 == 3) {
    ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
  } else if (p->fd3 >= 0 && ::dup2(p->fd3, 3) < 0) {
    fail(errno);
  }
  // The program gets 0, 1, 2 and its fd 3, nothing else of the supervisor's: not a
  // descriptor some library or another thread opened without close-on-exec either.
  // (The report pipe is close-on-exec: the exec closes it.)
  close_fds_from(p->fd3 >= 0 ? 4 : 3, report);
  if (p->cwd && ::chdir(p->cwd) != 0) fail(errno);
  ::execvpe(p->argv[0], p->argv, p->envp);
  fail(errno);
  return 127;
}

}  // namespace

result<void> process::start_keeper() {
  if (keeper_fd) return {};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return plexus::error(errc::internal, std::string("socketpair: ") + ::strerror(errno));
  os::unique_fd keeper_end(sv[0]), our_end(sv[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return plexus::error(errc::internal, std::string("fork: ") + ::strerror(errno));
  if (pid == 0) {
    our_end.close();
    ::setpgid(0, 0);  // out of the terminal's Ctrl-C
    // Everything else this process had open stays with it; the keeper needs none of it.
    close_fds_from(3, keeper_end.get());
    keeper_main(keeper_end.get());
  }
  keeper_end.close();
  keeper_fd = std::move(our_end);
  keeper_pid = pid;
  return {};
}

result<void> process::adopt_orphans() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    return plexus::error(errc::internal,
                         std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + ::strerror(errno));
  return {};
}

void process::reap_orphans() {
  for (pid_t pid : orphans()) {
    siginfo_t info{};
    ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG);
  }
}

result<std::string> process::contain_children() {
  if (!cgroup_dir.empty()) return cgroup_dir;
  // The cgroup2 hierarchy: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid system.
  std::string mount;
  {
    std::ifstream info("/proc/self/mountinfo");
    std::string line;
    while (mount.empty() && std::getline(info, line)) {
      const auto dash = line.find(" - cgroup2 ");
      if (dash == std::string::npos) continue;
      std::istringstream fields(line.substr(0, dash));
      std::string id, parent, device, root, point;
      fields >> id >> parent >> device >> root >> point;
      if (root == "/") mount = point;
    }
  }
  if (mount.empty()) return plexus::error(errc::unavailable, "no cgroup2 hierarchy is mounted");
  std::string own;
  {
    std::ifstream groups("/proc/self/cgroup");
    std::string line;
    while (std::getline(groups, line))
      if (line.starts_with("0::")) own = line.substr(3);
  }
  if (own.empty()) return plexus::error(errc::unavailable, "this process has no cgroup2 group");
  if (own == "/") own.clear();
  const auto dir = mount + own + "/plexus-" + std::to_string(::getpid());
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return plexus::error(errc::unavailable,
                         "cannot create the cgroup " + dir + ": " + ::strerror(errno));
  if (::access((dir + "/cgroup.kill").c_str(), W_OK) != 0) {
    ::rmdir(dir.c_str());
    return plexus::error(
        errc::unavailable,
        "the cgroup " + dir + " has no writable cgroup.kill (Linux 5.14 or later)");
  }
  os::unique_fd procs(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!procs) {
    const int err = errno;
    ::rmdir(dir.c_str());
    return plexus::error(errc::unavailable,
                         "cannot open " + dir + "/cgroup.procs: " + ::strerror(err));
  }
  cgroup_dir = dir;
  cgroup_procs = std::move(procs);
  tell_keeper_cgroup(cgroup_dir);
  return cgroup_dir;
}

std::size_t process::sweep_orphans() {
  if (!cgroup_dir.empty()) {
    // Everything born in the group, whoever its parent is now.
    cgroup_procs.close();
    kill_cgroup(cgroup_dir, std::chrono::seconds(2));
    cgroup_dir.clear();
    tell_keeper_cgroup("");
  }
  std::size_t swept = 0;
  // Each round kills the orphans found; their own children are orphans next round.
  // Bounded, in case something forks faster than it is killed.
  for (int round = 0; round < 64; ++round) {
    const auto found = orphans();
    if (found.empty()) break;
    for (pid_t pid : found)
      ::kill(pid, SIGKILL);
    for (pid_t pid : found) {
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    swept += found.size();
  }
  return swept;
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
    track(pid, false);
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
  track(s_->pid, false);
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

process::started::started(started&& o) noexcept
    : pid_(std::exchange(o.pid_, 0)), pidfd_(std::exchange(o.pidfd_, -1)) {}

process::started& process::started::operator=(started&& o) noexcept {
  if (this != &o) {
    discard();
    pid_ = std::exchange(o.pid_, 0);
    pidfd_ = std::exchange(o.pidfd_, -1);
  }
  return *this;
}

process::started::~started() {
  discard();
}

// Never adopted: killed and reaped here (SIGKILL cannot be ignored: this is short).
void process::started::discard() noexcept {
  if (pidfd_ < 0) return;
  ::kill(-pid_, SIGKILL);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED) != 0 && errno == EINTR) {
  }
  track(pid_, false);
  ::kill(-pid_, SIGKILL);
  tell_keeper('-', pid_);
  ::close(pidfd_);
  pidfd_ = -1;
  pid_ = 0;
}

result<std::unique_ptr<process>> process::spawn(asio::io_context& io, const spawn_spec& spec,
                                                exit_handler on_exit) {
  auto child = start(spec);
  if (!child) return std::move(child).error();
  return adopt(io, std::move(*child), std::move(on_exit));
}

std::unique_ptr<process> process::adopt(asio::io_context& io, started child, exit_handler on_exit) {
  auto s = std::make_shared<state>(io);
  s->pid = child.pid_;
  s->pidfd.assign(std::exchange(child.pidfd_, -1));  // the stream descriptor owns it now
  child.pid_ = 0;
  s->on_exit = std::move(on_exit);
  s->watch();
  return std::unique_ptr<process>(new process(std::move(s)));
}

result<process::started> process::start(const spawn_spec& spec) {
  if (spec.program.empty()) return plexus::error(errc::invalid_argument, "empty program");

  // Everything the child needs is built before the clone: after it, only
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
  int report_fds[2];
  if (::pipe2(report_fds, O_CLOEXEC) != 0)
    return plexus::error(errc::internal, std::string("pipe: ") + ::strerror(errno));
  os::unique_fd report_read(report_fds[0]), report_write(report_fds[1]);
  exec_plan plan{argv.data(),
                 envp.data(),
                 spec.cwd.empty() ? nullptr : spec.cwd.c_str(),
                 spec.stdin_fd,
                 spec.stdout_fd,
                 spec.stderr_fd,
                 spec.fd3,
                 report_read.get(),
                 report_write.get(),
                 ::getpid(),
                 cgroup_procs ? cgroup_procs.get() : -1};
  // clone(CLONE_VM | CLONE_VFORK), as posix_spawn does: no copy of this process's page
  // tables (and no copy-on-write faults afterwards), which fork() would pay per child.
  // The child runs on its own stack until it execs; this thread waits meanwhile. All
  // signals stay blocked across the clone, so no handler of this process runs in the
  // child (it resets them before unblocking).
  // The stack is mapped for this child and unmapped after: heap memory would stay
  // resident (the child touched it) and be handed to later allocations.
  constexpr std::size_t stack_bytes = 64u << 10;
  void* stack = ::mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED)
    return plexus::error(errc::resource_exhausted, std::string("mmap: ") + ::strerror(errno));
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid;
  int clone_errno;
  {
    // The child is among `spawned` before reap_orphans() (the loop, on SIGCHLD) can
    // see it in /proc: a child that fails its exec at once is reaped by this thread,
    // not taken for an orphan. The loop waits on this lock at most one exec.
    std::lock_guard lock(spawned_mutex);
    pid = ::clone(exec_child, static_cast<char*>(stack) + stack_bytes,
                  CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    clone_errno = errno;
    if (pid > 0) spawned.insert(pid);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, stack_bytes);  // the child has exec'd or exited: CLONE_VFORK waited
  if (pid < 0)
    return plexus::error(errc::unavailable, std::string("clone: ") + ::strerror(clone_errno));
  report_write.close();
  ::setpgid(pid, pid);  // also from here, so the group exists before anyone signals it
  tell_keeper('+', pid);
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(report_read.get(), &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  report_read.close();
  if (n > 0) {
    ::waitpid(pid, nullptr, 0);
    track(pid, false);
    tell_keeper('-', pid);
    const std::string what = spec.cwd.empty() || child_errno != ENOENT
                                 ? spec.program
                                 : spec.program + " (in " + spec.cwd + ")";
    return plexus::error(
        child_errno == ENOENT || child_errno == EACCES ? errc::not_found : errc::invalid_argument,
        "cannot run " + what + ": " + ::strerror(child_errno), {{"program", spec.program}});
  }
  // Through syscall(2): glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
  os::unique_fd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    track(pid, false);
    tell_keeper('-', pid);
    return plexus::error(errc::internal, std::string("pidfd_open: ") + ::strerror(err));
  }
  started out;
  out.pid_ = pid;
  out.pidfd_ = fd.release();
  return out;
}

}  // namespace plexus::supervisor
