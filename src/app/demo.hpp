// The built-in demo of `plexus run` (what runs with no app.toml).
//
//   auto cfg = plexus::config::parse(plexus::app::demo_config(), "(built-in demo)");
#pragma once

#include <string_view>

namespace plexus::app {

// The demo app as app.toml text: calc ×2, ticker, flaky.
std::string_view demo_config();

}  // namespace plexus::app
