#include "plexus/config/app_config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "plexus/transport/address.hpp"

namespace plexus::config {

namespace {

plexus::error fail(const std::string& source, const toml::source_region& where,
                   const std::string& key, const std::string& why) {
  std::string at = source;
  if (where.begin.line > 0)
    at += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
  return plexus::error(errc::invalid_argument, at + ": " + key + ": " + why,
                       {{"file", source}, {"line", where.begin.line}, {"key", key}});
}

// A string, or an array of strings.
result<void> read_strings(const std::string& source, const toml::node& node, const std::string& key,
                          std::vector<std::string>& out) {
  out.clear();
  if (auto s = node.value<std::string>()) {
    out.push_back(*s);
    return {};
  }
  const auto* arr = node.as_array();
  if (!arr) return fail(source, node.source(), key, "expected a string or an array of strings");
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) return fail(source, item.source(), key, "expected a string");
    out.push_back(*s);
  }
  return {};
}

result<void> read_size(const std::string& source, const toml::node& node, const std::string& key,
                       std::size_t& out, std::int64_t min) {
  // is_integer() first: value<int64_t>() converts a float, which overflows on 1e76.
  const auto v = node.is_integer() ? node.value<std::int64_t>() : std::nullopt;
  if (!v || *v < min)
    return fail(source, node.source(), key,
                "expected an integer of at least " + std::to_string(min));
  out = static_cast<std::size_t>(*v);
  return {};
}

// The entries of a table in the order they appear in the file (toml::table sorts them by
// key), so the first error reported is the first in the file and declared order is kept.
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> out;
  for (const auto& [k, node] : t)
    out.emplace_back(&k, &node);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    const auto& x = a.first->source().begin;
    const auto& y = b.first->source().begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return out;
}

result<void> read_string(const std::string& source, const toml::node& node, const std::string& key,
                         std::string& out) {
  auto s = node.value<std::string>();
  if (!s) return fail(source, node.source(), key, "expected a string");
  out = std::move(*s);
  return {};
}

result<void> read_bool(const std::string& source, const toml::node& node, const std::string& key,
                       bool& out) {
  const auto* b = node.as_boolean();
  if (!b) return fail(source, node.source(), key, "expected true or false");
  out = b->get();
  return {};
}

