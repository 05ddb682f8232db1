#include "gateway.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common.hpp"
#include "plexus/rpc/service.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

constexpr const char* hello = "Hello, World!";
constexpr const char* all_systems[] = {"builtin", "plexus", "aiohttp", "nginx-aiohttp",
                                       "nginx-beast"};

// The seed-000 design, parent and child: the parent forwards every request to the child
// over a Unix socket with one pooled aiohttp ClientSession.
constexpr const char* aiohttp_script = R"PY(
import asyncio, sys
from aiohttp import web, ClientSession, UnixConnector

HELLO = "Hello, World!"

async def child(path):
    async def hello(request):
        return web.Response(text=HELLO)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    await asyncio.Event().wait()

async def parent(port, path):
    session = ClientSession(connector=UnixConnector(path=path, limit=256))
    async def forward(request):
        body = await request.read()
        async with session.request(request.method, "http://child" + request.path_qs,
                                   data=body or None) as r:
            data = await r.read()
            return web.Response(body=data, status=r.status, content_type=r.content_type)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()

if sys.argv[1] == "child":
    asyncio.run(child(sys.argv[2]))
else:
    asyncio.run(parent(int(sys.argv[2]), sys.argv[3]))
)PY";

struct wrk_result {
  double requests_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double errors = 0;  // socket errors and non-2xx/3xx responses
};

// A loopback port free now (bound, read, closed): the system started next binds it.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::system_error(errno, std::generic_category(), "bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// One GET; true on a 200.
bool http_ok(int port, const std::string& path) {
  bench::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  bench::set_io_timeout(fd.get(), std::chrono::milliseconds(2000));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  const std::string req =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return false;
  char buf[64] = {};
  const auto n = ::recv(fd.get(), buf, sizeof buf - 1, 0);
  return n > 12 && std::string_view(buf, static_cast<std::size_t>(n)).starts_with("HTTP/1.1 200");
}

