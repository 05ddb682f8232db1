#include "plexus/supervisor/tree.hpp"

#include <fcntl.h>
#include <signal.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <list>

#include "plexus/log/record.hpp"
#include "plexus/os/unique_fd.hpp"
#include "plexus/supervisor/logs.hpp"
#include "plexus/supervisor/process.hpp"
#include "supervisor/launch.hpp"
#include "supervisor/proc_stats.hpp"
#include "supervisor/spawner.hpp"

// The tree is the executor of supervisor::policy: it feeds the policy the events of the
// loop (exits, READY=1, timeouts, requests by name) and carries out its plans. The
// multi-step sequences (stop a restart set one by one, back off, start it again; stop
// the tree entry by entry) are coroutines on the loop; each one checks, after every
// wait, that the tree still lives. A coroutine waiting for a child's exit when the tree
// dies is destroyed without resuming (its handler goes with the child); one waiting on
// a backoff timer resumes with the timer cancelled and returns at once.
//
// Starting a child blocks (the program's lookup, pipes, clone, the wait for the exec):
// that runs on the spawner thread, and the child comes back to the loop as a
// process::started. Meanwhile the child is `starting` with no process yet (`pending`);
// a stop or kill asked for then is carried out when it comes back. A child started for
// a tree that has died is killed and reaped where its result lands.

namespace plexus::supervisor {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

// "0.1 s": for messages.
std::string in_seconds(std::chrono::milliseconds d) {
  return seconds_text(d) + " s";
}

}  // namespace

