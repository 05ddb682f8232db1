#include "plexus/broker/http_routes.hpp"

#include <gtest/gtest.h>

#include <set>

namespace plexus::broker {
namespace {

value route(std::string verb, std::string pattern, std::string where = "a.cpp:1") {
  return {{"verb", verb},
          {"pattern", pattern},
          {"kind", "plain"},
          {"method", "http " + verb + " " + pattern},
          {"where", where}};
}

struct HttpRoutes : testing::Test {
  std::set<std::string> alive{"a", "b"};
  http_route_table::liveness is_alive = [this](std::string_view s) {
    return alive.count(std::string(s)) > 0;
  };
  http_route_table t;
};

TEST_F(HttpRoutes, MatchesLiteralsAndParameters) {
  ASSERT_TRUE(t.claim("a",
                      value::array({route("GET", "/api/counter/{id}"),
                                    route("GET", "/api/counter/{id}/history/{n}")}),
                      is_alive));
  auto m = t.match("GET", "/api/counter/7");
  ASSERT_EQ(m.what, http_match::outcome::found);
  EXPECT_EQ(m.route.service, "a");
  EXPECT_EQ(m.route.pattern, "/api/counter/{id}");
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>{"id", "7"}));
  m = t.match("GET", "/api/counter/x%20y/history/3");
  ASSERT_EQ(m.what, http_match::outcome::found);
  EXPECT_EQ(m.params[0].second, "x%20y");  // still encoded: the gateway decodes
  EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>{"n", "3"}));
  EXPECT_EQ(t.match("GET", "/api/counter/").what, http_match::outcome::no_route);
  EXPECT_EQ(t.match("GET", "/api/counter").what, http_match::outcome::no_route);
  EXPECT_EQ(t.match("GET", "/api/counter/7/").what, http_match::outcome::no_route);
  EXPECT_EQ(t.match("GET", "").what, http_match::outcome::no_route);
}

TEST_F(HttpRoutes, ALiteralSegmentWinsOverAParameterEarliestFirst) {
  ASSERT_TRUE(t.claim("a",
                      value::array({route("GET", "/a/{id}/x"), route("GET", "/a/new/{y}"),
                                    route("GET", "/a/{id}/{z}")}),
                      is_alive));
  EXPECT_EQ(t.match("GET", "/a/new/x").route.pattern, "/a/new/{y}");
  EXPECT_EQ(t.match("GET", "/a/7/x").route.pattern, "/a/{id}/x");
  EXPECT_EQ(t.match("GET", "/a/7/q").route.pattern, "/a/{id}/{z}");
}

TEST_F(HttpRoutes, AnotherVerbIsWrongVerbWithTheDeclaredOnesSorted) {
  ASSERT_TRUE(
      t.claim("a", value::array({route("PUT", "/x/{id}"), route("GET", "/x/{id}")}), is_alive));
  auto m = t.match("DELETE", "/x/1");
  EXPECT_EQ(m.what, http_match::outcome::wrong_verb);
  EXPECT_EQ(m.allow, "GET, PUT");
}

TEST_F(HttpRoutes, ADuplicateOfAnotherLiveServiceIsRefusedNamingBothDeclarations) {
  ASSERT_TRUE(t.claim("a", value::array({route("GET", "/x/{id}", "a.cpp:10")}), is_alive));
  auto r = t.claim("b", value::array({route("GET", "/x/{other}", "b.cpp:20")}), is_alive);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("b.cpp:20"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("a.cpp:10"), std::string::npos) << r.error().message;
  EXPECT_EQ(t.match("GET", "/x/1").route.service, "a");  // nothing changed
  // Another verb on the same pattern is another route.
  EXPECT_TRUE(t.claim("b", value::array({route("POST", "/x/{other}", "b.cpp:20")}), is_alive));
}

TEST_F(HttpRoutes, OneServiceDeclaringARouteTwiceIsRefused) {
  auto r = t.claim(
      "a", value::array({route("GET", "/x", "a.cpp:1"), route("GET", "/x", "a.cpp:2")}), is_alive);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("a.cpp:1"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("a.cpp:2"), std::string::npos) << r.error().message;
}

TEST_F(HttpRoutes, ReplicasDeclareAgainAndTheLatestListReplacesTheServicesRoutes) {
  ASSERT_TRUE(t.claim("a", value::array({route("GET", "/x"), route("GET", "/y")}), is_alive));
  ASSERT_TRUE(t.claim("a", value::array({route("GET", "/x")}), is_alive));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.match("GET", "/y").what, http_match::outcome::no_route);
}

TEST_F(HttpRoutes, AServiceWithoutWorkersKeepsItsRoutesUntilAnotherTakesThemOver) {
  ASSERT_TRUE(t.claim("a", value::array({route("GET", "/x"), route("GET", "/y")}), is_alive));
  alive.erase("a");
  EXPECT_EQ(t.match("GET", "/x").route.service, "a");  // the gateway answers it 503
  ASSERT_TRUE(t.claim("b", value::array({route("GET", "/x", "b.cpp:3")}), is_alive));
  EXPECT_EQ(t.match("GET", "/x").route.service, "b");
  EXPECT_EQ(t.match("GET", "/y").route.service, "a");
  t.forget("a");
  EXPECT_EQ(t.match("GET", "/y").what, http_match::outcome::no_route);
}

TEST_F(HttpRoutes, BadRoutesAreRefusedWithTheReasonAndWhere) {
  for (const auto& [verb, pattern, why] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"FETCH", "/x", "unknown HTTP verb"},
           {"GET", "x", "must start with '/'"},
           {"GET", "/a/{id}/{id}", "appears twice"},
           {"GET", "/a/x{id}", "whole segment"},
           {"GET", "/a/{i-d}", "letters, digits"},
           {"GET", "/a b", "spaces"},
           {"GET", "/a?b", "'?'"},
           {"GET", "/api/healthz", "the gateway's own"},
           {"GET", "/", "the gateway's own"},
           {"GET", "/_plexus/app.js", "the gateway's own"},
           {"GET", "/" + std::string(1100, 'a'), "at most 1024 bytes"},
       }) {
    auto r = t.claim("a", value::array({route(verb, pattern, "a.cpp:9")}), is_alive);
    ASSERT_FALSE(r) << verb << " " << pattern;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("a.cpp:9"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.claim("a", value("not an array"), is_alive));
  value no_method = route("GET", "/x");
  no_method.erase("method");
  EXPECT_FALSE(t.claim("a", value::array({no_method}), is_alive));
}

TEST_F(HttpRoutes, ListIsSortedByPatternThenVerb) {
  ASSERT_TRUE(t.claim(
      "a", value::array({route("POST", "/b"), route("GET", "/b"), route("GET", "/a")}), is_alive));
  auto l = t.list();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0].pattern + l[0].verb, "/aGET");
  EXPECT_EQ(l[1].pattern + l[1].verb, "/bGET");
  EXPECT_EQ(l[2].pattern + l[2].verb, "/bPOST");
}

}  // namespace
}  // namespace plexus::broker