// Waits until GET path answers 200, up to `timeout`; throws if it does not or a watched
// process exits first.
void wait_http_ok(int port, const std::string& path, const std::vector<pid_t>& watched,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto end = bench::mono_now() + timeout;
  while (!http_ok(port, path)) {
    for (auto pid : watched)
      if (bench::child_exited(pid))
        throw std::runtime_error("a process of the system under test exited before it answered " +
                                 path);
    if (bench::mono_now() >= end)
      throw std::runtime_error("nothing answered 200 on 127.0.0.1:" + std::to_string(port) + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

double to_us(double v, std::string_view unit) {
  if (unit == "us") return v;
  if (unit == "ms") return v * 1e3;
  if (unit == "s") return v * 1e6;
  if (unit == "m") return v * 60e6;
  return v;
}

// "1.23ms" -> 1230.
double parse_duration_us(const std::string& text) {
  std::size_t i = 0;
  const double v = std::stod(text, &i);
  return to_us(v, std::string_view(text).substr(i));
}

wrk_result run_wrk(int port, const std::string& path, const gateway_config& cfg) {
  const std::string cmd = "wrk -t1 -c" + std::to_string(cfg.connections) + " -d" +
                          std::to_string(static_cast<int>(cfg.seconds + 0.5)) +
                          "s --latency http://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  if (!p) throw std::system_error(errno, std::generic_category(), "popen wrk");
  std::string out;
  char buf[4096];
  while (auto n = std::fread(buf, 1, sizeof buf, p.get()))
    out.append(buf, n);
  const int status = ::pclose(p.release());
  if (status != 0)
    throw std::runtime_error("wrk failed (" + bench::describe_status(status) +
                             "; is the wrk package installed?):\n" + out);
  wrk_result r;
  std::istringstream lines(out);
  std::string line;
  bool in_distribution = false;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string first;
    words >> first;
    if (first == "Requests/sec:") {
      words >> r.requests_per_s;
    } else if (first == "Latency" && line.find("Distribution") != std::string::npos) {
      in_distribution = true;
    } else if (in_distribution && (first == "50%" || first == "99%")) {
      std::string d;
      words >> d;
      (first == "50%" ? r.p50_us : r.p99_us) = parse_duration_us(d);
    } else if (first == "Non-2xx") {  // "Non-2xx or 3xx responses: N"
      const auto colon = line.rfind(':');
      r.errors += std::stod(line.substr(colon + 1));
    } else if (first == "Socket") {  // "Socket errors: connect 0, read 0, write 0, timeout 0"
      for (const char* kind : {"connect ", "read ", "write ", "timeout "}) {
        const auto at = line.find(kind);
        if (at != std::string::npos) r.errors += std::stod(line.substr(at + std::strlen(kind)));
      }
    }
  }
  if (r.requests_per_s <= 0) throw std::runtime_error("could not read wrk's output:\n" + out);
  return r;
}

struct round_result {
  wrk_result wrk;
  long rss_kib = -1;  // the gateway's (plexus run's) resident set after the run; -1: n/a
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// plexus run with the bench module; wrk on `path` (the route, or a built-in).
round_result run_plexus(const gateway_config& cfg, const std::string& path) {
  const int port = free_port();
  const std::string dir = cfg.workdir + "/plexus-" + std::to_string(port);
  std::filesystem::create_directories(dir);
  const std::string config = dir + "/app.toml";
  write_file(config, "[router]\nlisten = \"ipc://" + dir +
                         "/router.sock\"\n\n[gateway]\nlisten = \"127.0.0.1:" +
                         std::to_string(port) + "\"\n\n[log]\ndir = \"" + dir +
                         "/logs\"\necho = false\n\n[[process]]\nname = \"bench\"\ncommand = \"" +
                         cfg.self_exe + "\"\nargs = [\"_role\", \"gateway_module\", \"bench\"]\n");
  bench::child_guard children;
  const pid_t run = children.adopt(bench::spawn_process(
      cfg.bin_dir + "/plexus", {.args = {"run", config}, .out = bench::child_stdout::to_null}));
  wait_http_ok(port, "/bench", {run});  // the module is ready: its route answers
  round_result r;
  r.wrk = run_wrk(port, path, cfg);
  r.rss_kib = bench::read_status_kib(run, "VmRSS");
  return r;
}

// The aiohttp child on a Unix socket and the aiohttp parent in front of it.
round_result run_aiohttp(const gateway_config& cfg) {
  const int port = free_port();
  const std::string dir = cfg.workdir + "/aiohttp-" + std::to_string(port);
  std::filesystem::create_directories(dir);
  const std::string script = dir + "/aiohttp_bench.py";
  write_file(script, aiohttp_script);
  const std::string sock = dir + "/child.sock";
  bench::child_guard children;
  const pid_t child =
      children.adopt(bench::spawn_process("/usr/bin/python3", {.args = {script, "child", sock}}));
  bench::wait_for_unix_socket(sock, std::chrono::seconds(20), child);
  children.adopt(bench::spawn_process("/usr/bin/python3",
                                      {.args = {script, "parent", std::to_string(port), sock}}));
  round_result r;
  wait_http_ok(port, "/bench", children.pids());
  r.wrk = run_wrk(port, "/bench", cfg);
  return r;
}

// nginx in front of the Unix socket `upstream`: the strongest proxy set-up we know,
// keep-alive to the upstream, no access log, one worker per CPU.
pid_t start_nginx(const std::string& dir, int port, const std::string& upstream) {
  const std::string conf = dir + "/nginx.conf";
  std::string text;
  if (::geteuid() == 0) text += "user root;\n";
  text += "worker_processes auto;\ndaemon off;\npid " + dir + "/nginx.pid;\nerror_log " + dir +
          "/nginx-error.log warn;\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n"
          "  client_body_temp_path " +
          dir + "/body;\n  proxy_temp_path " + dir +
          "/proxy;\n"
          "  fastcgi_temp_path " +
          dir + "/fastcgi;\n  uwsgi_temp_path " + dir +
          "/uwsgi;\n"
          "  scgi_temp_path " +
          dir +
          "/scgi;\n"
          "  upstream backend { server unix:" +
          upstream +
          "; keepalive 64; }\n"
          "  server {\n    listen 127.0.0.1:" +
          std::to_string(port) +
          ";\n"
          "    location / {\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n"
          "      proxy_set_header Connection \"\";\n    }\n  }\n}\n";
  write_file(conf, text);
  return bench::spawn_process("/usr/sbin/nginx",
                              {.args = {"-c", conf, "-p", dir, "-e", dir + "/nginx-error.log"}});
}

round_result run_nginx(const gateway_config& cfg, bool beast) {
  const int port = free_port();
  const std::string dir = cfg.workdir + "/nginx-" + std::to_string(port);
  std::filesystem::create_directories(dir);
  const std::string sock = dir + "/upstream.sock";
  bench::child_guard children;
  if (beast) {
    children.spawn(cfg.self_exe, "gateway_beast_server", {sock});
  } else {
    const std::string script = dir + "/aiohttp_bench.py";
    write_file(script, aiohttp_script);
    children.adopt(bench::spawn_process("/usr/bin/python3", {.args = {script, "child", sock}}));
  }
  bench::wait_for_unix_socket(sock, std::chrono::seconds(20), children.pids().back());
  children.adopt(start_nginx(dir, port, sock));
  wait_http_ok(port, "/bench", children.pids());
  round_result r;
  r.wrk = run_wrk(port, "/bench", cfg);
  return r;
}

round_result run_system(const gateway_config& cfg, std::string_view system) {
  if (system == "builtin") return run_plexus(cfg, "/api/healthz");
  if (system == "plexus") return run_plexus(cfg, "/bench");
  if (system == "aiohttp") return run_aiohttp(cfg);
  if (system == "nginx-aiohttp") return run_nginx(cfg, false);
  if (system == "nginx-beast") return run_nginx(cfg, true);
  throw std::invalid_argument("unknown system " + std::string(system));
}

// ---- the Beast server nginx proxies to -----------------------------------------------

class beast_session : public std::enable_shared_from_this<beast_session> {
 public:
  explicit beast_session(asio::local::stream_protocol::socket s) : stream_(std::move(s)) {}
  void read() {
    req_ = {};
    http::async_read(stream_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return;
                       self->answer();
                     });
  }

 private:
  void answer() {
    res_ = http::response<http::string_body>(http::status::ok, req_.version());
    res_.set(http::field::content_type, "text/plain; charset=utf-8");
    res_.keep_alive(req_.keep_alive());
    res_.body() = hello;
    res_.prepare_payload();
    http::async_write(stream_, res_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec || !self->res_.keep_alive()) return;
                        self->read();
                      });
  }
  beast::basic_stream<asio::local::stream_protocol> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

void accept_loop(asio::local::stream_protocol::acceptor& a) {
  a.async_accept([&a](beast::error_code ec, asio::local::stream_protocol::socket s) {
    if (ec) return;
    std::make_shared<beast_session>(std::move(s))->read();
    accept_loop(a);
  });
}

}  // namespace

