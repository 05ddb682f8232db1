// The restart rules of the supervision tree (Erlang/OTP semantics), without processes:
// a policy holds the tree's restart state — each child's state, restart counts and
// tokens, every intensity window, the start queue — and turns an event (a child
// exited, became ready, was stopped or restarted by name) and the time into a plan.
// The tree (tree.cpp) feeds it the events and carries the plans out; the policy starts,
// stops and waits for nothing, and takes the time as a parameter.
//
//   supervisor::policy p(spec);
//   p.enqueue_all();  for (auto i : p.next_launches()) p.started(i);
//   auto plan = p.child_exited(i, {.code = 1, .description = "exited with 1"}, now);
//   // plan.what == plan::restart: stop plan.stop in order, wait plan.delay, start plan.start
//
// Children are numbered in declared order, replicas expanded ("calc[0]", "calc[1]", …).
// Threading: none of its own; one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "plexus/supervisor/spec.hpp"

namespace plexus::supervisor {

// Where a child is in its life (what `plexus ps` shows).
enum class child_state {
  stopped,   // not running and not scheduled (before start, after plexus stop NAME)
  starting,  // running, not ready yet
  ready,     // running and ready
  stopping,  // SIGTERM sent, waiting for the exit
  backoff,   // exited; will be started again after a delay
  exited,    // exited and will not be restarted (its policy said so)
};
std::string_view to_string(child_state s) noexcept;

// How a tree ended.
enum class outcome {
  stopped,             // stop() was called
  intensity_exceeded,  // too many restarts within the period
  emergency,           // a child exited with the emergency exit code
};

// How a child ended, as the rules see it.
struct child_exit {
  bool signaled = false;    // killed by a signal (code is the signal number)
  int code = 0;             // exit code, or the signal number
  bool timed_out = false;   // it had failed its ready_timeout (the tree stopped it)
  std::string description;  // "exited with 3", "not ready within 5 s (killed by SIGTERM)"
  bool abnormal() const noexcept { return signaled || code != 0 || timed_out; }
};

// What the tree does after an event.
struct plan {
  enum kind {
    nothing,  // the child stays down (its policy, or it is held), or nothing to do
    restart,  // stop `stop` one by one in this order, wait `delay`, start `start`
    give_up,  // stop the tree: `why` and `message` say why
  } what = nothing;
  std::vector<std::size_t> stop;   // reverse declared order
  std::vector<std::size_t> start;  // declared order (the same members)
  std::chrono::milliseconds delay{0};
  std::uint64_t token = 0;  // the restart set's token (see policy::token)
  outcome why = outcome::stopped;
  // restart: "restarting with b[0] in 0.1 s (one_for_all)"; give_up: the tree's message.
  std::string message;
  // A group beyond its intensity, restarted whole by the tree:
  // "group g: c[0] failed (exited with 1): more than 1 restarts within …; restarting the group".
  std::string group_message;
};

class policy {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Keeps a reference to `spec`, which must outlive the policy. The groups must be well
  // declared (find_group_problem(spec) is nullopt).
  explicit policy(const tree_spec& spec);

  std::size_t size() const noexcept { return children_.size(); }
  // The most children starting at once (tree_spec::start_concurrency, 0 resolved).
  std::size_t start_concurrency() const noexcept { return start_concurrency_; }
  child_state state(std::size_t i) const { return children_[i].state; }
  const child_spec& spec_of(std::size_t i) const { return *children_[i].spec; }
  std::size_t replica(std::size_t i) const { return children_[i].replica; }
  std::size_t entry(std::size_t i) const { return children_[i].entry; }
  const std::string& label(std::size_t i) const { return children_[i].label; }  // "calc[0]"
  // Restarts so far (by the rules; not those asked by name).
  std::size_t restarts(std::size_t i) const { return children_[i].restarts; }
  // The restart set that owns the child: a set whose token is no longer the child's
  // was overtaken by a newer one (or by stop/restart by name) and leaves it alone.
  std::uint64_t token(std::size_t i) const { return children_[i].token; }
  bool held(std::size_t i) const { return children_[i].held; }
  // Every replica of the [[process]] `name`, declared order (empty: no such process).
  std::vector<std::size_t> find(std::string_view name) const;

