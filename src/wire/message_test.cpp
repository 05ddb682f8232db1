#include "plexus/wire/message.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace plexus::wire {
namespace {

using bytes = std::vector<std::uint8_t>;

bytes from_hex(std::string_view hex) {
  bytes out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    if (hex[i] == ' ') {
      --i;
      continue;
    }
    out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

std::string to_hex(const bytes& b) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}

std::string encoded_hex(const value& v) {
  bytes out;
  encode_value(out, v);
  return to_hex(out);
}

std::string encoded_hex(const message& m) {
  bytes out;
  encode(out, m);
  return to_hex(out);
}

value bin(std::initializer_list<std::uint8_t> b) {
  return value::binary(bytes(b));
}

// Decodes `hex` as one value and returns its error; fails the test if it decodes.
plexus::error value_error(std::string_view hex, const limits& lim = {}) {
  auto r = decode_value(from_hex(hex), lim);
  if (r) {
    ADD_FAILURE() << hex << " decoded to " << r->dump();
    return {};
  }
  return r.error();
}

plexus::error message_error(const value& v) {
  bytes b;
  encode_value(b, v);
  auto r = decode(b);
  if (r) {
    ADD_FAILURE() << v.dump() << " decoded as a message";
    return {};
  }
  return r.error();
}

#define EXPECT_ERROR(err, errc_, substring)                                 \
  do {                                                                      \
    const plexus::error e_ = (err);                                         \
    EXPECT_EQ(e_.code, errc_) << e_.message;                                \
    EXPECT_NE(e_.message.find(substring), std::string::npos) << e_.message; \
  } while (0)

// ---- encoding: byte-for-byte what cbor2 writes ------------------------------------

TEST(WireEncode, IntegersUseTheShortestHead) {
  struct int_case {
    value v;
    std::string_view hex;
  };
  const int_case cases[] = {
      {0, "00"},
      {23, "17"},
      {24, "1818"},
      {255, "18ff"},
      {256, "190100"},
      {65535, "19ffff"},
      {65536, "1a00010000"},
      {4294967295u, "1affffffff"},
      {std::uint64_t{1} << 32, "1b0000000100000000"},
      {std::uint64_t{1} << 63, "1b8000000000000000"},
      {std::numeric_limits<std::uint64_t>::max(), "1bffffffffffffffff"},
      {-1, "20"},
      {-24, "37"},
      {-25, "3818"},
      {-256, "38ff"},
      {-257, "390100"},
      {std::int64_t{-1} << 32, "3affffffff"},
      {std::numeric_limits<std::int64_t>::min(), "3b7fffffffffffffff"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(encoded_hex(c.v), c.hex) << c.v.dump();
}

TEST(WireEncode, SignedAndUnsignedJsonNumbersEncodeAlike) {
  EXPECT_EQ(encoded_hex(value(std::int64_t{65536})), encoded_hex(value(std::uint64_t{65536})));
}

TEST(WireEncode, FloatsAreDoublesExceptNanAndInfinities) {
  EXPECT_EQ(encoded_hex(1.5), "fb3ff8000000000000");
  EXPECT_EQ(encoded_hex(-0.0), "fb8000000000000000");
  EXPECT_EQ(encoded_hex(0.0), "fb0000000000000000");
  EXPECT_EQ(encoded_hex(2.0), "fb4000000000000000");
  EXPECT_EQ(encoded_hex(0.1), "fb3fb999999999999a");
  EXPECT_EQ(encoded_hex(1e300), "fb7e37e43c8800759c");
  EXPECT_EQ(encoded_hex(std::numeric_limits<double>::quiet_NaN()), "f97e00");
  EXPECT_EQ(encoded_hex(-std::numeric_limits<double>::quiet_NaN()), "f97e00");
  EXPECT_EQ(encoded_hex(std::numeric_limits<double>::infinity()), "f97c00");
  EXPECT_EQ(encoded_hex(-std::numeric_limits<double>::infinity()), "f9fc00");
}

TEST(WireEncode, TextBytesAndSimpleValues) {
  EXPECT_EQ(encoded_hex(""), "60");
  EXPECT_EQ(encoded_hex("a"), "6161");
  EXPECT_EQ(encoded_hex("é"), "62c3a9");
  EXPECT_EQ(encoded_hex("日本"), "66e697a5e69cac");
  EXPECT_EQ(encoded_hex("🙂"), "64f09f9982");
  std::string x24_hex;
  for (int i = 0; i < 24; ++i)
    x24_hex += "78";
  EXPECT_EQ(encoded_hex(std::string(24, 'x')), "7818" + x24_hex);
  EXPECT_EQ(encoded_hex(bin({})), "40");
  EXPECT_EQ(encoded_hex(bin({0x00, 0xff})), "4200ff");
  EXPECT_EQ(encoded_hex(value::binary(bytes{1, 2}, 42)), "420102");  // subtype dropped
  EXPECT_EQ(encoded_hex(nullptr), "f6");
  EXPECT_EQ(encoded_hex(true), "f5");
  EXPECT_EQ(encoded_hex(false), "f4");
}

TEST(WireEncode, ContainersNestAndMapsIterateInKeyOrder) {
  EXPECT_EQ(encoded_hex(value::array()), "80");
  EXPECT_EQ(encoded_hex(value::object()), "a0");
  EXPECT_EQ(encoded_hex(value::array({1, "a", nullptr})), "83016161f6");
  EXPECT_EQ(encoded_hex(value({{"b", 1}, {"a", 2}})), "a2616102616201");
  EXPECT_EQ(encoded_hex(value({{"x", value::array({value::array(), value::object()})}})),
            "a16178828"
            "0a0");
  value many = value::array();
  for (int i = 0; i < 24; ++i)
    many.push_back(i);
  EXPECT_EQ(encoded_hex(many).substr(0, 6), "981800");
}

TEST(WireEncode, AppendsWithoutClearing) {
  bytes out = {0xaa};
  encode_value(out, 1);
  EXPECT_EQ(to_hex(out), "aa01");
}

TEST(WireEncode, RequestResponseAndNotificationLayouts) {
  EXPECT_EQ(encoded_hex(request{7, "add", {1, 2}}),
            "840007636164648201"
            "02");
  EXPECT_EQ(encoded_hex(request{70000, "m", value::array()}),
            "84001a0001117061"
            "6d80");
  EXPECT_EQ(encoded_hex(response{7, std::nullopt, 3}), "840107f603");
  EXPECT_EQ(encoded_hex(notification{"tick", {true}}),
            "83026474696"
            "36b81f5");
  EXPECT_EQ(encoded_hex(response{1, plexus::error(errc::not_found, "no"), nullptr}),
            // [1, 1, ["no", {"code": "not_found"}], null]
            "840101"
            "82626e6f"
            "a164636f6465696e6f745f666f756e64"
            "f6");
}

TEST(WireEncode, ErrorResponseCarriesTheCodeAndANullResult) {
  const bytes b = encode_error_response(
      42, plexus::error(errc::resource_exhausted, "queue full", {{"limit", "max_queue"}}));
  auto m = decode(b);
  ASSERT_TRUE(m) << m.error().message;
  const auto& r = std::get<response>(*m);
  EXPECT_EQ(r.msgid, 42u);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, errc::resource_exhausted);
  EXPECT_EQ(r.error->message, "queue full");
  EXPECT_EQ(r.error->context, value({{"code", "resource_exhausted"}, {"limit", "max_queue"}}));
  EXPECT_TRUE(r.result.is_null());
  EXPECT_EQ(b.back(), 0xf6);
}

// ---- decoding values ----------------------------------------------------------

value roundtrip(const value& v) {
  bytes b;
  encode_value(b, v);
  auto r = decode_value(b);
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : value("decode failed");
}

TEST(WireDecode, RoundTripsEveryIntegerWidth) {
  const value ints[] = {0,
                        23,
                        24,
                        255,
                        256,
                        65535,
                        65536,
                        std::uint64_t{1} << 32,
                        std::uint64_t{1} << 63,
                        std::numeric_limits<std::uint64_t>::max(),
                        -1,
                        -24,
                        -25,
                        -65537,
                        std::numeric_limits<std::int64_t>::min()};
  for (const auto& v : ints)
    EXPECT_EQ(roundtrip(v), v) << v.dump();
}

TEST(WireDecode, UnsignedAndNegativeIntegersKeepTheirJsonTypes) {
  auto u = decode_value(from_hex("1b8000000000000000"));
  ASSERT_TRUE(u);
  EXPECT_TRUE(u->is_number_unsigned());
  EXPECT_EQ(u->get<std::uint64_t>(), std::uint64_t{1} << 63);
  auto z = decode_value(from_hex("00"));
  ASSERT_TRUE(z);
  EXPECT_TRUE(z->is_number_unsigned());
  auto n = decode_value(from_hex("3b7fffffffffffffff"));
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->is_number_integer() && !n->is_number_unsigned());
  EXPECT_EQ(n->get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
}

TEST(WireDecode, RejectsNegativeIntegersBelowInt64Min) {
  EXPECT_ERROR(value_error("3b8000000000000000"), errc::invalid_argument, "below -2^63");
  EXPECT_ERROR(value_error("3bffffffffffffffff"), errc::invalid_argument, "below -2^63");
}

TEST(WireDecode, RoundTripsFloats) {
  EXPECT_EQ(roundtrip(1.5), 1.5);
  EXPECT_EQ(roundtrip(1e300), 1e300);
  const value neg_zero = roundtrip(-0.0);
  ASSERT_TRUE(neg_zero.is_number_float());
  EXPECT_TRUE(std::signbit(neg_zero.get<double>()));
  EXPECT_TRUE(std::isnan(roundtrip(std::nan("")).get<double>()));
  EXPECT_EQ(roundtrip(std::numeric_limits<double>::infinity()).get<double>(),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(roundtrip(-std::numeric_limits<double>::infinity()).get<double>(),
            -std::numeric_limits<double>::infinity());
}

TEST(WireDecode, ReadsHalfAndSingleFloats) {
  struct float_case {
    std::string_view hex;
    double expected;
  };
  const float_case cases[] = {
      {"f93e00", 1.5},
      {"f93c00", 1.0},
      {"f9c400", -4.0},
      {"f97bff", 65504.0},
      {"f90400", 6.103515625e-05},
      {"f90001", 5.960464477539063e-08},  // smallest subnormal
      {"f97c00", std::numeric_limits<double>::infinity()},
      {"f9fc00", -std::numeric_limits<double>::infinity()},
      {"fa3fc00000", 1.5},
      {"fa47c35000", 100000.0},
      {"fb3ff8000000000000", 1.5},
  };
  for (const auto& c : cases) {
    auto r = decode_value(from_hex(c.hex));
    ASSERT_TRUE(r) << c.hex << ": " << r.error().message;
    ASSERT_TRUE(r->is_number_float()) << c.hex;
    EXPECT_EQ(r->get<double>(), c.expected) << c.hex;
  }
  auto nan = decode_value(from_hex("f97e00"));
  ASSERT_TRUE(nan);
  EXPECT_TRUE(std::isnan(nan->get<double>()));
  auto neg_zero = decode_value(from_hex("f98000"));
  ASSERT_TRUE(neg_zero);
  EXPECT_EQ(neg_zero->get<double>(), 0.0);
  EXPECT_TRUE(std::signbit(neg_zero->get<double>()));
}

TEST(WireDecode, RoundTripsTextBytesAndSimpleValues) {
  for (const value& v :
       {value(""), value("plain"), value("é日本🙂"), value(std::string(300, 'z')), bin({}),
        bin({0, 1, 0xfe, 0xff}), value(nullptr), value(true), value(false)}) {
    EXPECT_EQ(roundtrip(v), v) << v.dump();
  }
  auto b = decode_value(from_hex("43010203"));
  ASSERT_TRUE(b);
  ASSERT_TRUE(b->is_binary());
  EXPECT_EQ(b->get_binary(), value::binary_t(bytes{1, 2, 3}));
}

TEST(WireDecode, ReadsUndefinedAsNull) {
  auto r = decode_value(from_hex("f7"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is_null());
}

TEST(WireDecode, RoundTripsNestedContainers) {
  const value v = {
      {"args", {1, -2, 3.5, "four", nullptr, true, value::array(), value::object()}},
      {"deep", {{"a", {{"b", {{"c", value::array({value::array({bin({9})})})}}}}}}},
      {"ünïcode kéy", "välue"},
  };
  EXPECT_EQ(roundtrip(v), v);
}

TEST(WireDecode, RoundTripsAOneMebibyteByteString) {
  bytes big(1 << 20);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<std::uint8_t>(i * 31 + 7);
  const value v = value::binary(big);
  bytes b;
  encode_value(b, v);
  EXPECT_EQ(to_hex(bytes(b.begin(), b.begin() + 5)), "5a00100000");
  EXPECT_EQ(b.size(), big.size() + 5);
  auto r = decode_value(b);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->get_binary(), value::binary_t(big));
}

TEST(WireDecode, RejectsTruncatedItems) {
  for (std::string_view hex : {"", "18", "19ff", "1a000000", "1b00000000000000", "62c3", "43aa",
                               "82", "8201", "a1", "a16161", "f9", "fa0000", "fb00000000"}) {
    EXPECT_ERROR(value_error(hex), errc::invalid_argument, "truncated CBOR");
  }
}

TEST(WireDecode, RejectsLengthsLargerThanTheInputWithoutAllocating) {
  EXPECT_ERROR(value_error("9bffffffffffffffff"), errc::invalid_argument, "does not fit");
  EXPECT_ERROR(value_error("bbffffffffffffffff"), errc::invalid_argument, "does not fit");
  EXPECT_ERROR(value_error("5bffffffffffffffff"), errc::invalid_argument, "does not fit");
  EXPECT_ERROR(value_error("7bffffffffffffffff"), errc::invalid_argument, "does not fit");
  // Each inner array promises more elements than the bytes left after its siblings.
  EXPECT_ERROR(value_error("82 83 01 02 03"), errc::invalid_argument, "does not fit");
  EXPECT_ERROR(value_error("83 62 6161 00"), errc::invalid_argument, "truncated");
}

TEST(WireDecode, RejectsTrailingBytes) {
  EXPECT_ERROR(value_error("0100"), errc::invalid_argument, "1 trailing bytes");
  EXPECT_ERROR(value_error("80f6f6"), errc::invalid_argument, "2 trailing bytes");
}

TEST(WireDecode, RejectsReservedAndIndefiniteEncodings) {
  EXPECT_ERROR(value_error("1c"), errc::invalid_argument, "reserved additional information 28");
  EXPECT_ERROR(value_error("3d"), errc::invalid_argument, "reserved additional information 29");
  EXPECT_ERROR(value_error("fe"), errc::invalid_argument, "reserved additional information 30");
  EXPECT_ERROR(value_error("1f"), errc::invalid_argument, "malformed CBOR");
  for (std::string_view hex : {"5f41aaff", "7f6161ff", "9f01ff", "bf616101ff"}) {
    EXPECT_ERROR(value_error(hex), errc::invalid_argument, "indefinite-length");
  }
  EXPECT_ERROR(value_error("ff"), errc::invalid_argument, "break");
  EXPECT_ERROR(value_error("81ff"), errc::invalid_argument, "break");
}

TEST(WireDecode, RejectsTags) {
  EXPECT_ERROR(value_error("c11a514b67b0"), errc::invalid_argument, "CBOR tags are not supported");
  EXPECT_ERROR(value_error("82 01 d818 40"), errc::invalid_argument, "CBOR tags are not supported");
}

TEST(WireDecode, RejectsUnsupportedSimpleValues) {
  EXPECT_ERROR(value_error("e0"), errc::invalid_argument, "unsupported CBOR simple value 0");
  EXPECT_ERROR(value_error("f3"), errc::invalid_argument, "unsupported CBOR simple value 19");
  EXPECT_ERROR(value_error("f820"), errc::invalid_argument, "unsupported CBOR simple value 32");
  EXPECT_ERROR(value_error("f814"), errc::invalid_argument, "unsupported CBOR simple value 20");
}

TEST(WireDecode, RejectsMapKeysThatAreNotText) {
  EXPECT_ERROR(value_error("a10102"), errc::invalid_argument, "map keys must be text");
  EXPECT_ERROR(value_error("a1410102"), errc::invalid_argument, "map keys must be text");
  EXPECT_ERROR(value_error("a18001"), errc::invalid_argument, "map keys must be text");
}

TEST(WireDecode, RejectsDuplicateMapKeys) {
  EXPECT_ERROR(value_error("a2616101616102"), errc::invalid_argument,
               "duplicate CBOR map key \"a\"");
}

TEST(WireDecode, RejectsInvalidUtf8) {
  for (std::string_view hex :
       {"61ff", "61c3", "62c0af", "63eda080", "64f4908080", "62e282", "a161ff00", "63e08080"}) {
    EXPECT_ERROR(value_error(hex), errc::invalid_argument, "not valid UTF-8");
  }
  auto max = decode_value(from_hex("64f48fbfbf"));  // U+10FFFF is fine
  ASSERT_TRUE(max);
  EXPECT_EQ(max->get<std::string>(), "\xf4\x8f\xbf\xbf");
}

std::string nested_arrays_hex(std::size_t depth) {
  std::string hex;
  for (std::size_t i = 0; i < depth; ++i)
    hex += "81";
  return hex + "00";
}

TEST(WireDecode, EnforcesMaxNestingDepth) {
  EXPECT_TRUE(decode_value(from_hex(nested_arrays_hex(64))));
  EXPECT_ERROR(value_error(nested_arrays_hex(65)), errc::resource_exhausted, "max_nesting_depth");
  EXPECT_ERROR(value_error(nested_arrays_hex(100000)), errc::resource_exhausted,
               "max_nesting_depth (64)");
  EXPECT_ERROR(value_error("a1616181a0", {.max_nesting_depth = 2}), errc::resource_exhausted,
               "max_nesting_depth (2)");
  EXPECT_TRUE(decode_value(from_hex("a1616180"), {.max_nesting_depth = 2}));
  EXPECT_ERROR(value_error("80", {.max_nesting_depth = 0}), errc::resource_exhausted,
               "max_nesting_depth");
}

TEST(WireDecode, HandlesVeryDeepNestingWithoutRecursion) {
  const bytes deep = from_hex(nested_arrays_hex(200000));
  auto r = decode_value(deep, {.max_nesting_depth = 1'000'000});
  ASSERT_TRUE(r) << r.error().message;
  bytes again;
  encode_value(again, *r);
  EXPECT_EQ(again, deep);
}

TEST(WireDecode, EnforcesMaxMessageBytes) {
  EXPECT_TRUE(decode_value(from_hex("43010203"), {.max_message_bytes = 4}));
  EXPECT_ERROR(value_error("4401020304", {.max_message_bytes = 4}), errc::resource_exhausted,
               "max_message_bytes (4)");
  EXPECT_ERROR(value_error("4401020304", {.max_message_bytes = 4}), errc::resource_exhausted,
               "message of 5 bytes");
}

// ---- messages -------------------------------------------------------------------

template <class T>
T decode_as(const bytes& b) {
  auto m = decode(b);
  EXPECT_TRUE(m) << m.error().message;
  if (!m) return T{};
  EXPECT_TRUE(std::holds_alternative<T>(*m));
  return std::holds_alternative<T>(*m) ? std::get<T>(*m) : T{};
}

TEST(WireMessage, DecodesRequests) {
  bytes b;
  encode(b, request{4294967295u, "calc.add", {1, "two", value::object()}});
  const auto r = decode_as<request>(b);
  EXPECT_EQ(r.msgid, 4294967295u);
  EXPECT_EQ(r.method, "calc.add");
  EXPECT_EQ(r.params, value::array({1, "two", value::object()}));
}

TEST(WireMessage, DecodesResultResponses) {
  bytes b;
  encode(b, response{9, std::nullopt, {{"sum", 3}}});
  const auto r = decode_as<response>(b);
  EXPECT_EQ(r.msgid, 9u);
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.result, value({{"sum", 3}}));
}

TEST(WireMessage, DecodesErrorResponses) {
  const bytes b =
      encode_error_response(3, plexus::error(errc::unimplemented, "no streams", {{"kind", 3}}));
  const auto r = decode_as<response>(b);
  EXPECT_EQ(r.msgid, 3u);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, errc::unimplemented);
  EXPECT_EQ(r.error->message, "no streams");
  EXPECT_EQ(r.error->context["kind"], 3);
}

TEST(WireMessage, MapsAnUnknownErrorCodeToInternal) {
  bytes b;
  encode_value(b, value::array({1, 5, value::array({"nope", {{"code", "teapot"}}}), nullptr}));
  const auto r = decode_as<response>(b);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, errc::internal);
  EXPECT_EQ(r.error->message, "nope");
  EXPECT_EQ(r.error->context["code"], "teapot");
}