class tree::impl : public std::enable_shared_from_this<tree::impl> {
 public:
  impl(asio::io_context& io, tree_spec spec, tree_options opts)
      : io_(io),
        spec_(std::move(spec)),
        opts_(std::move(opts)),
        policy_(spec_),
        sampler_(io),
        null_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
    for (std::size_t i = 0; i < policy_.size(); ++i)
      children_.push_back(std::make_unique<child>(io_));
  }

  ~impl() {
    phase_ = phase::done;
    for (auto& t : backoffs_)
      t.cancel();
    for (auto& c : children_) {
      c->ready_timer.cancel();
      c->proc.reset();  // SIGKILL to the group and reap
    }
  }

  result<void> check() const {
    for (const auto& p : spec_.processes)
      if (auto r = find_program(p, search()); !r) return std::move(r).error();
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
    policy_.enqueue_all();
    sample();
    pump();
  }

  void stop() { shut_down(outcome::stopped, "stopped on request", false); }

  result<void> stop(std::string_view name) {
    const auto members = policy_.find(name);
    if (members.empty()) return no_such(name);
    policy_.hold(members);
    for (auto i : members) {
      begin_stop(i);
      emit(i, "info", "stopped on request", "stop");
    }
    pump_soon();
    return {};
  }

  result<void> restart(std::string_view name) {
    const auto members = policy_.find(name);
    if (members.empty()) return no_such(name);
    if (phase_ != phase::running) return plexus::error(errc::unavailable, "the tree is stopping");
    const auto token = policy_.restart_by_name(members);
    for (auto i : members) {
      emit(i, "info", "restarting on request", "restart");
      begin_stop(i);
    }
    spawn(restart_by_name(weak_from_this(), members, token));
    return {};
  }

  std::vector<child_status> status() const {
    std::vector<child_status> out;
    const auto now = clock::now();
    for (std::size_t i = 0; i < children_.size(); ++i) {
      const auto& c = *children_[i];
      child_status s;
      s.name = policy_.spec_of(i).name;
      s.group = policy_.spec_of(i).group;
      s.replica = policy_.replica(i);
      s.state = policy_.state(i);
      s.pid = c.proc && c.proc->running() ? c.proc->pid() : 0;
      s.restarts = policy_.restarts(i);
      if (s.pid != 0) {
        s.uptime_s = std::chrono::duration<double>(now - c.started).count();
        s.rss_bytes = c.stats.rss_bytes();
        s.cpu_percent = c.stats.cpu_percent();
        s.threads = c.stats.threads();
      }
      s.last_exit = c.last_exit;
      s.health = c.health;
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  enum class phase { idle, running, stopping, done };

  // What the executor keeps of a child besides the policy's state: the process, its
  // pipes' readers, its timers, and what `plexus ps` shows. Indexed like the policy.
  struct child {
    explicit child(asio::io_context& io) : ready_timer(io) {}
    std::unique_ptr<process> proc;
    // Being started on the spawner thread: no process yet. Each launch has its own
    // number (`launches`), so that a result can only land on the launch it belongs to.
    bool pending = false;
    std::uint64_t launches = 0;
    bool kill_when_started = false;  // kill_all() came while it was pending
    std::unique_ptr<line_reader> notify;
    asio::steady_timer ready_timer;
    // Run once it has exited after the tree stopped it (see exited()).
    std::vector<std::function<void()>> on_stopped;
    clock::time_point started;
    bool timed_out = false;  // failed its ready_timeout
    std::string last_exit;
    value health;
    proc_stats stats;
  };

  program_search search() const { return {opts_.program_dir, opts_.config_dir}; }

  plexus::error no_such(std::string_view name) const {
    std::string known;
    for (const auto& p : spec_.processes)
      known += (known.empty() ? "" : ", ") + p.name;
    return plexus::error(errc::not_found,
                         "no process named " + std::string(name) + " (known: " + known + ")",
                         {{"process", std::string(name)}});
  }

  // ---- starting ----------------------------------------------------------------------

  // Launches what the policy's start queue says, until it waits for an event.
  void pump() {
    if (phase_ != phase::running || pumping_) return;
    pumping_ = true;
    for (auto batch = policy_.next_launches(); !batch.empty(); batch = policy_.next_launches())
      for (auto i : batch)
        launch_child(i);  // starting, or exited when it could not be started
    pumping_ = false;
  }

  // pump() once the current handler is done: after a child left `starting` (its start
  // slot is free) where the caller is in the middle of something.
  void pump_soon() {
    asio::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->pump();
    });
  }

  void launch_child(std::size_t i) {
    auto& c = *children_[i];
    const auto& spec = policy_.spec_of(i);
    c.timed_out = false;
    c.health = nullptr;
    c.kill_when_started = false;
    c.pending = true;
    const auto launch_no = ++c.launches;
    policy_.started(i);
    // The job gets copies of all it reads; null_fd_ and the spawner live as long as the
    // tree's impl, and the spawner is destroyed first (it is declared last).
    spawner_.submit([&io = io_, weak = weak_from_this(), i, launch_no, spec, where = search(),
                     opts = launch_options{.replica = policy_.replica(i),
                                           .router_address = opts_.router_address,
                                           .stdin_fd = null_fd_.get()}]() mutable {
      auto program = find_program(spec, where);
      result<started_child> r = program ? (opts.program = *program, start_launch(spec, opts))
                                        : result<started_child>(std::move(program).error());
      asio::post(io, [weak, i, launch_no, r = std::move(r)]() mutable {
        if (auto self = weak.lock()) self->launched(i, launch_no, std::move(r));
        // else: the tree has gone; `r` kills and reaps its child
      });
    });
  }

  // The spawner's answer for launch `launch_no` of child `i`.
  void launched(std::size_t i, std::uint64_t launch_no, result<started_child> r) {
    auto& c = *children_[i];
    if (!c.pending || launch_no != c.launches) return;  // `r` kills its child, if any
    c.pending = false;
    const auto& spec = policy_.spec_of(i);
    const bool stop_asked = policy_.state(i) == child_state::stopping;
    if (!r) {
      if (stop_asked) {  // stopped while it was being started: it never ran
        c.last_exit = r.error().message;
        policy_.stopped(i);
        emit(i, "info", "stopped (cannot start: " + r.error().message + ")", "exit");
        run_on_stopped(c);
        pump_soon();
        return;
      }
      failed_to_start(i, r.error().message);
      return;
    }
    auto launched =
        adopt_launch(io_, std::move(*r), [this, weak = weak_from_this(), i](exit_status st) {
          if (!weak.expired()) on_exit(i, st);
        });
    c.proc = std::move(launched.proc);
    c.started = clock::now();
    c.stats.reset();
    const auto pid = c.proc->pid();
    read_lines(i, launched.out.release(), "stdout", "info");
    read_lines(i, launched.err.release(), "stderr", "warn");
    c.notify = std::make_unique<line_reader>(
        io_, launched.notify.release(), line_reader_options{.max_line = 4096},
        [this, i](std::string_view line, bool partial) {
          if (!partial) on_report(i, line);
        },
        [] {});
    c.notify->start();
    emit(i, "debug", "started (pid " + std::to_string(pid) + ")", "start");
    if (stop_asked) {  // a stop (or kill) came while it was being started
      if (c.kill_when_started)
        (void)c.proc->signal(SIGKILL);
      else
        c.proc->stop(spec.stop_timeout);
      return;
    }
    if (spec.ready == readiness::spawn) {
      asio::post(io_, [this, weak = weak_from_this(), i, pid] {
        if (weak.expired()) return;
        const auto& c = *children_[i];
        if (c.proc && c.proc->pid() == pid) mark_ready(i);
      });
      return;
    }
    c.ready_timer.expires_after(spec.ready_timeout);
    c.ready_timer.async_wait(
        [this, weak = weak_from_this(), i](const boost::system::error_code& ec) {
          if (ec || weak.expired() || policy_.state(i) != child_state::starting) return;
          auto& c = *children_[i];
          const auto& spec = policy_.spec_of(i);
          c.timed_out = true;
          emit(i, "error", "not ready within " + in_seconds(spec.ready_timeout), "ready_timeout");
          c.proc->stop(spec.stop_timeout);
        });
  }

  // The waiters of exited(i), once child `i` has stopped.
  static void run_on_stopped(child& c) {
    auto waiting = std::move(c.on_stopped);
    c.on_stopped.clear();
    for (auto& w : waiting)
      w();
  }

  // stdout/stderr: one log record per line (log::make_line_record). The reader lives
  // until the end of its input, which may come after the child's exit (a grandchild
  // can hold the pipe).
  void read_lines(std::size_t i, int fd, const char* stream, const char* level) {
    readers_.emplace_back();
    auto it = std::prev(readers_.end());
    const std::string name = policy_.spec_of(i).name;
    const auto replica = policy_.replica(i);
    const auto pid = children_[i]->proc->pid();
    *it = std::make_unique<line_reader>(
        io_, fd, line_reader_options{},
        [this, name, replica, pid, stream, level](std::string_view line, bool partial) {
          if (!opts_.on_log) return;
          value fields{{"stream", stream}};
          if (partial) fields["partial"] = true;
          // Valid text for everyone; the bytes as written ride along for the log file.
          opts_.on_log(log::topic(name),
                       log::make_line_record(level, line, std::move(fields), name,
                                             static_cast<std::int64_t>(replica), pid));
        },
        [this, weak = weak_from_this(), it] {
          // Destroyed later: this runs inside the reader.
          asio::post(io_, [this, weak, it] {
            if (!weak.expired()) readers_.erase(it);
          });
        });
    (*it)->start();
  }

  void on_report(std::size_t i, std::string_view line) {
    if (line == "READY=1") {
      mark_ready(i);
    } else if (line.starts_with("HEALTH=")) {
      auto v = value::parse(line.substr(7), nullptr, false);
      if (!v.is_discarded()) children_[i]->health = std::move(v);
    }
  }

  void mark_ready(std::size_t i) {
    if (policy_.state(i) != child_state::starting) return;
    auto& c = *children_[i];
    const auto now = clock::now();
    policy_.ready(i, now);
    c.ready_timer.cancel();
    emit(i, "info",
         "ready (pid " + std::to_string(c.proc->pid()) + ", " +
             std::to_string(
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - c.started).count()) +
             " ms)",
         "ready");
    pump();
  }

  // ---- exits and plans -------------------------------------------------------------------

  void failed_to_start(std::size_t i, const std::string& why) {
    policy_.exited(i);
    children_[i]->last_exit = why;
    emit(i, "error", "cannot start: " + why, "exit");
    asio::post(io_, [this, weak = weak_from_this(), i] {
      if (weak.expired() || phase_ != phase::running) return;
      const child_exit how{.code = 127, .description = children_[i]->last_exit};
      carry_out(i, policy_.child_failed(i, how, clock::now()));
    });
  }

  void on_exit(std::size_t i, exit_status st) {
    auto& c = *children_[i];
    c.ready_timer.cancel();
    c.notify.reset();
    const std::string why = c.timed_out ? "not ready within " +
                                              in_seconds(policy_.spec_of(i).ready_timeout) + " (" +
                                              st.describe() + ")"
                                        : st.describe();
    c.last_exit = why;
    c.proc.reset();
    if (policy_.state(i) == child_state::stopping) {
      policy_.stopped(i);
      emit(i, "info", "stopped (" + why + ")", "exit");
      run_on_stopped(c);
      pump_soon();  // it may have held a start slot
      return;
    }
    const child_exit how{
        .signaled = st.signaled, .code = st.code, .timed_out = c.timed_out, .description = why};
    if (phase_ != phase::running) {
      policy_.exited(i);
      emit(i, how.abnormal() ? "error" : "info", why, "exit");
      return;
    }
    auto plan = policy_.child_exited(i, how, clock::now());
    emit(i, how.abnormal() ? "error" : "info", why, "exit");
    carry_out(i, std::move(plan));
  }

  // Carries out what the policy decided after child `i` failed.
  void carry_out(std::size_t i, plan p) {
    switch (p.what) {
      case plan::nothing:
        pump();
        return;
      case plan::give_up:
        shut_down(p.why, std::move(p.message), p.why == outcome::emergency);
        return;
      case plan::restart:
        if (!p.group_message.empty()) emit(i, "error", p.group_message, "group_restart");
        emit(i, "warn", p.message, "restart");
        spawn(restart_set(weak_from_this(), std::move(p)));
        pump_soon();  // the failed child's start slot, if it held one, is free
        return;
    }
  }

  // ---- the sequences (coroutines on the loop) ---------------------------------------------

  // Starts a sequence; it ends by itself (see the top of this file for the tree's death).
  void spawn(asio::awaitable<void> sequence) {
    asio::co_spawn(io_, std::move(sequence), asio::detached);
  }

  // Sends a running child SIGTERM (SIGKILL after its stop_timeout); a child backing off
  // is simply not started again. Its exit arrives in on_exit.
  void begin_stop(std::size_t i) {
    switch (policy_.state(i)) {
      case child_state::starting:
      case child_state::ready: {
        auto& c = *children_[i];
        policy_.stopping(i);
        c.ready_timer.cancel();
        if (c.proc) c.proc->stop(policy_.spec_of(i).stop_timeout);  // else: launched() does
        return;
      }
      case child_state::backoff:
        policy_.stopped(i);
        return;
      case child_state::stopping:
      case child_state::stopped:
      case child_state::exited:
        return;
    }
  }

  // Completes once child `i` is not stopping any more (at once if it is not). Never
  // completes if the tree dies first: the handler is destroyed with the child.
  asio::awaitable<void> exited(std::size_t i) {
    if (policy_.state(i) != child_state::stopping) co_return;
    co_await asio::async_initiate<const asio::use_awaitable_t<>, void()>(
        [this, i](auto handler) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          children_[i]->on_stopped.push_back([h] { std::move (*h)(); });
        },
        asio::use_awaitable);
  }

  // A restart set (OTP): its running members stopped one after another in the plan's
  // order (reverse declared), then `delay`, then all started again in declared order.
  // A member taken over by a newer set (another token) is left to that set.
  asio::awaitable<void> restart_set(std::weak_ptr<impl> weak, plan p) {
    for (auto i : p.stop) {
      if (phase_ != phase::running) co_return;
      if (policy_.token(i) != p.token) continue;
      const auto s = policy_.state(i);
      if (s != child_state::starting && s != child_state::ready && s != child_state::stopping)
        continue;
      begin_stop(i);
      co_await exited(i);
      if (weak.expired()) co_return;
    }
    if (phase_ != phase::running) co_return;
    policy_.backing_off(p.token);
    auto timer = backoffs_.emplace(backoffs_.end(), io_, p.delay);
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    if (weak.expired()) co_return;  // the tree died: `timer` went with it
    backoffs_.erase(timer);
    if (phase_ != phase::running) co_return;
    policy_.enqueue(policy_.due(p.token));
    pump();
  }

  // `plexus restart NAME`: once every member (already told to stop) has exited, the
  // members still owned by this request start again.
  asio::awaitable<void> restart_by_name(std::weak_ptr<impl> weak, std::vector<std::size_t> members,
                                        std::uint64_t token) {
    for (auto i : members) {
      co_await exited(i);
      if (weak.expired()) co_return;
    }
    if (phase_ != phase::running) co_return;
    policy_.enqueue(policy_.restarted_by_name(token));
    pump();
  }

  // The end of the tree: entries stopped in reverse declared order, each entry's
  // replicas together, the next entry once they have all exited.
  asio::awaitable<void> stop_all(std::weak_ptr<impl> weak) {
    for (auto entry = spec_.processes.size(); entry-- > 0;) {
      for (std::size_t i = 0; i < policy_.size(); ++i)
        if (policy_.entry(i) == entry) begin_stop(i);
      for (std::size_t i = 0; i < policy_.size(); ++i)
        if (policy_.entry(i) == entry) {
          co_await exited(i);
          if (weak.expired()) co_return;
        }
    }
    finish();
  }

  // The emergency end: every running child SIGKILLed at once, then the wait for all.
  asio::awaitable<void> kill_all(std::weak_ptr<impl> weak) {
    for (std::size_t i = 0; i < policy_.size(); ++i) {
      auto& c = *children_[i];
      const auto s = policy_.state(i);
      if (s == child_state::starting || s == child_state::ready || s == child_state::stopping) {
        policy_.stopping(i);
        c.ready_timer.cancel();
        if (c.proc)
          (void)c.proc->signal(SIGKILL);
        else
          c.kill_when_started = true;  // pending: launched() kills it
      } else if (s == child_state::backoff) {
        policy_.stopped(i);
      }
    }
    for (std::size_t i = 0; i < policy_.size(); ++i) {
      co_await exited(i);
      if (weak.expired()) co_return;
    }
    finish();
  }

  // ---- the end ----------------------------------------------------------------------

  // Stops everything in reverse declared order; `kill` SIGKILLs all at once instead.
  void shut_down(outcome why, std::string message, bool kill) {
    if (phase_ != phase::running && phase_ != phase::idle) return;
    const bool was_idle = phase_ == phase::idle;
    phase_ = phase::stopping;
    outcome_ = why;
    message_ = std::move(message);
    policy_.clear_queue();
    sampler_.cancel();
    for (auto& t : backoffs_)
      t.cancel();  // their sets end: the tree is stopping
    if (why != outcome::stopped)
      emit_tree(why == outcome::emergency ? "critical" : "error", message_);
    if (was_idle) {
      finish();
      return;
    }
    spawn(kill ? kill_all(weak_from_this()) : stop_all(weak_from_this()));
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
    opts_.on_log(log::topic(name), log::make_record(level, message, std::move(fields), name,
                                                    static_cast<std::int64_t>(replica), pid));
  }

  // A supervisor event about a child: tagged with the child's name, so
  // `plexus logs --process NAME` shows its restarts next to its output.
  void emit(std::size_t i, std::string_view level, const std::string& message,
            std::string_view event) {
    const auto& c = *children_[i];
    publish_record(policy_.spec_of(i).name, policy_.replica(i), c.proc ? c.proc->pid() : 0, level,
                   message, {{"stream", "supervisor"}, {"event", event}});
  }

  void emit_tree(std::string_view level, const std::string& message) {
    if (!opts_.on_log) return;
    opts_.on_log(log::topic("plexus"),
                 log::make_record(level, message, {{"stream", "supervisor"}}, "plexus"));
  }

  void sample() {
    const auto now = clock::now();
    for (auto& c : children_)
      if (c->proc && c->proc->running()) c->stats.sample(c->proc->pid(), now, c->started);
    sampler_.expires_after(opts_.sample_interval);
    sampler_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && self->phase_ == phase::running) self->sample();
    });
  }

  asio::io_context& io_;
  tree_spec spec_;
  tree_options opts_;
  policy policy_;  // the rules and the children's states; refers to spec_
  std::vector<std::unique_ptr<child>> children_;  // indexed like policy_
  std::list<std::unique_ptr<line_reader>> readers_;
  std::list<asio::steady_timer> backoffs_;  // one per restart set backing off
  asio::steady_timer sampler_;
  os::unique_fd null_fd_;  // every child's stdin
  phase phase_ = phase::idle;
  bool pumping_ = false;
  outcome outcome_ = outcome::stopped;
  std::string message_;
  done_handler on_done_;
  // Last: destroyed first, joined before what its jobs read (null_fd_) goes.
  spawner spawner_;
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
