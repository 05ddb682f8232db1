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

// Converts v to T; `what` names the value in the error ("argument 1 of add").
template <class T>
result<T> convert_value(const value& v, std::string_view what) {
  using U = std::remove_cvref_t<T>;
  auto mismatch = [&]() {
    return plexus::error(
        errc::invalid_argument,
        std::string(what) + ": expected " + type_label<U>() + ", got " + std::string(kind_label(v)),
        {{"expected", type_label<U>()}, {"got", std::string(kind_label(v))}});
  };
  if constexpr (std::is_same_v<U, value>) {
    return v;
  } else if constexpr (std::is_same_v<U, bool>) {
    if (!v.is_boolean()) return mismatch();
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<U>) {
    if (!v.is_number_integer()) return mismatch();
    if (v.is_number_unsigned()) {
      const auto x = v.get<std::uint64_t>();
      if (x > static_cast<std::uint64_t>(std::numeric_limits<U>::max()))
        return plexus::error(errc::invalid_argument,
                             std::string(what) + ": " + std::to_string(x) + " is out of range");
      return static_cast<U>(x);
    }
    const auto x = v.get<std::int64_t>();
    if constexpr (std::is_unsigned_v<U>) {
      if (x < 0)
        return plexus::error(errc::invalid_argument,
                             std::string(what) + ": " + std::to_string(x) + " is out of range");
    } else {
      if (x < static_cast<std::int64_t>(std::numeric_limits<U>::min()) ||
          x > static_cast<std::int64_t>(std::numeric_limits<U>::max()))
        return plexus::error(errc::invalid_argument,
                             std::string(what) + ": " + std::to_string(x) + " is out of range");
    }
    return static_cast<U>(x);
  } else if constexpr (std::is_floating_point_v<U>) {
    if (!v.is_number()) return mismatch();
    return v.get<U>();
  } else if constexpr (std::is_same_v<U, std::string>) {
    if (!v.is_string()) return mismatch();
    return v.get<std::string>();
  } else if constexpr (is_optional<U>::value) {
    if (v.is_null()) return U{};
    auto inner = convert_value<typename U::value_type>(v, what);
    if (!inner) return std::move(inner).error();
    return U(std::move(*inner));
  } else if constexpr (is_vector<U>::value && !std::is_same_v<U, value::binary_t>) {
    if (!v.is_array()) return mismatch();
    U out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      auto item = convert_value<typename U::value_type>(
          v[i], std::string(what) + "[" + std::to_string(i) + "]");
      if (!item) return std::move(item).error();
      out.push_back(std::move(*item));
    }
    return out;
  } else {
    // User types and everything else: their from_json decides.
    try {
      return v.get<U>();
    } catch (const std::exception& e) {
      return plexus::error(errc::invalid_argument, std::string(what) + ": cannot convert to " +
                                                       type_label<U>() + ": " + e.what());
    }
  }
}

template <class R>
result<R> convert_result(const value& v, std::string_view method) {
  return convert_value<R>(v, "result of " + std::string(method));
}

}  // namespace plexus::rpc