TEST(WireMessage, DecodesNotifications) {
  bytes b;
  encode(b, notification{"log", {"line", 1.5}});
  const auto n = decode_as<notification>(b);
  EXPECT_EQ(n.method, "log");
  EXPECT_EQ(n.params, value::array({"line", 1.5}));
}

TEST(WireMessage, EncodesAnyVariantAlternative) {
  const message ms[] = {request{1, "a", {1}}, response{2, std::nullopt, "r"},
                        notification{"n", value::array()}};
  for (const auto& m : ms) {
    bytes b;
    encode(b, m);
    auto back = decode(b);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->index(), m.index());
    bytes again;
    encode(again, *back);
    EXPECT_EQ(again, b);
  }
}

TEST(WireMessage, RejectsValuesThatAreNotMessageArrays) {
  EXPECT_ERROR(message_error(value::object()), errc::invalid_argument,
               "message must be a CBOR array, got map");
  EXPECT_ERROR(message_error(5), errc::invalid_argument, "must be a CBOR array");
  EXPECT_ERROR(message_error(value::array()), errc::invalid_argument, "empty array");
  EXPECT_ERROR(message_error(value::array({"0", 1, "m", value::array()})), errc::invalid_argument,
               "message kind must be an unsigned integer, got text");
  EXPECT_ERROR(message_error(value::array({-1, 1, "m", value::array()})), errc::invalid_argument,
               "got negative integer");
}

