// Test tool: spawns the command given as arguments with supervisor::process, prints
// the child's pid on stdout, then keeps running until killed. Tests SIGKILL this tool
// and check that its child did not survive it.

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <iostream>

#include "plexus/supervisor/process.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: plexus-spawn-tool PROGRAM [ARGS...]\n";
    return 2;
  }
  boost::asio::io_context io;
  plexus::supervisor::spawn_spec spec{.program = argv[1]};
  for (int i = 2; i < argc; ++i)
    spec.args.emplace_back(argv[i]);
  auto p = plexus::supervisor::process::spawn(io, spec, [&](plexus::supervisor::exit_status s) {
    std::cerr << "plexus-spawn-tool: child " << s.describe() << "\n";
    io.stop();
  });
  if (!p) {
    std::cerr << "plexus-spawn-tool: " << p.error().message << "\n";
    return 1;
  }
  std::cout << (*p)->pid() << std::endl;
  auto guard = boost::asio::make_work_guard(io);
  io.run();
  return 0;
}
