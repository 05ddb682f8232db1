// Uses the installed library through find_package(plexus): the codec (wire), a client
// that finds nothing listening and fails fast (transport, rpc) and an app.toml parse (config, which
// brings broker and supervisor), so every library layer must link.
#include <plexus/config/app_config.hpp>
#include <plexus/rpc/client.hpp>
#include <plexus/wire/message.hpp>

#include <boost/asio/io_context.hpp>
#include <cstdio>

int main() {
  std::vector<std::uint8_t> buf;
  plexus::wire::encode(buf, plexus::wire::request{7, "add", {1, 2}});
  auto m = plexus::wire::decode(buf);
  if (!m || std::get<plexus::wire::request>(*m).method != "add") return 1;

  boost::asio::io_context io;
  plexus::rpc::client c(io, {.router = "ipc:///nonexistent/plexus-consumer.sock",
                             .reconnect = {.enabled = false}});
  auto ok = c.connect();
  if (ok || ok.error().code != plexus::errc::unavailable) return 2;

  auto cfg = plexus::config::parse("[[process]]\nname = \"a\"\ncommand = \"true\"\n", "inline");
  if (!cfg || cfg->supervisor.processes.size() != 1) return 3;
  std::puts("consumer ok");
  return 0;
}