TEST(WireMessage, RejectsUnknownKinds) {
  EXPECT_ERROR(message_error(value::array({7, 1, "m", value::array()})), errc::invalid_argument,
               "unknown message kind 7");
  EXPECT_ERROR(message_error(value::array({3})), errc::invalid_argument, "unknown message kind 3");
}

TEST(WireMessage, RejectsWrongArity) {
  EXPECT_ERROR(message_error(value::array({0, 1, "m"})), errc::invalid_argument,
               "request must be an array of 4 elements, got 3");
  EXPECT_ERROR(message_error(value::array({0, 1, "m", value::array(), 5})), errc::invalid_argument,
               "request must be an array of 4 elements, got 5");
  EXPECT_ERROR(message_error(value::array({1, 1, nullptr})), errc::invalid_argument,
               "response must be an array of 4 elements, got 3");
  EXPECT_ERROR(message_error(value::array({2, "m", value::array(), 1})), errc::invalid_argument,
               "notification must be an array of 3 elements, got 4");
}

TEST(WireMessage, RejectsBadMsgids) {
  const std::string_view want = "msgid must be an unsigned integer below 2^32";
  EXPECT_ERROR(message_error(value::array({0, std::uint64_t{1} << 32, "m", value::array()})),
               errc::invalid_argument, want);
  EXPECT_ERROR(message_error(value::array({0, std::uint64_t{1} << 32, "m", value::array()})),
               errc::invalid_argument, "got 4294967296");
  EXPECT_ERROR(message_error(value::array({0, -1, "m", value::array()})), errc::invalid_argument,
               want);
  EXPECT_ERROR(message_error(value::array({1, "7", nullptr, nullptr})), errc::invalid_argument,
               want);
  EXPECT_ERROR(message_error(value::array({1, 1.0, nullptr, nullptr})), errc::invalid_argument,
               want);
}

