#include "plexus/supervisor/tree.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <list>
#include <sstream>

#include "plexus/log/record.hpp"
#include "plexus/supervisor/logs.hpp"
#include "plexus/supervisor/process.hpp"

namespace plexus::supervisor {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

std::string_view to_string(child_state s) noexcept {
  switch (s) {
    case child_state::stopped:
      return "stopped";
    case child_state::starting:
      return "starting";
    case child_state::ready:
      return "ready";
    case child_state::stopping:
      return "stopping";
    case child_state::backoff:
      return "backoff";
    case child_state::exited:
      return "exited";
  }
  return "?";
}

namespace {

// "0.1 s": for messages.
std::string in_seconds(std::chrono::milliseconds d) {
  return seconds_text(d) + " s";
}

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// A pipe whose ends are close-on-exec; the child gets its end through dup2.
struct pipe_pair {
  int read = -1;
  int write = -1;
  static result<pipe_pair> make() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      return plexus::error(errc::resource_exhausted, std::string("pipe: ") + ::strerror(errno));
    return pipe_pair{fds[0], fds[1]};
  }
  void close_write() {
    if (write >= 0) ::close(write);
    write = -1;
  }
  void close_all() {
    close_write();
    if (read >= 0) ::close(read);
    read = -1;
  }
};

// utime+stime (clock ticks), threads and RSS pages from /proc/PID/stat.
struct proc_sample {
  std::uint64_t ticks = 0;
  int threads = 0;
  std::uint64_t rss_pages = 0;
};
bool read_proc_stat(pid_t pid, proc_sample& out) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return false;
  // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  std::vector<std::string> v;
  while (fields >> f)
    v.push_back(f);
  // v[0] is field 3 (state): field n is v[n - 3].
  if (v.size() < 22) return false;
  out.ticks = std::stoull(v[14 - 3]) + std::stoull(v[15 - 3]);
  out.threads = std::stoi(v[20 - 3]);
  out.rss_pages = std::stoull(v[24 - 3]);
  return true;
}

}  // namespace

