#include "plexus/supervisor/spec.hpp"

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

}  // namespace plexus::supervisor