TEST(WireMessage, RejectsNonTextMethods) {
  EXPECT_ERROR(message_error(value::array({0, 1, 5, value::array()})), errc::invalid_argument,
               "method must be a text string, got unsigned integer");
  EXPECT_ERROR(message_error(value::array({2, bin({0x6d}), value::array()})),
               errc::invalid_argument, "method must be a text string, got byte string");
}

TEST(WireMessage, RejectsParamsThatAreNotArrays) {
  EXPECT_ERROR(message_error(value::array({0, 1, "m", value::object()})), errc::invalid_argument,
               "params must be an array, got map");
  EXPECT_ERROR(message_error(value::array({2, "m", nullptr})), errc::invalid_argument,
               "params must be an array, got null");
}

TEST(WireMessage, RejectsMalformedErrors) {
  const std::string_view want = "error must be null or [message, context]";
  const value bad_errors[] = {
      "oops",
      5,
      value::array({"only message"}),
      value::array({"m", value::object(), 3}),
      value::array({5, value::object()}),
      value::array({"m", value::array()}),
      value::array({"m", nullptr}),
  };
  for (const auto& e : bad_errors) {
    EXPECT_ERROR(message_error(value::array({1, 1, e, nullptr})), errc::invalid_argument, want);
  }
  EXPECT_ERROR(message_error(value::array({1, 1, value::array({"m", 1}), nullptr})),
               errc::invalid_argument, "context must be a map, got unsigned integer");
  EXPECT_ERROR(
      message_error(value::array({1, 1, value::array({false, {{"code", "internal"}}}), nullptr})),
      errc::invalid_argument, "message must be a text string, got bool");
}