class tree::impl : public std::enable_shared_from_this<tree::impl> {
 public:
  impl(asio::io_context& io, tree_spec spec, tree_options opts)
      : io_(io),
        spec_(std::move(spec)),
        opts_(std::move(opts)),
        sampler_(io),
        null_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
    groups_.push_back({"", spec_.strategy, spec_.intensity, spec_.period, 0, {}});
    for (const auto& g : spec_.groups)
      groups_.push_back({g.name, g.strategy, g.intensity, g.period, 0, {}});
    std::vector<bool> seen(groups_.size());
    for (std::size_t e = 0; e < spec_.processes.size(); ++e)
      for (std::size_t r = 0; r < spec_.processes[e].replicas; ++r) {
        auto c = std::make_unique<child>(io_);
        c->spec = &spec_.processes[e];
        for (std::size_t g = 1; g < groups_.size(); ++g)
          if (groups_[g].name == c->spec->group) c->group = g;
        if (!seen[c->group]) groups_[c->group].first = children_.size();
        seen[c->group] = true;
        c->entry = e;
        c->replica = r;
        c->index = children_.size();
        c->label = c->spec->name + "[" + std::to_string(r) + "]";
        children_.push_back(std::move(c));
      }
  }

  ~impl() {
    if (null_fd_ >= 0) ::close(null_fd_);
    phase_ = phase::done;
    for (auto& c : children_) {
      c->ready_timer.cancel();
      c->proc.reset();  // SIGKILL to the group and reap
    }
  }

  result<void> check() const {
    for (const auto& p : spec_.processes)
      if (auto r = resolve(p); !r) return std::move(r).error();
    if (auto problem = find_group_problem(spec_)) {
      const auto& p = spec_.processes[problem->process];
      return plexus::error(
          errc::invalid_argument,
          "process " + p.name + ": " +
              (problem->what == group_problem::unknown
                   ? "no group named " + p.group
                   : "the processes of group " + p.group + " must be declared one after another"));
    }
    return {};
  }

  void start(done_handler done) {
    if (phase_ != phase::idle) return;
    on_done_ = std::move(done);
    phase_ = phase::running;
    for (auto& c : children_)
      pending_.push_back(c.get());
    sample();
    pump();
  }

  void stop() { shut_down(outcome::stopped, "stopped on request", false); }

  result<void> stop(std::string_view name) {
    auto group = find(name);
    if (group.empty()) return no_such(name);
    for (auto* c : group) {
      c->held = true;
      ++c->token;  // cancels a pending restart
      std::erase(pending_, c);
      terminate(*c, [] {});
      emit(*c, "info", "stopped on request", "stop");
    }
    asio::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->pump();
    });
    return {};
  }

  result<void> restart(std::string_view name) {
    auto group = find(name);
    if (group.empty()) return no_such(name);
    if (phase_ != phase::running) return plexus::error(errc::unavailable, "the tree is stopping");
    const auto token = next_token();
    auto remaining = std::make_shared<std::size_t>(group.size());
    auto after = [this, weak = weak_from_this(), group, token, remaining] {
      if (--*remaining != 0 || weak.expired() || phase_ != phase::running) return;
      for (auto* c : group)
        if (c->token == token) {
          c->consecutive = 0;
          c->state = child_state::stopped;
          pending_.push_back(c);
        }
      sort_pending();
      pump();
    };
    for (auto* c : group) {
      c->held = false;
      c->token = token;
      std::erase(pending_, c);
      emit(*c, "info", "restarting on request", "restart");
      terminate(*c, after);
    }
    return {};
  }

  std::vector<child_status> status() const {
    std::vector<child_status> out;
    const auto now = clock::now();
    for (const auto& c : children_) {
      child_status s;
      s.name = c->spec->name;
      s.group = c->spec->group;
      s.replica = c->replica;
      s.state = c->state;
      s.pid = c->proc && c->proc->running() ? c->proc->pid() : 0;
      s.restarts = c->restarts;
      if (s.pid != 0) {
        s.uptime_s = std::chrono::duration<double>(now - c->started).count();
        s.rss_bytes = c->rss_bytes;
        s.cpu_percent = c->cpu_percent;
        s.threads = c->threads;
      }
      s.last_exit = c->last_exit;
      s.health = c->health;
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  enum class phase { idle, running, stopping, done };

  struct group {
    std::string name;  // "" for the tree's own
    restart_strategy strategy = restart_strategy::one_for_one;
    std::size_t intensity = 5;
    std::chrono::milliseconds period{10000};
    std::size_t first = 0;                   // index of its first child
    std::deque<clock::time_point> restarts;  // within the last period
  };

  struct child {
    explicit child(asio::io_context& io) : ready_timer(io) {}
    const child_spec* spec = nullptr;
    std::size_t entry = 0;    // index of its [[process]]
    std::size_t replica = 0;  // 0 … replicas-1
    std::size_t index = 0;    // in children_: declared order
    std::size_t group = 0;    // in groups_
    std::string label;        // "calc[0]"
    child_state state = child_state::stopped;
    std::unique_ptr<process> proc;
    std::unique_ptr<line_reader> notify;
    asio::steady_timer ready_timer;
    std::vector<std::function<void()>> on_stopped;  // terminate() continuations
    clock::time_point started, ready_at;
    std::size_t restarts = 0;
    std::size_t consecutive = 0;  // failures since it last stayed up for a period
    std::uint64_t token = 0;      // restart generation: a stale scheduled restart is ignored
    bool held = false;            // stopped by `plexus stop NAME`
    bool timed_out = false;       // failed its ready_timeout
    std::string last_exit;
    value health;
    // /proc sampling
    std::uint64_t last_ticks = 0;
    clock::time_point last_sample;
    std::uint64_t rss_bytes = 0;
    double cpu_percent = 0;
    int threads = 0;
  };

  // ---- lookup ----------------------------------------------------------------------

  std::vector<child*> find(std::string_view name) const {
    std::vector<child*> out;
    for (const auto& c : children_)
      if (c->spec->name == name) out.push_back(c.get());
    return out;
  }

  plexus::error no_such(std::string_view name) const {
    std::string known;
    for (const auto& p : spec_.processes)
      known += (known.empty() ? "" : ", ") + p.name;
    return plexus::error(errc::not_found,
                         "no process named " + std::string(name) + " (known: " + known + ")",
                         {{"process", std::string(name)}});
  }

  result<std::string> resolve(const child_spec& p) const {
    if (p.command.find('/') == std::string::npos) {
      if (!opts_.program_dir.empty() && executable(fs::path(opts_.program_dir) / p.command))
        return (fs::path(opts_.program_dir) / p.command).string();
      const char* path = std::getenv("PATH");
      std::istringstream dirs(path ? path : "/usr/bin:/bin");
      std::string dir;
      while (std::getline(dirs, dir, ':'))
        if (!dir.empty() && executable(fs::path(dir) / p.command))
          return (fs::path(dir) / p.command).string();
      return plexus::error(errc::not_found,
                           "process " + p.name + ": command " + p.command + " not found in " +
                               (opts_.program_dir.empty() ? "" : opts_.program_dir + " or ") +
                               "$PATH",
                           {{"process", p.name}, {"command", p.command}});
    }
    fs::path cmd(p.command);
    if (cmd.is_relative() && !opts_.config_dir.empty()) cmd = fs::path(opts_.config_dir) / cmd;
    if (!executable(cmd))
      return plexus::error(errc::not_found,
                           "process " + p.name + ": " + cmd.string() + " is not an executable file",
                           {{"process", p.name}, {"command", p.command}});
    return cmd.string();
  }

  // ---- starting ----------------------------------------------------------------------

  // Starts what is pending, entry by entry: the next entry waits until every replica
  // of the one before it is ready (or has exited for good).
  void pump() {
    if (phase_ != phase::running || pumping_) return;
    pumping_ = true;
    while (!pending_.empty()) {
      const auto entry = pending_.front()->entry;
      bool settled = true;
      for (auto* c : pending_) {
        if (c->entry != entry) break;
        if (c->state == child_state::stopped || c->state == child_state::backoff) launch(*c);
        // After launch(): starting, or exited when it could not be started.
        if (c->state != child_state::ready && c->state != child_state::exited) settled = false;
      }
      if (!settled) break;
      while (!pending_.empty() && pending_.front()->entry == entry)
        pending_.pop_front();
    }
    pumping_ = false;
  }

  void sort_pending() {
    std::sort(pending_.begin(), pending_.end(),
              [](const child* a, const child* b) { return a->index < b->index; });
    pending_.erase(std::unique(pending_.begin(), pending_.end()), pending_.end());
  }

  void launch(child& c) {
    c.timed_out = false;
    c.health = nullptr;
    auto program = resolve(*c.spec);
    if (!program) {
      failed_to_start(c, program.error().message);
      return;
    }
    auto out = pipe_pair::make();
    auto err = pipe_pair::make();
    auto note = pipe_pair::make();
    if (!out || !err || !note) {
      for (auto* p : {&out, &err, &note})
        if (*p) (*p)->close_all();
      failed_to_start(c, "cannot create pipes: " + std::string(::strerror(errno)));
      return;
    }
    // Room for a burst of output while the loop is busy elsewhere (best effort).
    ::fcntl(out->read, F_SETPIPE_SZ, 1 << 20);
    ::fcntl(err->read, F_SETPIPE_SZ, 1 << 20);
    // Reports never block the child: a full pipe drops them.
    ::fcntl(note->write, F_SETFL, ::fcntl(note->write, F_GETFL) | O_NONBLOCK);

    spawn_spec s;
    s.program = *program;
    s.args = c.spec->args;
    s.env = c.spec->env;
    s.env.emplace_back("PLEXUS_ROUTER", opts_.router_address);
    s.env.emplace_back("PLEXUS_PROCESS", c.spec->name);
    s.env.emplace_back("PLEXUS_REPLICA", std::to_string(c.replica));
    s.env.emplace_back("PLEXUS_NOTIFY_FD", "3");
    s.cwd = c.spec->cwd;
    s.stdin_fd = null_fd_;  // a child in the background never reads the terminal
    s.stdout_fd = out->write;
    s.stderr_fd = err->write;
    s.fd3 = note->write;
    auto p = process::spawn(io_, s, [this, weak = weak_from_this(), &c](exit_status st) {
      if (!weak.expired()) on_exit(c, st);
    });
    out->close_write();
    err->close_write();
    note->close_write();
    if (!p) {
      out->close_all();
      err->close_all();
      note->close_all();
      failed_to_start(c, p.error().message);
      return;
    }
    c.proc = std::move(*p);
    c.state = child_state::starting;
    c.started = clock::now();
    c.last_ticks = 0;
    c.cpu_percent = 0;
    c.rss_bytes = 0;
    const auto pid = c.proc->pid();
    read_lines(c, out->read, "stdout", "info");
    read_lines(c, err->read, "stderr", "warn");
    c.notify = std::make_unique<line_reader>(
        io_, note->read, line_reader_options{.max_line = 4096},
        [this, &c](std::string_view line, bool partial) {
          if (!partial) on_report(c, line);
        },
        [] {});
    c.notify->start();
    emit(c, "debug", "started (pid " + std::to_string(pid) + ")", "start");
    if (c.spec->ready == readiness::spawn) {
      asio::post(io_, [this, weak = weak_from_this(), &c, pid] {
        if (!weak.expired() && c.proc && c.proc->pid() == pid) mark_ready(c);
      });
      return;
    }
    c.ready_timer.expires_after(c.spec->ready_timeout);
    c.ready_timer.async_wait([this, weak = weak_from_this(),
                              &c](const boost::system::error_code& ec) {
      if (ec || weak.expired() || c.state != child_state::starting) return;
      c.timed_out = true;
      emit(c, "error", "not ready within " + in_seconds(c.spec->ready_timeout), "ready_timeout");
      c.proc->stop(c.spec->stop_timeout);
    });
  }

  // stdout/stderr: one log record per line. The reader lives until the end of its
  // input, which may come after the child's exit (a grandchild can hold the pipe).
  void read_lines(child& c, int fd, const char* stream, const char* level) {
    readers_.emplace_back();
    auto it = std::prev(readers_.end());
    const std::string name = c.spec->name;
    const auto replica = c.replica;
    const auto pid = c.proc->pid();
    *it = std::make_unique<line_reader>(
        io_, fd, line_reader_options{},
        [this, name, replica, pid, stream, level](std::string_view line, bool partial) {
          value fields{{"stream", stream}};
          if (partial) fields["partial"] = true;
          publish_record(name, replica, pid, level, line, std::move(fields));
        },
        [this, weak = weak_from_this(), it] {
          // Destroyed later: this runs inside the reader.
          asio::post(io_, [this, weak, it] {
            if (!weak.expired()) readers_.erase(it);
          });
        });
    (*it)->start();
  }

  void on_report(child& c, std::string_view line) {
    if (line == "READY=1") {
      if (c.state == child_state::starting) mark_ready(c);
    } else if (line.starts_with("HEALTH=")) {
      auto v = value::parse(line.substr(7), nullptr, false);
      if (!v.is_discarded()) c.health = std::move(v);
    }
  }

  void mark_ready(child& c) {
    if (c.state != child_state::starting) return;
    c.state = child_state::ready;
    c.ready_at = clock::now();
    c.ready_timer.cancel();
    emit(c, "info",
         "ready (pid " + std::to_string(c.proc->pid()) + ", " +
             std::to_string(
                 std::chrono::duration_cast<std::chrono::milliseconds>(c.ready_at - c.started)
                     .count()) +
             " ms)",
         "ready");
    pump();
  }

  // ---- exits and restarts ---------------------------------------------------------------

  void failed_to_start(child& c, const std::string& why) {
    c.state = child_state::exited;
    c.last_exit = why;
    emit(c, "error", "cannot start: " + why, "exit");
    asio::post(io_, [this, weak = weak_from_this(), &c] {
      if (!weak.expired()) failed(c, exit_status{false, 127});
    });
  }

  void on_exit(child& c, exit_status st) {
    c.ready_timer.cancel();
    c.notify.reset();
    std::string why = c.timed_out ? "not ready within " + in_seconds(c.spec->ready_timeout) + " (" +
                                        st.describe() + ")"
                                  : st.describe();
    c.last_exit = why;
    c.proc.reset();
    if (c.state == child_state::stopping) {
      c.state = child_state::stopped;
      emit(c, "info", "stopped (" + why + ")", "exit");
      auto waiting = std::move(c.on_stopped);
      c.on_stopped.clear();
      for (auto& w : waiting)
        w();
      return;
    }
    c.state = child_state::exited;
    emit(c, st.signaled || st.code != 0 || c.timed_out ? "error" : "info", why, "exit");
    if (phase_ != phase::running) return;
    if (spec_.emergency_exit_code != 0 && !st.signaled && st.code == spec_.emergency_exit_code) {
      shut_down(outcome::emergency,
                "emergency stop: " + c.label + " exited with the emergency exit code " +
                    std::to_string(st.code),
                true);
      return;
    }
    failed(c, st);
  }

  void failed(child& c, exit_status st) {
    if (phase_ != phase::running || c.held) return;
    const bool abnormal = st.signaled || st.code != 0 || c.timed_out;
    const bool again = c.spec->restart == restart_policy::permanent ||
                       (c.spec->restart == restart_policy::transient && abnormal);
    if (!again) {
      std::erase(pending_, &c);
      pump();
      return;
    }
    const auto now = clock::now();
    // Intensity: more than `intensity` restarts within `period` fail the group; the
    // tree's own group failing ends the tree, another group is restarted whole by the
    // tree (and counts as one restart of the tree).
    auto& g = groups_[c.group];
    std::vector<child*> set;
    std::string strategy_name = std::string(to_string(g.strategy));
    if (count_restart(g, now)) {
      set = restart_set_of(g, c.index, c);
    } else if (c.group == 0) {
      shut_down(outcome::intensity_exceeded,
                c.label + " failed (" + c.last_exit + "): " + too_many(g) + "; stopping the tree",
                false);
      return;
    } else {
      g.restarts.clear();  // a restarted supervisor starts with a fresh window
      auto& root = groups_[0];
      const std::string why =
          "group " + g.name + ": " + c.label + " failed (" + c.last_exit + "): " + too_many(g);
      if (!count_restart(root, now)) {
        shut_down(outcome::intensity_exceeded,
                  why + "; the tree: " + too_many(root) + "; stopping the tree", false);
        return;
      }
      emit(c, "error", why + "; restarting the group", "group_restart");
      // The group is one child of the tree: its first process stands for it.
      set = restart_set_of(root, g.first, c);
      for (auto& s : children_)
        if (s->group == c.group && std::find(set.begin(), set.end(), s.get()) == set.end())
          set.push_back(s.get());
      std::sort(set.begin(), set.end(),
                [](const child* a, const child* b) { return a->index < b->index; });
      strategy_name =
          "group " + g.name + " restarted by the tree's " + std::string(to_string(root.strategy));
    }
    // Backoff: doubles with each consecutive failure; a child that stayed ready for a
    // whole period starts over.
    if (c.ready_at != clock::time_point{} && now - c.ready_at >= g.period) c.consecutive = 0;
    ++c.consecutive;
    auto delay = spec_.backoff_initial;
    for (std::size_t k = 1; k < c.consecutive && delay < spec_.backoff_max; ++k)
      delay *= 2;
    delay = std::min(delay, spec_.backoff_max);

    std::string others;
    for (auto* s : set)
      if (s != &c) others += (others.empty() ? "" : ", ") + s->label;
    emit(c, "warn",
         std::string("restarting") + (others.empty() ? "" : " with " + others) + " in " +
             in_seconds(delay) + " (" + strategy_name + ")",
         "restart");
    restart_set(std::move(set), delay);
  }

  // Records a restart in `g`'s window; false when that makes more than its intensity.
  bool count_restart(group& g, clock::time_point now) {
    g.restarts.push_back(now);
    while (!g.restarts.empty() && now - g.restarts.front() > g.period)
      g.restarts.pop_front();
    return g.restarts.size() <= g.intensity;
  }

  static std::string too_many(const group& g) {
    return "more than " + std::to_string(g.intensity) + " restarts within " + in_seconds(g.period) +
           " (intensity " + std::to_string(g.intensity) + ", period " + in_seconds(g.period) + ")";
  }

  // What `g`'s strategy restarts when its child at `index` fails: that child, every
  // child of the group, or that child and those declared after it (for the tree's own
  // group, "every child" includes the processes of the groups in it). Siblings stopped
  // by hand or gone for good (their policy said so) stay out; `failed` is always in.
  std::vector<child*> restart_set_of(const group& g, std::size_t index, const child& failed) {
    std::vector<child*> set;
    const bool root = &g == &groups_[0];
    for (auto& s : children_) {
      const bool member = root || s->group == failed.group;
      const bool in = s.get() == &failed || s->index == index ||
                      (member && g.strategy == restart_strategy::one_for_all) ||
                      (member && g.strategy == restart_strategy::rest_for_one && s->index >= index);
      if (in && (s.get() == &failed || (!s->held && s->state != child_state::exited)))
        set.push_back(s.get());
    }
    return set;
  }

  // Stops the members of `set` still running, one after another in reverse declared
  // order (OTP), waits `delay`, then starts them all again in declared order.
  void restart_set(std::vector<child*> set, std::chrono::milliseconds delay) {
    const auto token = next_token();
    for (auto* m : set) {
      m->token = token;
      ++m->restarts;
      std::erase(pending_, m);
    }
    const auto n = set.size();
    stop_then_restart(std::move(set), n, token, delay);
  }

  // Stops set[k-1], then set[k-2], …; then schedules the restart.
  void stop_then_restart(std::vector<child*> set, std::size_t k, std::uint64_t token,
                         std::chrono::milliseconds delay) {
    if (phase_ != phase::running) return;
    while (k > 0 && set[k - 1]->token == token && set[k - 1]->state != child_state::starting &&
           set[k - 1]->state != child_state::ready && set[k - 1]->state != child_state::stopping)
      --k;
    if (k > 0 && set[k - 1]->token == token) {
      auto* m = set[k - 1];
      terminate(*m, [this, weak = weak_from_this(), set, k, token, delay]() mutable {
        if (!weak.expired()) stop_then_restart(std::move(set), k - 1, token, delay);
      });
      return;
    }
    if (k > 0) {  // a newer restart took this member over: skip it
      stop_then_restart(std::move(set), k - 1, token, delay);
      return;
    }
    for (auto* m : set)
      if (m->token == token) m->state = child_state::backoff;
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait(
        [this, weak = weak_from_this(), set, token, timer](const boost::system::error_code& ec) {
          if (ec || weak.expired() || phase_ != phase::running) return;
          for (auto* m : set)
            if (m->token == token && m->state == child_state::backoff) pending_.push_back(m);
          sort_pending();
          pump();
        });
  }

  std::uint64_t next_token() { return ++tokens_; }

  // Ends a running (or starting) child; `then` runs once it has exited.
  void terminate(child& c, std::function<void()> then) {
    switch (c.state) {
      case child_state::starting:
      case child_state::ready:
        c.state = child_state::stopping;
        c.ready_timer.cancel();
        c.on_stopped.push_back(std::move(then));
        c.proc->stop(c.spec->stop_timeout);
        return;
      case child_state::stopping:
        c.on_stopped.push_back(std::move(then));
        return;
      case child_state::backoff:
        c.state = child_state::stopped;
        break;
      case child_state::stopped:
      case child_state::exited:
        break;
    }
    asio::post(io_, std::move(then));
  }

  // ---- the end ----------------------------------------------------------------------

  // Stops everything: entries in reverse declared order, each waiting for the one
  // after it to have exited; `kill` sends SIGKILL to all at once instead.
  void shut_down(outcome why, std::string message, bool kill) {
    if (phase_ != phase::running && phase_ != phase::idle) return;
    const bool was_idle = phase_ == phase::idle;
    phase_ = phase::stopping;
    outcome_ = why;
    message_ = std::move(message);
    pending_.clear();
    sampler_.cancel();
    if (why != outcome::stopped)
      emit_tree(why == outcome::emergency ? "critical" : "error", message_);
    if (was_idle) {
      finish();
      return;
    }
    if (kill) {
      auto remaining = std::make_shared<std::size_t>(1);
      auto one = [this, weak = weak_from_this(), remaining] {
        if (--*remaining == 0 && !weak.expired()) finish();
      };
      for (auto& c : children_) {
        if (c->state == child_state::starting || c->state == child_state::ready ||
            c->state == child_state::stopping) {
          ++*remaining;
          c->state = child_state::stopping;
          c->ready_timer.cancel();
          c->on_stopped.push_back(one);
          (void)c->proc->signal(SIGKILL);
        } else if (c->state == child_state::backoff) {
          c->state = child_state::stopped;
        }
      }
      one();
      return;
    }
    stop_entry(spec_.processes.size());
  }

  // Stops entry k-1, then k-2, … 0, then finishes.
  void stop_entry(std::size_t k) {
    if (k == 0) {
      finish();
      return;
    }
    const auto entry = k - 1;
    auto remaining = std::make_shared<std::size_t>(1);
    auto next = [this, weak = weak_from_this(), remaining, entry] {
      if (--*remaining == 0 && !weak.expired()) stop_entry(entry);
    };
    for (auto& c : children_)
      if (c->entry == entry) {
        ++*remaining;
        terminate(*c, next);
      }
    next();
  }

  void finish() {
    if (phase_ == phase::done) return;
    phase_ = phase::done;
    sampler_.cancel();
    if (on_done_) {
      auto done = std::move(on_done_);
      on_done_ = nullptr;
      done(outcome_, message_);
    }
  }

  // ---- logs and samples -------------------------------------------------------------

  void publish_record(const std::string& name, std::size_t replica, pid_t pid,
                      std::string_view level, std::string_view message, value fields) {
    if (!opts_.on_log) return;
    opts_.on_log(log::topic(name),
                 log::make_record(level, message, std::move(fields), name,
                                  static_cast<std::int64_t>(replica), pid));
  }

  // A supervisor event about a child: tagged with the child's name, so
  // `plexus logs --process NAME` shows its restarts next to its output.
  void emit(const child& c, std::string_view level, const std::string& message,
            std::string_view event) {
    publish_record(c.spec->name, c.replica, c.proc ? c.proc->pid() : 0, level, message,
                   {{"stream", "supervisor"}, {"event", event}});
  }

  void emit_tree(std::string_view level, const std::string& message) {
    if (!opts_.on_log) return;
    opts_.on_log(log::topic("plexus"),
                 log::make_record(level, message, {{"stream", "supervisor"}}, "plexus"));
  }

  void sample() {
    static const long ticks_per_s = ::sysconf(_SC_CLK_TCK);
    static const long page = ::sysconf(_SC_PAGESIZE);
    const auto now = clock::now();
    for (auto& c : children_) {
      if (!c->proc || !c->proc->running()) continue;
      proc_sample s;
      if (!read_proc_stat(c->proc->pid(), s)) continue;
      if (c->last_ticks != 0 || c->last_sample > c->started) {
        const double wall = std::chrono::duration<double>(now - c->last_sample).count();
        if (wall > 0)
          c->cpu_percent = 100.0 * static_cast<double>(s.ticks - c->last_ticks) /
                           static_cast<double>(ticks_per_s) / wall;
      }
      c->last_ticks = s.ticks;
      c->last_sample = now;
      c->threads = s.threads;
      c->rss_bytes = s.rss_pages * static_cast<std::uint64_t>(page);
    }
    sampler_.expires_after(opts_.sample_interval);
    sampler_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && self->phase_ == phase::running) self->sample();
    });
  }

  asio::io_context& io_;
  tree_spec spec_;
  tree_options opts_;
  std::vector<std::unique_ptr<child>> children_;  // declared order
  std::deque<child*> pending_;                    // to start, in declared order
  std::list<std::unique_ptr<line_reader>> readers_;
  std::vector<group> groups_;  // [0]: the tree's own ([supervisor]); then [group.NAME]
  asio::steady_timer sampler_;
  int null_fd_;  // every child's stdin
  phase phase_ = phase::idle;
  bool pumping_ = false;
  std::uint64_t tokens_ = 0;
  outcome outcome_ = outcome::stopped;
  std::string message_;
  done_handler on_done_;
};

tree::tree(asio::io_context& io, tree_spec spec, tree_options opts)
    : impl_(std::make_shared<impl>(io, std::move(spec), std::move(opts))) {}
tree::~tree() = default;
result<void> tree::check() const {
  return impl_->check();
}
void tree::start(done_handler done) {
  impl_->start(std::move(done));
}
void tree::stop() {
  impl_->stop();
}
result<void> tree::stop(std::string_view name) {
  return impl_->stop(name);
}
result<void> tree::restart(std::string_view name) {
  return impl_->restart(name);
}
std::vector<child_status> tree::status() const {
  return impl_->status();
}

}  // namespace plexus::supervisor