// An integer in [min, max] (a float, even 2.0, is refused).
result<void> read_int(const std::string& source, const toml::node& node, const std::string& key,
                      std::int64_t& out, std::int64_t min, std::int64_t max) {
  const auto* i = node.as_integer();
  if (!i || i->get() < min || i->get() > max)
    return fail(source, node.source(), key,
                "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  out = i->get();
  return {};
}

// Durations are seconds, an integer or a float, rounded to the nearest millisecond. The
// upper bound keeps deadline arithmetic on the nanosecond steady clock far from overflow.
constexpr double max_seconds = 1e9;

result<void> read_seconds(const std::string& source, const toml::node& node, const std::string& key,
                          std::chrono::milliseconds& out, bool positive) {
  const std::string want = positive ? "expected a number of seconds greater than 0 (at least 0.001)"
                                    : "expected a number of seconds, at least 0";
  double s = 0;
  if (const auto* i = node.as_integer())
    s = static_cast<double>(i->get());
  else if (const auto* f = node.as_floating_point())
    s = f->get();
  else
    return fail(source, node.source(), key, want);
  if (std::isnan(s) || s < 0) return fail(source, node.source(), key, want);
  if (s > max_seconds)
    return fail(source, node.source(), key, "expected at most 1000000000 seconds");
  const auto ms = std::llround(s * 1000);
  if (positive && ms <= 0) return fail(source, node.source(), key, want);
  out = std::chrono::milliseconds(ms);
  return {};
}

// One of the names `to_string` gives the enumerators in `all`.
template <typename E, std::size_t N>
result<void> read_enum(const std::string& source, const toml::node& node, const std::string& key,
                       E& out, const std::array<E, N>& all) {
  std::string names;
  for (E e : all)
    names += (names.empty() ? "" : ", ") + std::string(supervisor::to_string(e));
  auto s = node.value<std::string>();
  if (!s) return fail(source, node.source(), key, "expected a string, one of: " + names);
  for (E e : all) {
    if (supervisor::to_string(e) == *s) {
      out = e;
      return {};
    }
  }
  return fail(source, node.source(), key,
              "unknown value '" + *s + "' (expected one of: " + names + ")");
}

// [router]: every key is a row of broker::router_option_table(); the value is read
// here (so errors name the line and column of the item at fault) and set through it.
result<void> read_router(const std::string& source, const toml::table& t,
                         broker::router_options& r) {
  for (const auto& [k, n] : in_file_order(t)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    const std::string key = "router." + name;
    const auto* option = broker::find_router_option(name);
    if (!option)
      return fail(source, node.source(), key,
                  "unknown key (known: " + broker::router_option_keys() + ")");
    value v;
    if (option->type == broker::option_type::addresses) {
      std::vector<std::string> addresses;
      if (auto ok = read_strings(source, node, key, addresses); !ok) return ok;
      v = addresses;
    } else if (option->type == broker::option_type::text) {
      std::string text;
      if (auto ok = read_string(source, node, key, text); !ok) return ok;
      v = text;
    } else {
      std::size_t size = 0;
      if (auto ok = read_size(source, node, key, size, option->min); !ok) return ok;
      v = static_cast<std::int64_t>(size);
    }
    if (auto ok = option->set(r, v); !ok)
      return fail(source, node.source(), key, ok.error().message);
  }
  return {};
}

result<void> read_supervisor(const std::string& source, const toml::table& t,
                             supervisor::tree_spec& spec) {
  const toml::node* initial = nullptr;
  const toml::node* max = nullptr;
  for (const auto& [k, n] : in_file_order(t)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    const std::string key = "supervisor." + name;
    result<void> ok;
    if (name == "strategy") {
      ok = read_enum(source, node, key, spec.strategy,
                     std::array{supervisor::restart_strategy::one_for_one,
                                supervisor::restart_strategy::one_for_all,
                                supervisor::restart_strategy::rest_for_one});
    } else if (name == "intensity") {
      ok = read_size(source, node, key, spec.intensity, 0);
    } else if (name == "period") {
      ok = read_seconds(source, node, key, spec.period, true);
    } else if (name == "backoff_initial") {
      ok = read_seconds(source, node, key, spec.backoff_initial, false);
      initial = &node;
    } else if (name == "backoff_max") {
      ok = read_seconds(source, node, key, spec.backoff_max, false);
      max = &node;
    } else if (name == "emergency_exit_code") {
      std::int64_t code = 0;
      ok = read_int(source, node, key, code, 0, 255);
      if (ok) spec.emergency_exit_code = static_cast<int>(code);
    } else if (name == "start_concurrency") {
      ok = read_size(source, node, key, spec.start_concurrency, 1);
    } else {
      ok = fail(source, node.source(), key,
                "unknown key (known: strategy, intensity, period, backoff_initial, backoff_max, "
                "emergency_exit_code, start_concurrency)");
    }
    if (!ok) return ok;
  }
  if (spec.backoff_max < spec.backoff_initial) {
    if (max)
      return fail(source, max->source(), "supervisor.backoff_max",
                  "must be at least backoff_initial (" +
                      supervisor::seconds_text(spec.backoff_initial) + " s)");
    return fail(source, initial->source(), "supervisor.backoff_initial",
                "must be at most backoff_max (" + supervisor::seconds_text(spec.backoff_max) +
                    " s by default)");
  }
  return {};
}

result<void> read_log(const std::string& source, const toml::table& t,
                      supervisor::log_options& log) {
  for (const auto& [k, n] : in_file_order(t)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    const std::string key = "log." + name;
    result<void> ok;
    if (name == "dir")
      ok = read_string(source, node, key, log.dir);
    else if (name == "max_bytes")
      ok = read_size(source, node, key, log.max_bytes, 1024);
    else if (name == "files")
      ok = read_size(source, node, key, log.files, 0);
    else if (name == "history")
      ok = read_size(source, node, key, log.history, 0);
    else if (name == "echo")
      ok = read_bool(source, node, key, log.echo);
    else
      ok = fail(source, node.source(), key,
                "unknown key (known: dir, max_bytes, files, history, echo)");
    if (!ok) return ok;
  }
  return {};
}

bool valid_process_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// A table of strings, kept in declared order.
result<void> read_gateway(const std::string& source, const toml::table& t,
                          gateway::gateway_options& g) {
  for (const auto& [k, n] : in_file_order(t)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    const std::string key = "gateway." + name;
    result<void> ok;
    if (name == "enabled") {
      ok = read_bool(source, node, key, g.enabled);
    } else if (name == "listen") {
      ok = read_string(source, node, key, g.listen);
      if (ok) {
        if (auto hp = transport::split_host_port(g.listen, "host:port"); !hp)
          ok = fail(source, node.source(), key, hp.error().message);
      }
    } else if (name == "max_body_bytes") {
      ok = read_size(source, node, key, g.max_body_bytes, 0);
    } else if (name == "max_url_bytes") {
      ok = read_size(source, node, key, g.max_url_bytes, 64);
    } else if (name == "max_header_bytes") {
      ok = read_size(source, node, key, g.max_header_bytes, 256);
    } else if (name == "max_connections") {
      ok = read_size(source, node, key, g.max_connections, 1);
    } else if (name == "max_stream_queue_bytes") {
      ok = read_size(source, node, key, g.max_stream_queue_bytes, 4096);
    } else if (name == "deadline") {
      ok = read_seconds(source, node, key, g.deadline, true);
    } else if (name == "idle_timeout") {
      ok = read_seconds(source, node, key, g.idle_timeout, true);
    } else {
      ok = fail(
          source, node.source(), key,
          "unknown key (known: enabled, listen, max_body_bytes, max_url_bytes, "
          "max_header_bytes, max_connections, max_stream_queue_bytes, deadline, idle_timeout)");
    }
    if (!ok) return ok;
  }
  return {};
}

result<void> read_env(const std::string& source, const toml::node& node, const std::string& key,
                      std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  const auto* t = node.as_table();
  if (!t) return fail(source, node.source(), key, "expected a table of strings");
  for (const auto& [k, n] : in_file_order(*t)) {
    const std::string name(k->str());
    if (name.empty() || name.find('=') != std::string::npos)
      return fail(source, k->source(), key + "." + name,
                  "an environment variable name must be non-empty and contain no '='");
    std::string value;
    if (auto ok = read_string(source, *n, key + "." + name, value); !ok) return ok;
    out.emplace_back(name, std::move(value));
  }
  return {};
}

result<void> read_process(const std::string& source, const toml::table& t,
                          const std::string& prefix, supervisor::child_spec& child,
                          const toml::node*& name_node) {
  bool has_command = false;
  for (const auto& [k, n] : in_file_order(t)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    const std::string key = prefix + "." + name;
    result<void> ok;
    if (name == "name") {
      ok = read_string(source, node, key, child.name);
      if (ok && !valid_process_name(child.name))
        ok = fail(source, node.source(), key, "expected 1 to 64 characters of A-Z a-z 0-9 _ . -");
      name_node = &node;
    } else if (name == "command") {
      ok = read_string(source, node, key, child.command);
      if (ok && child.command.empty())
        ok = fail(source, node.source(), key, "expected a non-empty string");
      has_command = true;
    } else if (name == "args") {
      ok = read_strings(source, node, key, child.args);
    } else if (name == "env") {
      ok = read_env(source, node, key, child.env);
    } else if (name == "cwd") {
      ok = read_string(source, node, key, child.cwd);
    } else if (name == "replicas") {
      std::int64_t replicas = 0;
      ok = read_int(source, node, key, replicas, 1, 1000);
      if (ok) child.replicas = static_cast<std::size_t>(replicas);
    } else if (name == "restart") {
      ok = read_enum(
          source, node, key, child.restart,
          std::array{supervisor::restart_policy::permanent, supervisor::restart_policy::transient,
                     supervisor::restart_policy::temporary});
    } else if (name == "ready") {
      ok = read_enum(source, node, key, child.ready,
                     std::array{supervisor::readiness::notify, supervisor::readiness::spawn});
    } else if (name == "stop_timeout") {
      ok = read_seconds(source, node, key, child.stop_timeout, false);
    } else if (name == "ready_timeout") {
      ok = read_seconds(source, node, key, child.ready_timeout, true);
    } else if (name == "group") {
      ok = read_string(source, node, key, child.group);
    } else {
      ok = fail(source, node.source(), key,
                "unknown key (known: name, command, args, env, cwd, replicas, restart, ready, "
                "stop_timeout, ready_timeout, group)");
    }
    if (!ok) return ok;
  }
  if (!name_node) return fail(source, t.source(), prefix + ".name", "required");
  if (!has_command) return fail(source, t.source(), prefix + ".command", "required");
  return {};
}

result<void> read_processes(const std::string& source, const toml::node& node,
                            std::vector<supervisor::child_spec>& out) {
  const auto* arr = node.as_array();
  if (!arr)
    return fail(source, node.source(), "process", "expected an array of tables [[process]]");
  out.clear();
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& item = (*arr)[i];
    const std::string prefix = "process[" + std::to_string(i) + "]";
    const auto* t = item.as_table();
    if (!t) return fail(source, item.source(), prefix, "expected a table [[process]]");
    supervisor::child_spec child;
    const toml::node* name_node = nullptr;
    if (auto ok = read_process(source, *t, prefix, child, name_node); !ok) return ok;
    for (std::size_t j = 0; j < out.size(); ++j) {
      if (out[j].name == child.name)
        return fail(source, name_node->source(), prefix + ".name",
                    "duplicate process name '" + child.name + "' (also process[" +
                        std::to_string(j) + "])");
    }
    out.push_back(std::move(child));
  }
  return {};
}