TEST(WireMessage, ChecksLimitsBeforeShape) {
  bytes b;
  encode(b, request{1, "m", value::array({std::string(100, 'x')})});
  auto r = decode(b, {.max_message_bytes = 64});
  ASSERT_FALSE(r);
  EXPECT_ERROR(r.error(), errc::resource_exhausted, "max_message_bytes");
}

// ---- peek --------------------------------------------------------------------

TEST(WirePeek, ReadsKindAndMsgidOfEveryMsgidWidth) {
  for (std::uint32_t id : {0u, 23u, 24u, 255u, 256u, 65535u, 65536u, 4294967295u}) {
    bytes req, resp;
    encode(req, request{id, "m", value::array()});
    encode(resp, response{id, std::nullopt, nullptr});
    const auto h1 = peek(req);
    ASSERT_TRUE(h1.has_value()) << id;
    EXPECT_EQ(h1->kind, message_kind::request);
    EXPECT_EQ(h1->msgid, id);
    const auto h2 = peek(resp);
    ASSERT_TRUE(h2.has_value()) << id;
    EXPECT_EQ(h2->kind, message_kind::response);
    EXPECT_EQ(h2->msgid, id);
  }
  bytes n;
  encode(n, notification{"n", value::array()});
  const auto h3 = peek(n);
  ASSERT_TRUE(h3.has_value());
  EXPECT_EQ(h3->kind, message_kind::notification);
  EXPECT_EQ(h3->msgid, 0u);
}

