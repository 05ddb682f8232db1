#include "plexus/log/record.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <vector>

namespace plexus::log {

namespace {

std::string text_of(const value& v, const char* key) {
  auto it = v.find(key);
  return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string iso_time(double t) {
  const auto secs = static_cast<std::time_t>(std::floor(t));
  const int ms = static_cast<int>((t - std::floor(t)) * 1000.0);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

// One step of a UTF-8 decoder at the start of `t` (not empty): `need` is how many bytes
// the sequence there announces; `bytes` how many form the character (== need) or its
// maximal invalid subpart (< need, also when `t` ends inside a well-formed prefix).
struct utf8_step {
  std::size_t bytes;
  std::size_t need;
  bool valid() const noexcept { return bytes == need; }
};

utf8_step step_at(std::string_view t) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(t[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {1, 1};
  // The sequence length a lead byte announces, and the range its second byte must be
  // in (which excludes overlong forms, surrogates and code points above U+10FFFF).
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 3;
    lo = lead == 0xe0 ? 0xa0 : 0x80;
    hi = lead == 0xed ? 0x9f : 0xbf;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 4;
    lo = lead == 0xf0 ? 0x90 : 0x80;
    hi = lead == 0xf4 ? 0x8f : 0xbf;
  } else {
    return {1, 2};  // a continuation byte, C0, C1 or F5..FF: never valid here
  }
  for (std::size_t k = 1; k < need; ++k) {
    if (k >= t.size()) return {k, need};  // the text ends inside the character
    const auto b = byte(k);
    if (k == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return {k, need};
  }
  return {need, need};
}

constexpr std::string_view replacement = "\xef\xbf\xbd";  // U+FFFD

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const auto s = step_at(text.substr(i));
    if (!s.valid()) return false;
    i += s.bytes;
  }
  return true;
}

std::string make_valid_utf8(std::string_view text) {
  std::string out;
  std::size_t copied = 0;  // text before this is in `out` (once something was invalid)
  for (std::size_t i = 0; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const auto s = step_at(text.substr(i));
    if (!s.valid()) {
      if (out.empty()) out.reserve(text.size() + 8);
      out.append(text.substr(copied, i - copied)).append(replacement);
      copied = i + s.bytes;
    }
    i += s.bytes;
  }
  if (copied == 0) return std::string(text);  // valid: nothing was replaced
  out.append(text.substr(copied));
  return out;
}

std::size_t cut_at_boundary(std::string_view text, std::size_t max) noexcept {
  if (text.size() <= max) return text.size();
  // The character that holds text[max] starts at most 3 bytes before it.
  std::size_t start = max;
  while (start > 0 && max - start < 3 && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80)
    --start;
  if (start == max || start == 0) return max;
  // Well formed as far as it goes (the rest of it may not have arrived yet) and
  // crossing `max`: cut before it. Invalid bytes are no character: cut at `max`.
  const auto s = step_at(text.substr(start));
  const bool character = s.valid() || start + s.bytes == text.size();
  return character && start + s.need > max ? start : max;
}

bool make_valid(value& v) {
  if (v.is_string()) {
    auto& s = v.get_ref<std::string&>();
    if (is_valid_utf8(s)) return false;
    s = make_valid_utf8(s);
    return true;
  }
  bool changed = false;
  if (v.is_array()) {
    for (auto& e : v)
      changed = make_valid(e) || changed;
  } else if (v.is_object()) {
    std::vector<std::string> bad_keys;
    for (auto it = v.begin(); it != v.end(); ++it) {
      changed = make_valid(it.value()) || changed;
      if (!is_valid_utf8(it.key())) bad_keys.push_back(it.key());
    }
    for (const auto& k : bad_keys) {
      value moved = std::move(v[k]);
      v.erase(k);
      v[make_valid_utf8(k)] = std::move(moved);
      changed = true;
    }
  }
  return changed;
}

int level_rank(std::string_view level) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(levels)); ++i)
    if (levels[i] == level) return i;
  return -1;
}

result<void> check_level(std::string_view level) {
  if (level_rank(level) >= 0) return {};
  return plexus::error(errc::invalid_argument,
                       "unknown log level '" + std::string(level) +
                           "' (levels: trace, debug, info, warn, error, critical)",
                       {{"level", std::string(level)}});
}

std::string topic(std::string_view process) {
  return std::string(topic_prefix) + std::string(process);
}

value make_record(std::string_view level, std::string_view message, value fields,
                  std::string_view process, std::int64_t replica, std::optional<std::int64_t> pid) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  make_valid(fields);
  return {{"time", std::chrono::duration<double>(now).count()},
          {"level", make_valid_utf8(level)},
          {"process", make_valid_utf8(process)},
          {"replica", replica},
          {"pid", pid ? *pid : static_cast<std::int64_t>(::getpid())},
          {"message", make_valid_utf8(message)},
          {"fields", fields.is_object() ? std::move(fields) : value::object()}};
}

value make_line_record(std::string_view level, std::string_view line, value fields,
                       std::string_view process, std::int64_t replica, std::int64_t pid) {
  auto r = make_record(level, line, std::move(fields), process, replica, pid);
  if (r["message"].get_ref<const std::string&>() != line)
    r["raw"] = value::binary(value::binary_t::container_type(line.begin(), line.end()));
  return r;
}

std::string format_raw(const value& r) {
  const auto raw = r.find("raw");
  if (raw == r.end() || !raw->is_binary()) return format(r);
  const auto& bytes = raw->get_binary();
  if (std::find(bytes.begin(), bytes.end(), '\n') != bytes.end()) return format(r);
  value copy = r;
  copy["message"] = std::string(bytes.begin(), bytes.end());
  return format(copy);
}

std::string format(const value& r) {
  std::string out;
  const auto t = r.find("time");
  out += t != r.end() && t->is_number() ? iso_time(t->get<double>()) : std::string("-");
  auto level = text_of(r, "level");
  level.resize(std::max<std::size_t>(level.size(), 5), ' ');
  out += " " + level + " " + text_of(r, "process");
  if (auto rep = r.find("replica"); rep != r.end() && rep->is_number_integer())
    out += "[" + std::to_string(rep->get<std::int64_t>()) + "]";
  out += " " + text_of(r, "message");
  if (auto f = r.find("fields"); f != r.end() && f->is_object() && !f->empty()) {
    // A captured line's fields are just its stream: nothing to add.
    if (f->size() == 1 && f->contains("stream")) return out;
    value rest = *f;
    // The captured stream is implied by the line; say only what is news.
    if (text_of(rest, "stream") == "stdout" || text_of(rest, "stream") == "stderr" ||
        text_of(rest, "stream") == "supervisor") {
      rest.erase("stream");
      rest.erase("event");
    }
    // Invalid text in a field is replaced here rather than thrown (nlohmann's default).
    if (!rest.empty()) out += " " + rest.dump(-1, ' ', false, value::error_handler_t::replace);
  }
  return out;
}

bool matches(const value& r, std::string_view process, int min_rank) {
  if (!process.empty() && text_of(r, "process") != process) return false;
  return min_rank <= 0 || level_rank(text_of(r, "level")) >= min_rank;
}

}  // namespace plexus::log
