#include "plexus/wire/cbor.hpp"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "support/bytes.hpp"

// The general CBOR codec: byte-for-byte what cbor2 writes, and strict decoding.

namespace plexus::wire {
namespace {

using test::bin, test::bytes, test::from_hex, test::to_hex;

std::string encoded_hex(const value& v) {
  bytes out;
  encode_value(out, v);
  return to_hex(out);
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

// A value and the hex of its encoding.
struct encoding {
  value v;
  std::string hex;
};

void expect_encodings(std::initializer_list<encoding> cases) {
  for (const auto& c : cases)
    EXPECT_EQ(encoded_hex(c.v), c.hex) << c.v.dump();
}

// Inputs that decode_value refuses, each with what its error message says.
struct refused {
  std::string_view hex;
  std::string_view says;
};

void expect_refused(std::initializer_list<refused> cases, errc code = errc::invalid_argument) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.hex);
    EXPECT_ERROR(value_error(c.hex), code, c.says);
  }
}

// ---- encoding: byte-for-byte what cbor2 writes ------------------------------------

TEST(WireEncode, IntegersUseTheShortestHead) {
  expect_encodings({
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
  });
}

TEST(WireEncode, SignedAndUnsignedJsonNumbersEncodeAlike) {
  EXPECT_EQ(encoded_hex(value(std::int64_t{65536})), encoded_hex(value(std::uint64_t{65536})));
}

TEST(WireEncode, FloatsAreDoublesExceptNanAndInfinities) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  constexpr double inf = std::numeric_limits<double>::infinity();
  expect_encodings({{1.5, "fb3ff8000000000000"},
                    {-0.0, "fb8000000000000000"},
                    {0.0, "fb0000000000000000"},
                    {2.0, "fb4000000000000000"},
                    {0.1, "fb3fb999999999999a"},
                    {1e300, "fb7e37e43c8800759c"},
                    {nan, "f97e00"},
                    {-nan, "f97e00"},
                    {inf, "f97c00"},
                    {-inf, "f9fc00"}});
}

TEST(WireEncode, TextBytesAndSimpleValues) {
  std::string x24_hex;
  for (int i = 0; i < 24; ++i)
    x24_hex += "78";
  expect_encodings({{"", "60"},
                    {"a", "6161"},
                    {"é", "62c3a9"},
                    {"日本", "66e697a5e69cac"},
                    {"🙂", "64f09f9982"},
                    {std::string(24, 'x'), "7818" + x24_hex},
                    {bin({}), "40"},
                    {bin({0x00, 0xff}), "4200ff"},
                    {value::binary(bytes{1, 2}, 42), "420102"},  // subtype dropped
                    {nullptr, "f6"},
                    {true, "f5"},
                    {false, "f4"}});
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
  expect_refused({{"3b8000000000000000", "below -2^63"}, {"3bffffffffffffffff", "below -2^63"}});
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
  expect_refused({{"9bffffffffffffffff", "does not fit"},
                  {"bbffffffffffffffff", "does not fit"},
                  {"5bffffffffffffffff", "does not fit"},
                  {"7bffffffffffffffff", "does not fit"},
                  // Each inner array promises more elements than the bytes left after its
                  // siblings.
                  {"82 83 01 02 03", "does not fit"},
                  {"83 62 6161 00", "truncated"}});
}

TEST(WireDecode, RejectsTrailingBytes) {
  expect_refused({{"0100", "1 trailing bytes"}, {"80f6f6", "2 trailing bytes"}});
}

TEST(WireDecode, RejectsReservedAndIndefiniteEncodings) {
  expect_refused({{"1c", "reserved additional information 28"},
                  {"3d", "reserved additional information 29"},
                  {"fe", "reserved additional information 30"},
                  {"1f", "malformed CBOR"},
                  {"5f41aaff", "indefinite-length"},
                  {"7f6161ff", "indefinite-length"},
                  {"9f01ff", "indefinite-length"},
                  {"bf616101ff", "indefinite-length"},
                  {"ff", "break"},
                  {"81ff", "break"}});
}

TEST(WireDecode, RejectsTags) {
  expect_refused({{"c11a514b67b0", "CBOR tags are not supported"},
                  {"82 01 d818 40", "CBOR tags are not supported"}});
}

TEST(WireDecode, RejectsUnsupportedSimpleValues) {
  expect_refused({{"e0", "unsupported CBOR simple value 0"},
                  {"f3", "unsupported CBOR simple value 19"},
                  {"f820", "unsupported CBOR simple value 32"},
                  {"f814", "unsupported CBOR simple value 20"}});
}

TEST(WireDecode, RejectsMapKeysThatAreNotText) {
  expect_refused({{"a10102", "map keys must be text"},
                  {"a1410102", "map keys must be text"},
                  {"a18001", "map keys must be text"}});
}

TEST(WireDecode, RejectsDuplicateMapKeys) {
  expect_refused({{"a2616101616102", "duplicate CBOR map key \"a\""}});
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

// ---- robustness ----------------------------------------------------------------

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