TEST(WirePeek, ReadsOnlyTheFirstBytes) {
  const auto h = peek(from_hex("84001a00010000"));  // the rest of the message is absent
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->msgid, 65536u);
  EXPECT_TRUE(peek(from_hex("8302")).has_value());
}

TEST(WirePeek, RejectsWhatCannotStartAMessage) {
  for (std::string_view hex : {"",
                               "84",
                               "8400",
                               "8401",
                               "840018",
                               "84001900",
                               "84001a000000",            // truncated
                               "84001b0000000000000001",  // 64-bit msgid
                               "840020",
                               "840060",
                               "8400f6",  // msgid not unsigned
                               "83",
                               "8300",
                               "830100",  // wrong arity
                               "8402",
                               "8403",
                               "8307",
                               "85",
                               "a1",
                               "00",
                               "9f00",  // wrong head or kind
                               "841800",
                               "8218"}) {
    EXPECT_FALSE(peek(from_hex(hex)).has_value()) << hex;
  }
}

TEST(WirePeekMethod, ReadsTheTopicOfEveryLengthWidth) {
  for (std::size_t len : {0u, 1u, 23u, 24u, 255u, 256u, 65535u, 65536u}) {
    const std::string topic(len, 't');
    bytes b;
    encode(b, notification{topic, value::array({1, "x"})});
    const auto m = peek_method(b);
    ASSERT_TRUE(m.has_value()) << len;
    EXPECT_EQ(*m, topic);
  }
}

