#include "plexus/wire/error.hpp"

#include <array>

#include <gtest/gtest.h>

namespace plexus {
namespace {

constexpr std::array<std::pair<errc, std::string_view>, 8> all_codes = {{
    {errc::invalid_argument, "invalid_argument"},
    {errc::not_found, "not_found"},
    {errc::unavailable, "unavailable"},
    {errc::deadline_exceeded, "deadline_exceeded"},
    {errc::resource_exhausted, "resource_exhausted"},
    {errc::unimplemented, "unimplemented"},
    {errc::permission_denied, "permission_denied"},
    {errc::internal, "internal"},
}};

TEST(Errc, ToStringWritesTheWireNameOfEveryCode) {
  for (const auto& [code, name] : all_codes)
    EXPECT_EQ(to_string(code), name);
}

TEST(Errc, FromStringParsesEveryNameAndRejectsOthers) {
  for (const auto& [code, name] : all_codes)
    EXPECT_EQ(errc_from_string(name), code);
  EXPECT_EQ(errc_from_string(""), std::nullopt);
  EXPECT_EQ(errc_from_string("Internal"), std::nullopt);
  EXPECT_EQ(errc_from_string("permission-denied"), std::nullopt);
  EXPECT_EQ(errc_from_string("forbidden"), std::nullopt);
}

TEST(Error, ToWireIsMessageAndContextWithCode) {
  const error e(errc::not_found, "no method \"sub\"", {{"service", "calc"}});
  EXPECT_EQ(e.to_wire(),
            value::array({"no method \"sub\"", {{"code", "not_found"}, {"service", "calc"}}}));
}

TEST(Error, ToWireOverridesAStaleCodeInTheContext) {
  const error e(errc::unavailable, "gone", {{"code", "internal"}});
  EXPECT_EQ(e.to_wire()[1]["code"], "unavailable");
}

TEST(Error, ToWireKeepsANonMapContextUnderAKey) {
  const error e(errc::internal, "boom", value::array({1, 2}));
  EXPECT_EQ(e.to_wire()[1], value({{"code", "internal"}, {"context", {1, 2}}}));
  const error n(errc::internal, "boom", nullptr);
  EXPECT_EQ(n.to_wire()[1], value({{"code", "internal"}}));
}

TEST(Error, FromWireReadsCodeMessageAndContext) {
  const error e = error::from_wire(
      value::array({"too slow", {{"code", "deadline_exceeded"}, {"after_ms", 250}}}));
  EXPECT_EQ(e.code, errc::deadline_exceeded);
  EXPECT_EQ(e.message, "too slow");
  EXPECT_EQ(e.context["after_ms"], 250);
}

TEST(Error, FromWireRoundTripsEveryCode) {
  for (const auto& [code, name] : all_codes) {
    const error back = error::from_wire(error(code, std::string(name) + " happened").to_wire());
    EXPECT_EQ(back.code, code);
    EXPECT_EQ(back.message, std::string(name) + " happened");
    EXPECT_EQ(back.context["code"], name);
  }
}

TEST(Error, FromWireMapsMissingOrUnknownCodesToInternal) {
  const error missing = error::from_wire(value::array({"oops", value::object()}));
  EXPECT_EQ(missing.code, errc::internal);
  EXPECT_EQ(missing.message, "oops");

  const error unknown = error::from_wire(value::array({"denied", {{"code", "forbidden"}}}));
  EXPECT_EQ(unknown.code, errc::internal);
  EXPECT_EQ(unknown.message, "denied");
  EXPECT_EQ(unknown.context["code"], "forbidden");  // kept for programs

  const error not_text = error::from_wire(value::array({"odd", {{"code", 3}}}));
  EXPECT_EQ(not_text.code, errc::internal);
}

TEST(Error, FromWireTurnsMalformedInputIntoADescriptiveInternalError) {
  struct bad_case {
    value wire;
    std::string_view expected;
  };
  const bad_case cases[] = {
      {nullptr, "expected [message, context], got null"},
      {"just text", "expected [message, context], got string"},
      {value::array({"a"}), "got an array of 1 elements"},
      {value::array({"a", value::object(), 3}), "got an array of 3 elements"},
      {value::array({7, value::object()}), "message is not a text string"},
      {value::array({"msg", value::array()}), "context is not a map"},
  };
  for (const auto& c : cases) {
    const error e = error::from_wire(c.wire);
    EXPECT_EQ(e.code, errc::internal) << c.wire.dump();
    EXPECT_NE(e.message.find("malformed error"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(c.expected), std::string::npos) << e.message;
    EXPECT_TRUE(e.context.is_object());
  }
}

TEST(Result, HoldsAValueOrAnError) {
  result<int> ok = 3;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  result<int> bad = error(errc::unavailable, "down");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::unavailable);
  result<void> fine;
  EXPECT_TRUE(fine);
  result<void> failed = error(errc::internal, "x");
  EXPECT_EQ(failed.error().message, "x");
}

}  // namespace
}  // namespace plexus
