#include "plexus/supervisor/spec.hpp"

#include <algorithm>
#include <vector>

namespace plexus::supervisor {

std::string_view to_string(restart_policy p) noexcept {
  switch (p) {
    case restart_policy::permanent:
      return "permanent";
    case restart_policy::transient:
      return "transient";
    case restart_policy::temporary:
      return "temporary";
  }
  return "unknown";
}

std::string_view to_string(restart_strategy s) noexcept {
  switch (s) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
  }
  return "unknown";
}

std::string_view to_string(readiness r) noexcept {
  switch (r) {
    case readiness::notify:
      return "notify";
    case readiness::spawn:
      return "spawn";
  }
  return "unknown";
}

std::string seconds_text(std::chrono::milliseconds d) {
  std::string s = std::to_string(d.count() / 1000);
  if (auto frac = d.count() % 1000) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (f.back() == '0')
      f.pop_back();
    s += "." + f;
  }
  return s;
}

std::optional<group_problem> find_group_problem(const tree_spec& spec) {
  std::string previous;
  std::vector<std::string> closed;  // groups whose run of processes has ended
  for (std::size_t i = 0; i < spec.processes.size(); ++i) {
    const auto& group = spec.processes[i].group;
    if (!group.empty() && std::none_of(spec.groups.begin(), spec.groups.end(),
                                       [&](const group_spec& g) { return g.name == group; }))
      return group_problem{group_problem::unknown, i};
    if (group == previous) continue;
    if (!previous.empty()) closed.push_back(previous);
    if (std::find(closed.begin(), closed.end(), group) != closed.end())
      return group_problem{group_problem::scattered, i};
    previous = group;
  }
  return std::nullopt;
}

}  // namespace plexus::supervisor