TEST(WirePeekMethod, RejectsRequestsResponsesAndTruncatedTopics) {
  bytes req, resp;
  encode(req, request{1, "m", value::array()});
  encode(resp, response{1, std::nullopt, nullptr});
  EXPECT_FALSE(peek_method(req).has_value());
  EXPECT_FALSE(peek_method(resp).has_value());
  for (std::string_view hex : {"", "83", "8302", "830263", "83027861", "830241", "83027f", "830201",
                               "83027b00000000000000ff"}) {
    EXPECT_FALSE(peek_method(from_hex(hex)).has_value()) << hex;
  }
  EXPECT_EQ(peek_method(from_hex("8302626162")), "ab");  // params absent: still a topic
}

// ---- robustness ----------------------------------------------------------------

bytes rich_message() {
  bytes b;
  encode(b, request{123456,
                    "svc.method",
                    {0,
                     24,
                     65536,
                     std::uint64_t{1} << 40,
                     -1,
                     -1000,
                     std::int64_t{-1} << 40,
                     1.5,
                     std::nan(""),
                     "é日本",
                     bin({1, 2, 3}),
                     nullptr,
                     true,
                     false,
                     value::array({value::array({1}), value::object()}),
                     {{"a", 1}, {"b", {{"c", "d"}}}}}});
  return b;
}

