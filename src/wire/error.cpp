#include "plexus/wire/error.hpp"

#include <array>

namespace plexus {
namespace {

// Indexed by the enumerator's value; the order must match `enum class errc`.
constexpr std::array<std::string_view, 8> errc_names = {
    "invalid_argument",   "not_found",     "unavailable",       "deadline_exceeded",
    "resource_exhausted", "unimplemented", "permission_denied", "internal",
};

}  // namespace

std::string_view to_string(errc code) noexcept {
  const auto i = static_cast<std::size_t>(code);
  return i < errc_names.size() ? errc_names[i] : std::string_view("internal");
}

std::optional<errc> errc_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < errc_names.size(); ++i) {
    if (errc_names[i] == name) return static_cast<errc>(i);
  }
  return std::nullopt;
}

value error::to_wire() const {
  value ctx = context.is_object() ? context : value::object();
  // A context that is not a map cannot carry "code"; keep it under "context" rather
  // than drop it.
  if (!context.is_object() && !context.is_null()) ctx["context"] = context;
  ctx["code"] = to_string(code);
  return value::array({value(message), std::move(ctx)});
}

error error::from_wire(const value& v) {
  if (!v.is_array() || v.size() != 2) {
    return {errc::internal,
            "malformed error: expected [message, context], got " +
                std::string(v.is_array() ? "an array of " + std::to_string(v.size()) + " elements"
                                         : v.type_name())};
  }
  const value& msg = v[0];
  const value& ctx = v[1];
  if (!msg.is_string()) {
    return {errc::internal, "malformed error: message is not a text string"};
  }
  if (!ctx.is_object()) {
    return {errc::internal,
            "malformed error (" + msg.get_ref<const std::string&>() + "): context is not a map"};
  }
  errc code = errc::internal;
  if (auto it = ctx.find("code"); it != ctx.end() && it->is_string()) {
    code = errc_from_string(it->get_ref<const std::string&>()).value_or(errc::internal);
  }
  return {code, msg.get<std::string>(), ctx};
}

}  // namespace plexus