// [group.NAME] tables: strategy, intensity, period.
result<void> read_groups(const std::string& source, const toml::node& node,
                         std::vector<supervisor::group_spec>& out) {
  const auto* t = node.as_table();
  if (!t) return fail(source, node.source(), "group", "expected tables [group.NAME]");
  for (const auto& [k, n] : in_file_order(*t)) {
    supervisor::group_spec g;
    g.name = std::string(k->str());
    const std::string prefix = "group." + g.name;
    if (!valid_process_name(g.name))
      return fail(source, n->source(), prefix,
                  "expected a name of 1 to 64 characters of A-Z a-z 0-9 _ . -");
    const auto* gt = n->as_table();
    if (!gt) return fail(source, n->source(), prefix, "expected a table [" + prefix + "]");
    for (const auto& [gk, gn] : in_file_order(*gt)) {
      const std::string name(gk->str());
      const std::string key = prefix + "." + name;
      result<void> ok;
      if (name == "strategy")
        ok = read_enum(source, *gn, key, g.strategy,
                       std::array{supervisor::restart_strategy::one_for_one,
                                  supervisor::restart_strategy::one_for_all,
                                  supervisor::restart_strategy::rest_for_one});
      else if (name == "intensity")
        ok = read_size(source, *gn, key, g.intensity, 0);
      else if (name == "period")
        ok = read_seconds(source, *gn, key, g.period, true);
      else
        ok = fail(source, gn->source(), key, "unknown key (known: strategy, intensity, period)");
      if (!ok) return ok;
    }
    out.push_back(std::move(g));
  }
  return {};
}

