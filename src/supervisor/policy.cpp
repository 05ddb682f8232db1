#include "plexus/supervisor/policy.hpp"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace plexus::supervisor {

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

// The default number of start slots: the CPUs this process may run on (its affinity
// mask) but one, which stays for the loop and the callers; at least 1.
std::size_t default_start_concurrency() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = ::sched_getaffinity(0, sizeof set, &set) == 0
                       ? CPU_COUNT(&set)
                       : static_cast<int>(std::thread::hardware_concurrency());
  return static_cast<std::size_t>(std::max(1, cpus - 1));
}

// "0.1 s": for messages.
std::string in_seconds(std::chrono::milliseconds d) {
  return seconds_text(d) + " s";
}

}  // namespace

policy::policy(const tree_spec& spec)
    : spec_(spec),
      start_concurrency_(spec.start_concurrency != 0 ? spec.start_concurrency
                                                     : default_start_concurrency()) {
  groups_.push_back({"", spec_.strategy, spec_.intensity, spec_.period, 0, {}});
  for (const auto& g : spec_.groups)
    groups_.push_back({g.name, g.strategy, g.intensity, g.period, 0, {}});
  std::vector<bool> seen(groups_.size());
  for (std::size_t e = 0; e < spec_.processes.size(); ++e)
    for (std::size_t r = 0; r < spec_.processes[e].replicas; ++r) {
      child c;
      c.spec = &spec_.processes[e];
      for (std::size_t g = 1; g < groups_.size(); ++g)
        if (groups_[g].name == c.spec->group) c.group = g;
      if (!seen[c.group]) groups_[c.group].first = children_.size();
      seen[c.group] = true;
      c.entry = e;
      c.replica = r;
      c.label = c.spec->name + "[" + std::to_string(r) + "]";
      children_.push_back(std::move(c));
    }
}

std::vector<std::size_t> policy::find(std::string_view name) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (children_[i].spec->name == name) out.push_back(i);
  return out;
}

// ---- the start queue -------------------------------------------------------------------

void policy::enqueue_all() {
  queue_.clear();
  for (std::size_t i = 0; i < children_.size(); ++i)
    queue_.push_back(i);
}

void policy::enqueue(const std::vector<std::size_t>& members) {
  queue_.insert(queue_.end(), members.begin(), members.end());
  std::sort(queue_.begin(), queue_.end());
  queue_.erase(std::unique(queue_.begin(), queue_.end()), queue_.end());
}

void policy::dequeue(std::size_t i) {
  std::erase(queue_, i);
}

std::vector<std::size_t> policy::next_launches() {
  // Every child starting holds a slot until it is ready or gone, wherever it is in the
  // tree (restarts included): starting is what takes the CPUs, and a loop thread or a
  // client that waits for a CPU behind a hundred starting programs waits long.
  const auto starting = static_cast<std::size_t>(
      std::count_if(children_.begin(), children_.end(),
                    [](const child& c) { return c.state == child_state::starting; }));
  if (starting >= start_concurrency_) return {};
  const std::size_t slots = start_concurrency_ - starting;
  while (!queue_.empty()) {
    const auto entry = children_[queue_.front()].entry;
    std::vector<std::size_t> launch;
    bool settled = true;
    for (auto i : queue_) {
      if (children_[i].entry != entry) break;
      const auto s = children_[i].state;
      if ((s == child_state::stopped || s == child_state::backoff) && launch.size() < slots)
        launch.push_back(i);
      if (s != child_state::ready && s != child_state::exited) settled = false;
    }
    if (!launch.empty()) return launch;
    if (!settled) return {};
    while (!queue_.empty() && children_[queue_.front()].entry == entry)
      queue_.pop_front();
  }
  return {};
}

// ---- events ----------------------------------------------------------------------------

void policy::started(std::size_t i) {
  children_[i].state = child_state::starting;
}

void policy::ready(std::size_t i, time_point now) {
  auto& c = children_[i];
  if (c.state != child_state::starting) return;
  c.state = child_state::ready;
  c.ready_at = now;
}

void policy::stopping(std::size_t i) {
  children_[i].state = child_state::stopping;
}

void policy::stopped(std::size_t i) {
  children_[i].state = child_state::stopped;
}

void policy::exited(std::size_t i) {
  children_[i].state = child_state::exited;
}

plan policy::child_exited(std::size_t i, const child_exit& how, time_point now) {
  exited(i);
  const auto& c = children_[i];
  if (spec_.emergency_exit_code != 0 && !how.signaled && how.code == spec_.emergency_exit_code) {
    plan p;
    p.what = plan::give_up;
    p.why = outcome::emergency;
    p.message = "emergency stop: " + c.label + " exited with the emergency exit code " +
                std::to_string(how.code);
    return p;
  }
  return child_failed(i, how, now);
}

