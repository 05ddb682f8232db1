// libFuzzer target: the app.toml parser (config/app_config.hpp) on arbitrary text.
// parse() must return a value or an error for any input, never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "plexus/config/app_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)plexus::config::parse(text, "fuzz.toml");
  return 0;
}