  // ---- the start queue: entry k+1 starts once every replica of entry k is ready ---------

  // Queues every child (the tree starts).
  void enqueue_all();
  // Queues `members` (kept in declared order, each once).
  void enqueue(const std::vector<std::size_t>& members);
  void dequeue(std::size_t i);
  void clear_queue() { queue_.clear(); }
  // The children to launch now: the stopped/backing-off members of the first entry in
  // the queue, after dropping the entries whose members are all ready or exited, as
  // many as there are free start slots (start_concurrency() less the children
  // starting). Empty: nothing to launch until an event (ready, exit) settles the first
  // entry or frees a slot.
  std::vector<std::size_t> next_launches();

  // ---- events ----------------------------------------------------------------------

  void started(std::size_t i);                // launched: starting
  void ready(std::size_t i, time_point now);  // starting → ready (ignored otherwise)
  void stopping(std::size_t i);               // SIGTERM/SIGKILL sent by the tree
  void stopped(std::size_t i);  // exited after the tree stopped it, or a backoff dropped
  // An exit the tree did not ask for, or a failed launch: exited. While the tree stops,
  // that is all; while it runs, child_exited (or child_failed) decides what follows.
  void exited(std::size_t i);
  // An exit the tree did not ask for: exited(i), then the plan says what follows
  // (emergency, restart, give up, or nothing). Call only while the tree runs.
  plan child_exited(std::size_t i, const child_exit& how, time_point now);
  // The restart decision alone (what child_exited does after the emergency check; a
  // failed launch goes here directly).
  plan child_failed(std::size_t i, const child_exit& how, time_point now);

  // The stops of set `token` are done: its members still owned by it back off.
  void backing_off(std::uint64_t token);
  // The backoff of set `token` is over: its members still owned by it and backing off,
  // declared order (to enqueue).
  std::vector<std::size_t> due(std::uint64_t token) const;

  // `plexus stop NAME`: the members are held (never restarted) and taken from any set.
  void hold(const std::vector<std::size_t>& members);
  // `plexus restart NAME`: the members are released and taken over by a new set, whose
  // token is returned; once they are stopped, restarted_by_name(token) gives the members
  // to enqueue (stopped, backoff reset). Not counted against any intensity.
  std::uint64_t restart_by_name(const std::vector<std::size_t>& members);
  std::vector<std::size_t> restarted_by_name(std::uint64_t token);

  // The delay before the n-th consecutive restart: initial·2^(n-1), at most max (n ≥ 1).
  static std::chrono::milliseconds backoff(std::size_t n, std::chrono::milliseconds initial,
                                           std::chrono::milliseconds max);

 private:
  struct group {
    std::string name;  // "" for the tree's own
    restart_strategy strategy = restart_strategy::one_for_one;
    std::size_t intensity = 5;
    std::chrono::milliseconds period{10000};
    std::size_t first = 0;            // its first child
    std::deque<time_point> restarts;  // within the last period
  };
  struct child {
    const child_spec* spec = nullptr;
    std::size_t entry = 0;
    std::size_t replica = 0;
    std::size_t group = 0;  // in groups_ (0: the tree's own)
    std::string label;
    child_state state = child_state::stopped;
    time_point ready_at{};  // last time it became ready (never reset)
    std::size_t restarts = 0;
    std::size_t consecutive = 0;  // failures since it last stayed ready a whole period
    std::uint64_t token = 0;
    bool held = false;
  };

  bool count_restart(group& g, time_point now);
  std::vector<std::size_t> restart_set_of(const group& g, std::size_t index,
                                          std::size_t failed) const;
  static std::string too_many(const group& g);

  const tree_spec& spec_;
  std::size_t start_concurrency_;
  std::vector<child> children_;    // declared order
  std::vector<group> groups_;      // [0]: the tree's own ([supervisor]); then [group.NAME]
  std::deque<std::size_t> queue_;  // to start, declared order
  std::uint64_t tokens_ = 0;
};

}  // namespace plexus::supervisor
