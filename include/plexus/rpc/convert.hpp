// Conversions between CBOR values and C++ types for calls and handlers, strict
// enough that a wrong argument is an error naming the expected type rather than a
// silent coercion (2.7 does not become 2, "2" does not become 2).
//
//   auto r = plexus::rpc::convert_value<int>(plexus::value(2), "argument 1 of add");
//   std::string label = plexus::rpc::type_label<std::vector<int>>();  // "array<integer>"
//   // r: result<int>
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "plexus/wire/error.hpp"

namespace plexus::rpc {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// A short human name for T as it appears on the wire, for signatures and errors.
template <class T>
std::string type_label() {
  using U = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<U, bool>)
    return "boolean";
  else if constexpr (std::is_integral_v<U>)
    return "integer";
  else if constexpr (std::is_floating_point_v<U>)
    return "number";
  else if constexpr (std::is_same_v<U, std::string> || std::is_same_v<U, std::string_view>)
    return "string";
  else if constexpr (std::is_same_v<U, value>)
    return "any";
  else if constexpr (std::is_same_v<U, value::binary_t>)
    return "bytes";
  else if constexpr (std::is_same_v<U, void>)
    return "null";
  else if constexpr (is_vector<U>::value)
    return "array<" + type_label<typename U::value_type>() + ">";
  else if constexpr (is_optional<U>::value)
    return type_label<typename U::value_type>() + "?";
  else
    return "object";
}

inline std::string_view kind_label(const value& v) {
  switch (v.type()) {
    case value::value_t::null:
      return "null";
    case value::value_t::boolean:
      return "boolean";
    case value::value_t::number_integer:
    case value::value_t::number_unsigned:
      return "integer";
    case value::value_t::number_float:
      return "number";
    case value::value_t::string:
      return "string";
    case value::value_t::array:
      return "array";
    case value::value_t::object:
      return "map";
    case value::value_t::binary:
      return "bytes";
    default:
      return "invalid";
  }
}

namespace detail {

// `what` names the value in errors: text, or a callable that makes the text, so a
// call whose arguments convert cleanly never builds it.
template <class W>
std::string what_text(const W& what) {
  if constexpr (std::is_invocable_v<const W&>)
    return std::string(what());
  else
    return std::string(what);
}

// Converts v to T. With V = value (not const) strings, byte strings, arrays and
// nested values are moved out of v, which is left valid but unspecified; with
// V = const value they are copied.
template <class T, class V, class W>
result<T> convert_value_from(V& v, const W& what) {
  static_assert(std::is_same_v<std::remove_const_t<V>, value>);
  constexpr bool move = !std::is_const_v<V>;
  using U = std::remove_cvref_t<T>;
  auto mismatch = [&]() {
    return plexus::error(
        errc::invalid_argument,
        what_text(what) + ": expected " + type_label<U>() + ", got " + std::string(kind_label(v)),
        {{"expected", type_label<U>()}, {"got", std::string(kind_label(v))}});
  };
  auto out_of_range = [&](const auto& x) {
    return plexus::error(errc::invalid_argument,
                         what_text(what) + ": " + std::to_string(x) + " is out of range");
  };
  if constexpr (std::is_same_v<U, value>) {
    if constexpr (move)
      return std::move(v);
    else
      return v;
  } else if constexpr (std::is_same_v<U, bool>) {
    if (!v.is_boolean()) return mismatch();
    return v.template get<bool>();
  } else if constexpr (std::is_integral_v<U>) {
    if (!v.is_number_integer()) return mismatch();
    if (v.is_number_unsigned()) {
      const auto x = v.template get<std::uint64_t>();
      if (x > static_cast<std::uint64_t>(std::numeric_limits<U>::max())) return out_of_range(x);
      return static_cast<U>(x);
    }
    const auto x = v.template get<std::int64_t>();
    if constexpr (std::is_unsigned_v<U>) {
      if (x < 0) return out_of_range(x);
    } else {
      if (x < static_cast<std::int64_t>(std::numeric_limits<U>::min()) ||
          x > static_cast<std::int64_t>(std::numeric_limits<U>::max()))
        return out_of_range(x);
    }
    return static_cast<U>(x);
  } else if constexpr (std::is_floating_point_v<U>) {
    if (!v.is_number()) return mismatch();
    return v.template get<U>();
  } else if constexpr (std::is_same_v<U, std::string>) {
    if (!v.is_string()) return mismatch();
    if constexpr (move)
      return std::move(v.template get_ref<std::string&>());
    else
      return v.template get_ref<const std::string&>();
  } else if constexpr (std::is_same_v<U, value::binary_t>) {
    if (!v.is_binary()) return mismatch();
    if constexpr (move)
      return std::move(v.get_binary());
    else
      return v.get_binary();
  } else if constexpr (is_optional<U>::value) {
    if (v.is_null()) return U{};
    auto inner = convert_value_from<typename U::value_type>(v, what);
    if (!inner) return std::move(inner).error();
    return U(std::move(*inner));
  } else if constexpr (is_vector<U>::value) {
    if (!v.is_array()) return mismatch();
    U out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      auto item = convert_value_from<typename U::value_type>(
          v[i], [&] { return what_text(what) + "[" + std::to_string(i) + "]"; });
      if (!item) return std::move(item).error();
      out.push_back(std::move(*item));
    }
    return out;
  } else {
    // User types and everything else: their from_json decides.
    try {
      return v.template get<U>();
    } catch (const std::exception& e) {
      return plexus::error(errc::invalid_argument, what_text(what) + ": cannot convert to " +
                                                       type_label<U>() + ": " + e.what());
    }
  }
}

}  // namespace detail

// Converts v to T; `what` names the value in the error ("argument 1 of add").
template <class T>
result<T> convert_value(const value& v, std::string_view what) {
  return detail::convert_value_from<T>(v, what);
}

// Converts a call's result; the error names "result of <method>" (built only on error).
template <class R>
result<R> convert_result(const value& v, std::string_view method) {
  return detail::convert_value_from<R>(v, [&] { return "result of " + std::string(method); });
}
// The same for a result the caller owns: strings, bytes and arrays are moved out of it.
template <class R>
result<R> convert_result(value&& v, std::string_view method) {
  return detail::convert_value_from<R>(v, [&] { return "result of " + std::string(method); });
}

}  // namespace plexus::rpc
