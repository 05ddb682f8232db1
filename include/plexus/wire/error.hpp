// The error vocabulary shared by C++ results, the CBOR error context and the CLI's
// exit codes, and `result<T>`, the value-or-error type every fallible call returns.
//
//   plexus::result<int> r = client.call<int>("calc", "add", 1, 2);
//   if (!r) std::cerr << r.error().message << " (" << to_string(r.error().code) << ")\n";
//   else    std::cout << *r << "\n";
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace plexus {

// Every CBOR value plexus moves: nlohmann::json, so users' to_json/from_json apply.
using value = nlohmann::json;

// The error codes. Their names travel as text in the error context's "code" key.
enum class errc {
  invalid_argument,    // malformed message, wrong arity or types, bad address
  not_found,           // unknown method on a service
  unavailable,         // no route, peer gone, not connected, draining
  deadline_exceeded,   // the call's deadline passed before an answer came
  resource_exhausted,  // a named limit was hit (frame size, queue depth, ids)
  unimplemented,       // a message kind or feature the peer does not handle
  permission_denied,   // the caller may not do this (a control method, not its user)
  internal,            // a handler threw, or an error without a known code
};

std::string_view to_string(errc code) noexcept;
// Parses a code name as written by to_string; nullopt for anything else.
std::optional<errc> errc_from_string(std::string_view name) noexcept;

// An error as it travels: message for people, context for programs. `context` is
// always a map and always carries "code" once the error is put on the wire.
struct error {
  errc code = errc::internal;
  std::string message;
  value context = value::object();

  error() = default;
  error(errc c, std::string msg, value ctx = value::object())
      : code(c), message(std::move(msg)), context(std::move(ctx)) {}

  // The wire form `[message, context]`, with context["code"] set.
  [[nodiscard]] value to_wire() const;
  // Reads `[message, context]`; an unknown or missing code becomes errc::internal.
  static error from_wire(const value& v);
};

// A value or an error. Expected outcomes are values of this type, never exceptions.
template <class T>
class [[nodiscard]] result {
 public:
  // Default: a value-initialised T (asio's co_spawn needs default construction).
  result() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  result(T v) : v_(std::in_place_index<0>, std::move(v)) {}              // NOLINT(implicit)
  result(plexus::error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT(implicit)

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const plexus::error& error() const& { return std::get<1>(v_); }
  plexus::error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, plexus::error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(plexus::error e) : e_(std::move(e)) {}  // NOLINT(implicit)
  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  const plexus::error& error() const& { return *e_; }
  plexus::error&& error() && { return std::move(*e_); }

 private:
  std::optional<plexus::error> e_;
};

// Thrown only by the throwing conveniences (e.g. client::call_or_throw) and by
// handlers that want a specific code in their error response.
class remote_error : public std::exception {
 public:
  explicit remote_error(plexus::error e) : e_(std::move(e)) {}
  remote_error(errc code, std::string message, value context = value::object())
      : e_(code, std::move(message), std::move(context)) {}
  const char* what() const noexcept override { return e_.message.c_str(); }
  const plexus::error& error() const noexcept { return e_; }

 private:
  plexus::error e_;
};

}  // namespace plexus