TEST(WireRobustness, EveryTruncationIsATruncationError) {
  const bytes full = rich_message();
  ASSERT_TRUE(decode(full));
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = decode(std::span(full).first(n));
    ASSERT_FALSE(r) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(r.error().code, errc::invalid_argument) << n;
    EXPECT_NE(r.error().message.find("truncated"), std::string::npos)
        << n << ": " << r.error().message;
  }
}

TEST(WireRobustness, RandomMutationsDecodeToAValueOrATypedError) {
  const bytes base = rich_message();
  std::mt19937 rng(20240611);
  int decoded = 0, rejected = 0;
  for (int i = 0; i < 10000; ++i) {
    bytes b = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = rng() % b.size();
      switch (rng() % 4) {
        case 0:
          b[at] = static_cast<std::uint8_t>(rng());
          break;
        case 1:
          b[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 2:
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
          break;
        default:
          if (b.size() > 1) b.erase(b.begin() + static_cast<std::ptrdiff_t>(at));
          break;
      }
    }
    auto r = decode(b);
    if (r) {
      ++decoded;
      // Whatever decodes re-encodes to bytes that decode to the same encoding.
      bytes once, twice;
      encode(once, *r);
      auto again = decode(once);
      ASSERT_TRUE(again) << again.error().message;
      encode(twice, *again);
      EXPECT_EQ(once, twice);
    } else {
      ++rejected;
      EXPECT_TRUE(r.error().code == errc::invalid_argument ||
                  r.error().code == errc::resource_exhausted)
          << r.error().message;
      EXPECT_FALSE(r.error().message.empty());
    }
    // Where both succeed, peek agrees with decode.
    const auto h = peek(b);
    if (r && h) {
      EXPECT_EQ(static_cast<std::size_t>(h->kind), r->index());
      if (const auto* q = std::get_if<request>(&*r)) {
        EXPECT_EQ(h->msgid, q->msgid);
      }
      if (const auto* p = std::get_if<response>(&*r)) {
        EXPECT_EQ(h->msgid, p->msgid);
      }
    }
  }
  // The mutations exercise both paths.
  EXPECT_GT(decoded, 100);
  EXPECT_GT(rejected, 5000);
}

TEST(WireRobustness, RandomBytesDecodeToAValueOrATypedError) {
  std::mt19937 rng(7);
  int rejected = 0;
  for (int i = 0; i < 10000; ++i) {
    bytes b(rng() % 64);
    for (auto& c : b)
      c = static_cast<std::uint8_t>(rng());
    auto r = decode_value(b, {.max_message_bytes = 1 << 20, .max_nesting_depth = 8});
    if (!r) {
      ++rejected;
      EXPECT_TRUE(r.error().code == errc::invalid_argument ||
                  r.error().code == errc::resource_exhausted)
          << r.error().message;
    } else {
      bytes out;
      encode_value(out, *r);
      EXPECT_FALSE(out.empty());
    }
  }
  EXPECT_GT(rejected, 9000);
}

}  // namespace
}  // namespace plexus::wire
