#include "transport/cloexec.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "plexus/transport/endpoint.hpp"
#include "plexus/transport/udp.hpp"
#include "support/temp_dir.hpp"
#include "support/wait.hpp"

// No descriptor a transport opens may reach a program this process starts: each is
// close-on-exec from the start (Asio's sockets, libzmq's, accepted ones included).

namespace plexus::transport {
namespace {

using test::run_until;

// This process's descriptors that an exec would pass on, with what each one is.
std::set<std::string> inheritable_descriptors() {
  std::set<std::string> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return out;
  const int own = ::dirfd(d);
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::stoi(e->d_name);
    const int flags = ::fcntl(fd, F_GETFD);
    if (fd == own || flags < 0 || (flags & FD_CLOEXEC)) continue;
    char target[256] = {};
    const auto n =
        ::readlink(("/proc/self/fd/" + std::string(e->d_name)).c_str(), target, sizeof target - 1);
    out.insert(std::string(e->d_name) + " -> " + (n > 0 ? target : "?"));
  }
  ::closedir(d);
  return out;
}

TEST(CloseOnExec, EveryDescriptorTheTransportsOpenIsCloseOnExec) {
  const auto before = inheritable_descriptors();
  {
    test::temp_dir dir;
    boost::asio::io_context io(1);
    std::vector<endpoint> bound;
    for (const auto& a :
         {"ipc://" + dir.path() + "/native.sock", std::string("tcp://127.0.0.1:0"),
          std::string("udp://127.0.0.1:0"), "zmq-frontend+ipc://" + dir.path() + "/front.sock",
          std::string("zmq-backend+tcp://127.0.0.1:*"),
          "zmq-pub+ipc://" + dir.path() + "/pubs.sock",
          "zmq-sub+ipc://" + dir.path() + "/subs.sock"}) {
      auto e = bind_endpoint(io, a);
      ASSERT_TRUE(e) << e.error().message;
      bound.push_back(std::move(*e));
    }
    std::vector<connection> accepted;
    int listeners = 0;
    for (auto& e : bound)
      if (auto* l = std::get_if<listener>(&e)) {
        ++listeners;
        l->start([&](connection c) { accepted.push_back(std::move(c)); });
      }
    ASSERT_EQ(listeners, 4);  // ipc, tcp, zmq-frontend, zmq-backend

    // Both sides of a native connection on each stream transport, a seed-style DEALER
    // accepted by libzmq, a udp sender.
    std::vector<connection> clients;
    for (int i = 0; i < 2; ++i) {
      auto c = connect(io, std::get<listener>(bound[static_cast<std::size_t>(i)]).address());
      ASSERT_TRUE(c) << c.error().message;
      clients.push_back(std::move(*c));
    }
    zmq::context_t ctx(1);
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::probe_router, 1);
    dealer.connect("ipc://" + dir.path() + "/front.sock");
    auto tx = udp_sender::open(io, std::get<std::unique_ptr<inlet>>(bound[2])->address());
    ASSERT_TRUE(tx) << tx.error().message;
    ASSERT_TRUE(run_until(io, [&] { return accepted.size() == 3; }));

    const auto during = inheritable_descriptors();
    std::vector<std::string> leaked;
    for (const auto& d : during)
      if (!before.count(d)) leaked.push_back(d);
    EXPECT_TRUE(leaked.empty()) << "inheritable: " << testing::PrintToString(leaked);
  }
}

}  // namespace
}  // namespace plexus::transport
