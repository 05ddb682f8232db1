// Encodes a request with the installed library and checks that it decodes back.
#include <plexus/wire/message.hpp>

#include <cstdio>

int main() {
  std::vector<std::uint8_t> buf;
  plexus::wire::encode(buf, plexus::wire::request{7, "add", {1, 2}});
  auto m = plexus::wire::decode(buf);
  if (!m || std::get<plexus::wire::request>(*m).method != "add") return 1;
  std::puts("consumer ok");
  return 0;
}
