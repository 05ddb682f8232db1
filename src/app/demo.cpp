#include "app/demo.hpp"

namespace plexus::app {

std::string_view demo_config() {
  return R"(# The built-in demo of `plexus run` (print it with `plexus run --print-demo`).
[supervisor]
strategy = "one_for_one"
intensity = 10          # more than 10 restarts within 30 s stop the tree
period = 30
backoff_initial = 0.5
backoff_max = 5

[[process]]
name = "calc"           # add, div, echo, pid, sleep, nap
command = "calc"
replicas = 2            # calls are spread over both

[[process]]
name = "ticker"         # publishes tick <count> every second
command = "ticker"

[[process]]
name = "flaky"          # answers ping, and crashes now and then
command = "flaky"
args = ["--crash-after", "4", "--crash-jitter", "6"]

[[process]]
name = "web"            # HTTP routes, served by the gateway: /api/counter/{id}, /api/hello
command = "web"

[gateway]
listen = "127.0.0.1:8080"
)";
}

}  // namespace plexus::app