// Every process's group exists, and a group's processes are declared one after another.
result<void> check_groups(const std::string& source, const toml::table& doc,
                          const supervisor::tree_spec& spec) {
  const auto problem = supervisor::find_group_problem(spec);
  if (!problem) return {};
  const auto i = problem->process;
  const auto& group = spec.processes[i].group;
  const auto* procs = doc["process"].as_array();
  const toml::node* where = procs ? (*procs)[i].as_table()->get("group") : nullptr;
  return fail(source, where ? where->source() : toml::source_region{},
              "process[" + std::to_string(i) + "].group",
              problem->what == supervisor::group_problem::unknown
                  ? "no [group." + group + "] table"
                  : "the processes of group " + group + " must be declared one after another");
}

}  // namespace

result<app_config> parse(std::string_view text, const std::string& source) {
  toml::table doc;
  try {
    doc = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return fail(source, e.source(), "(syntax)", std::string(e.description()));
  }
  app_config cfg;
  for (const auto& [k, n] : in_file_order(doc)) {
    const toml::node& node = *n;
    const std::string name(k->str());
    result<void> ok;
    if (name == "router") {
      const auto* t = node.as_table();
      if (!t) return fail(source, node.source(), name, "expected a table [router]");
      ok = read_router(source, *t, cfg.router);
    } else if (name == "supervisor") {
      const auto* t = node.as_table();
      if (!t) return fail(source, node.source(), name, "expected a table [supervisor]");
      ok = read_supervisor(source, *t, cfg.supervisor);
    } else if (name == "log") {
      const auto* t = node.as_table();
      if (!t) return fail(source, node.source(), name, "expected a table [log]");
      ok = read_log(source, *t, cfg.supervisor.log);
    } else if (name == "gateway") {
      const auto* t = node.as_table();
      if (!t) return fail(source, node.source(), name, "expected a table [gateway]");
      ok = read_gateway(source, *t, cfg.gateway);
    } else if (name == "process") {
      ok = read_processes(source, node, cfg.supervisor.processes);
    } else if (name == "group") {
      ok = read_groups(source, node, cfg.supervisor.groups);
    } else {
      ok = fail(source, node.source(), name,
                "unknown key (known: [router], [gateway], [supervisor], [log], [group.NAME], "
                "[[process]])");
    }
    if (!ok) return std::move(ok).error();
  }
  if (auto ok = check_groups(source, doc, cfg.supervisor); !ok) return std::move(ok).error();
  return cfg;
}

result<app_config> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return plexus::error(errc::invalid_argument, "cannot read config file " + path,
                         {{"file", path}});
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

}  // namespace plexus::config