plan policy::child_failed(std::size_t i, const child_exit& how, time_point now) {
  auto& c = children_[i];
  if (c.held) return {};
  const bool again = c.spec->restart == restart_policy::permanent ||
                     (c.spec->restart == restart_policy::transient && how.abnormal());
  if (!again) {
    dequeue(i);
    return {};
  }
  plan p;
  // Intensity: more than `intensity` restarts within `period` fail the group; the
  // tree's own group failing ends the tree, another group is restarted whole by the
  // tree (and counts as one restart of the tree).
  auto& g = groups_[c.group];
  std::vector<std::size_t> set;
  std::string strategy_name(to_string(g.strategy));
  if (count_restart(g, now)) {
    set = restart_set_of(g, i, i);
  } else if (c.group == 0) {
    p.what = plan::give_up;
    p.why = outcome::intensity_exceeded;
    p.message =
        c.label + " failed (" + how.description + "): " + too_many(g) + "; stopping the tree";
    return p;
  } else {
    g.restarts.clear();  // a restarted supervisor starts with a fresh window
    auto& root = groups_[0];
    const std::string why =
        "group " + g.name + ": " + c.label + " failed (" + how.description + "): " + too_many(g);
    if (!count_restart(root, now)) {
      p.what = plan::give_up;
      p.why = outcome::intensity_exceeded;
      p.message = why + "; the tree: " + too_many(root) + "; stopping the tree";
      return p;
    }
    p.group_message = why + "; restarting the group";
    // The group is one child of the tree: its first process stands for it.
    set = restart_set_of(root, g.first, i);
    for (std::size_t s = 0; s < children_.size(); ++s)
      if (children_[s].group == c.group && std::find(set.begin(), set.end(), s) == set.end())
        set.push_back(s);
    std::sort(set.begin(), set.end());
    strategy_name =
        "group " + g.name + " restarted by the tree's " + std::string(to_string(root.strategy));
  }
  // Backoff: doubles with each consecutive failure; a child that stayed ready for a
  // whole period starts over.
  if (c.ready_at != time_point{} && now - c.ready_at >= g.period) c.consecutive = 0;
  ++c.consecutive;
  p.what = plan::restart;
  p.delay = backoff(c.consecutive, spec_.backoff_initial, spec_.backoff_max);
  std::string others;
  for (auto s : set)
    if (s != i) others += (others.empty() ? "" : ", ") + children_[s].label;
  p.message = std::string("restarting") + (others.empty() ? "" : " with " + others) + " in " +
              in_seconds(p.delay) + " (" + strategy_name + ")";
  p.token = ++tokens_;
  for (auto s : set) {
    children_[s].token = p.token;
    ++children_[s].restarts;
    dequeue(s);
  }
  p.start = set;
  p.stop.assign(set.rbegin(), set.rend());
  return p;
}

void policy::backing_off(std::uint64_t token) {
  for (auto& c : children_)
    if (c.token == token) c.state = child_state::backoff;
}

std::vector<std::size_t> policy::due(std::uint64_t token) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (children_[i].token == token && children_[i].state == child_state::backoff) out.push_back(i);
  return out;
}

void policy::hold(const std::vector<std::size_t>& members) {
  for (auto i : members) {
    children_[i].held = true;
    children_[i].token = ++tokens_;  // cancels a pending restart
    dequeue(i);
  }
}

std::uint64_t policy::restart_by_name(const std::vector<std::size_t>& members) {
  const auto token = ++tokens_;
  for (auto i : members) {
    children_[i].held = false;
    children_[i].token = token;
    dequeue(i);
  }
  return token;
}

std::vector<std::size_t> policy::restarted_by_name(std::uint64_t token) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (children_[i].token == token) {
      children_[i].consecutive = 0;
      children_[i].state = child_state::stopped;
      out.push_back(i);
    }
  return out;
}

std::chrono::milliseconds policy::backoff(std::size_t n, std::chrono::milliseconds initial,
                                          std::chrono::milliseconds max) {
  auto delay = initial;
  for (std::size_t k = 1; k < n && delay < max; ++k)
    delay *= 2;
  return std::min(delay, max);
}

// ---- the rules ---------------------------------------------------------------------------

// Records a restart in `g`'s window; false when that makes more than its intensity.
bool policy::count_restart(group& g, time_point now) {
  g.restarts.push_back(now);
  while (!g.restarts.empty() && now - g.restarts.front() > g.period)
    g.restarts.pop_front();
  return g.restarts.size() <= g.intensity;
}

std::string policy::too_many(const group& g) {
  return "more than " + std::to_string(g.intensity) + " restarts within " + in_seconds(g.period) +
         " (intensity " + std::to_string(g.intensity) + ", period " + in_seconds(g.period) + ")";
}

// What `g`'s strategy restarts when its child at `index` fails: that child, every
// child of the group, or that child and those declared after it (for the tree's own
// group, "every child" includes the processes of the groups in it). Siblings stopped
// by hand or gone for good (their policy said so) stay out; `failed` is always in.
std::vector<std::size_t> policy::restart_set_of(const group& g, std::size_t index,
                                                std::size_t failed) const {
  std::vector<std::size_t> set;
  const bool root = &g == &groups_[0];
  for (std::size_t s = 0; s < children_.size(); ++s) {
    const auto& c = children_[s];
    const bool member = root || c.group == children_[failed].group;
    const bool in = s == failed || s == index ||
                    (member && g.strategy == restart_strategy::one_for_all) ||
                    (member && g.strategy == restart_strategy::rest_for_one && s >= index);
    if (in && (s == failed || (!c.held && c.state != child_state::exited))) set.push_back(s);
  }
  return set;
}

}  // namespace plexus::supervisor