int gateway_beast_server_role(const std::vector<std::string>& args) {
  const std::string& socket_path = args.at(0);
  asio::io_context io(1);
  ::unlink(socket_path.c_str());
  asio::local::stream_protocol::acceptor acceptor(
      io, asio::local::stream_protocol::endpoint(socket_path));
  accept_loop(acceptor);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code&, int) { io.stop(); });
  io.run();
  return 0;
}

int gateway_module_role(const std::vector<std::string>& args) {
  const std::string& name = args.at(0);
  asio::io_context io(1);
  plexus::rpc::service svc(io, {.name = name});
  svc.http("GET", "/bench", [](const plexus::rpc::http_request&) {
    return plexus::rpc::http_response::text(hello);
  });
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code& ec, int) {
    if (!ec) svc.stop([&] { io.stop(); });
  });
  int rc = 0;
  svc.on_disconnect([&](const plexus::error& e) {
    std::fprintf(stderr, "gateway_module: %s\n", e.message.c_str());
    rc = 3;
    io.stop();
  });
  if (auto ok = svc.start(); !ok) {
    std::fprintf(stderr, "gateway_module: %s\n", ok.error().message.c_str());
    return 3;
  }
  io.run();
  return rc;
}

int run_gateway_bench(const gateway_config& cfg, const std::vector<std::string>& wanted, int repeat,
                      bool check) {
  std::vector<std::string> systems = wanted;
  if (systems.empty()) systems.assign(std::begin(all_systems), std::end(all_systems));
  for (const auto& s : systems)
    if (std::find(std::begin(all_systems), std::end(all_systems), s) == std::end(all_systems)) {
      std::fprintf(stderr,
                   "plexus-bench: unknown gateway system '%s' (known: builtin, plexus, "
                   "aiohttp, nginx-aiohttp, nginx-beast)\n",
                   s.c_str());
      return 2;
    }
  std::map<std::string, bench::round_figures, std::less<>> figures;
  bool failed = false;
  for (int round = 0; round < repeat; ++round) {
    for (const auto& s : systems) {
      try {
        const auto r = run_system(cfg, s);
        auto& f = figures[s];
        f.add("requests_per_s", r.wrk.requests_per_s, 0);
        f.add("p50_us", r.wrk.p50_us, 1);
        f.add("p99_us", r.wrk.p99_us, 1);
        f.add("errors", r.wrk.errors, 0);
        if (r.rss_kib >= 0) f.add("gateway_rss_kib", static_cast<double>(r.rss_kib), 0, true);
        std::fprintf(stderr, "gateway round %d %-14s %9.0f req/s  p50 %8.1f us  p99 %8.1f us%s\n",
                     round + 1, s.c_str(), r.wrk.requests_per_s, r.wrk.p50_us, r.wrk.p99_us,
                     r.wrk.errors > 0 ? "  (errors!)" : "");
        if (r.wrk.errors > 0) failed = true;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "plexus-bench gateway: %s: %s\n", s.c_str(), e.what());
        failed = true;
      }
    }
  }
  for (const auto& s : systems)
    if (auto it = figures.find(s); it != figures.end()) it->second.print("gateway", s);
  auto med = [&](std::string_view s, std::string_view m) {
    auto it = figures.find(s);
    return it == figures.end() ? 0.0 : it->second.median(m);
  };
  if (figures.count("plexus") && figures.count("builtin"))
    bench::print_json_line("gateway", "plexus", "hop_added_p50_us",
                           med("plexus", "p50_us") - med("builtin", "p50_us"));
  if (failed) return 2;
  if (!check) return 0;
  bool missed = false;
  auto target = [&](const char* text, double ratio, double limit, bool at_most) {
    const bool ok = at_most ? ratio <= limit : ratio >= limit;
    std::fprintf(stderr, "%s %s (%.2f)\n", ok ? "PASS" : "FAIL", text, ratio);
    missed = missed || !ok;
  };
  if (figures.count("plexus") && figures.count("aiohttp")) {
    const double ratio = med("plexus", "requests_per_s") / med("aiohttp", "requests_per_s");
    bench::print_json_line("gateway", "plexus", "requests_per_s_vs_aiohttp", ratio, 2);
    target("plexus req/s >= 10 x aiohttp (seed 000)", ratio, 10, false);
  }
  if (figures.count("plexus") && figures.count("nginx-beast")) {
    const double rps = med("plexus", "requests_per_s") / med("nginx-beast", "requests_per_s");
    const double p99 = med("plexus", "p99_us") / med("nginx-beast", "p99_us");
    bench::print_json_line("gateway", "plexus", "requests_per_s_vs_nginx_beast", rps, 2);
    bench::print_json_line("gateway", "plexus", "p99_vs_nginx_beast", p99, 2);
    target("plexus req/s >= 1.0 x nginx -> Beast", rps, 1.0, false);
    target("plexus p99 <= 1.0 x nginx -> Beast", p99, 1.0, true);
  }
  return missed ? 1 : 0;
}
