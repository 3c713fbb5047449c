// The ranking API's JSON fast paths against the general (DOM) ones they stand in for.
//
// The decoder takes the usual request shapes in one SAX pass and hands everything else to the
// DOM decoder. A key the DOM ignores forces that hand-over, so each body below is decoded both
// as it is and with such a key added: the answers (or errors) must be the same.
#include "server/rank_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace clickrt::server {
namespace {

std::string Describe(const StatusOr<RankRequest>& r) {
  if (!r.ok()) return "error " + r.status().ToString();
  std::string s = "model=" + r->model + " version=" + r->version + " user=" + r->user_id +
                  " k=" + std::to_string(r->k) + " context={";
  for (const auto& [k, v] : r->context) s += k + ":" + v + ";";
  s += "} candidates=[";
  for (const auto& c : r->candidates) s += c + ";";
  return s + "]";
}

TEST(RankJsonFastPath, AgreesWithTheGeneralDecoder) {
  const char* bodies[] = {
      R"({"user_id":"u1","candidates":["a","b"]})",
      R"({"model":"deepfm","version":"2","user_id":17,"context":{"I1":3,"C6":"abc","b":true},"candidates":["a",5,-7],"k":2})",
      R"({"user_id":-3,"candidates":[18446744073709551615]})",
      R"({"user_id":"u","candidates":["a"],"version":3})",
      R"({"user_id":"\u0075\"x\\","candidates":["\u00e9t\u00e9","\ud83d\ude00"]})",
      R"({"context":{"a":"1","a":"2"},"user_id":"u","candidates":["x"]})",
      R"( { "user_id" : "u" , "candidates" : [ "a" ] , "k" : 9223372036854775807 } )",
      // Each of these leaves the fast path (or is an error): the same answer either way.
      R"({"user_id":"u","candidates":["a"],"k":9223372036854775808})",
      R"({"user_id":"u","candidates":["a"],"k":0})",
      R"({"user_id":"u","candidates":["a"],"k":-1})",
      R"({"user_id":"u","candidates":["a"],"k":1.5})",
      R"({"user_id":"u","candidates":["a"],"k":"3"})",
      R"({"user_id":1.5,"candidates":["a"]})",
      R"({"user_id":1e3,"candidates":[2.0]})",
      R"({"user_id":"","candidates":["a"]})",
      R"({"user_id":true,"candidates":["a"]})",
      R"({"user_id":null,"candidates":["a"]})",
      R"({"candidates":["a"]})",
      R"({"user_id":"u"})",
      R"({"user_id":"u","candidates":[]})",
      R"({"user_id":"u","candidates":"a"})",
      R"({"user_id":"u","candidates":["a",""]})",
      R"({"user_id":"u","candidates":["a",true]})",
      R"({"user_id":"u","candidates":["a",null]})",
      R"({"user_id":"u","candidates":[["a"]]})",
      R"({"user_id":"u","candidates":[{"a":1}]})",
      R"({"user_id":"u","candidates":["a"],"context":{"x":[1]}})",
      R"({"user_id":"u","candidates":["a"],"context":{"x":{"y":1}}})",
      R"({"user_id":"u","candidates":["a"],"context":{"x":null}})",
      R"({"user_id":"u","candidates":["a"],"context":{"x":0.25}})",
      R"({"user_id":"u","candidates":["a"],"context":[]})",
      R"({"user_id":"u","candidates":["a"],"model":3})",
      R"({"user_id":"u","candidates":["a"],"version":true})",
      R"({"user_id":"u","candidates":["a"],"version":2.5})",
      R"({"user_id":"u","user_id":"v","candidates":["a"]})",
      R"({"user_id":"u","candidates":["a"],"candidates":["b"]})",
      R"({"user_id":-0,"candidates":[-0,0,-12,"x"],"k":3})",
      R"({"user_id":"u","candidates":[01]})",
      R"({"user_id":"u","candidates":[123456789012345678901]})",
      R"({"user_id":"u","candidates":[1234567890123456789]})",
      R"({"user_id":"u","candidates":[-9223372036854775808]})",
      R"({"user_id":"u","candidates":[5e2]})",
      R"({"user_id":"u","candidates":["a"],"context":{"t":true,"f":false,"n":-12,"s":"x y"}})",
      R"({"user_id":"u","candidates":["a"],"context":{"x":tru}})",
      R"({"user_id":"u","candidates":["a",]})",
      R"({"user_id":"u","candidates":["a"],})",
      R"({"user_id":"u","candidates":["a"],"context":{}})",
      R"({"user_id":"u","candidates":["a"],"context":{"a":1,}})",
      "{ \"user_id\" :\t\"u\" ,\r\n \"candidates\" : [ \"a\" , 5 ] }\n",
      R"({"user_id":"u","candidates":["tab\there"]})",
      "{\"user_id\":\"u\",\"candidates\":[\"raw\ttab\"]}",
      R"({"user_id":"u","candidates":["a"],"model":"m","version":"7","k":1})",
      R"({"user_id":"u","candidates":["a"],"version":-3})",
      R"({"user_id":"u","candidates":["a"],"k":true})",
  };
  for (const char* body : bodies) {
    SCOPED_TRACE(body);
    std::string text(body);
    const size_t open = text.find('{');
    ASSERT_NE(open, std::string::npos);
    std::string general = text;
    general.insert(open + 1, R"("zz_ignored":{"n":[1]},)");
    const auto fast = DecodeRankJson(text), slow = DecodeRankJson(general);
    EXPECT_EQ(Describe(fast), Describe(slow));
  }
  EXPECT_EQ(Describe(DecodeRankJson(R"({"model":"m","version":"2","user_id":17,)"
                                    R"("context":{"I1":3,"b":false},"candidates":["a",5],"k":1})")),
            "model=m version=2 user=17 k=1 context={I1:3;b:false;} candidates=[a;5;]");
  for (const char* bad :
       {"", "nope", "[1]", "\"s\"", "3", "{}", R"({"user_id":"u",)",
        R"({"user_id":"u","candidates":["a"]}})", R"({"user_id":"u","candidates":["a")",
        R"({"user_id":"u","candidates":["a"]} x)", "{\"user_id\":\"\xff\"}"}) {
    SCOPED_TRACE(bad);
    auto r = DecodeRankJson(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(DecodeRankJson("[1]").status().message(), "the request body must be a JSON object");
  EXPECT_EQ(DecodeRankJson("nope").status().message(), "the request body is not valid JSON");
}

TEST(RankJsonFastPath, EncoderWritesWhatTheDomWrites) {
  RankResponse r;
  r.model = "deep\"fm\\";
  r.version = "12";
  r.missing_features = 7;
  r.missing_rows = 1;
  r.candidates = 3;
  r.results = {{"a\tb\x01", 0.123f}, {"\xc3\xa9t\xc3\xa9", 1e-5f}, {"bad\xff", 0.0001f}};
  for (size_t n = 0; n <= r.results.size(); ++n) {
    RankResponse part = r;
    part.results.resize(n);
    nlohmann::json results = nlohmann::json::array();
    for (const RankResult& x : part.results) {
      results.push_back({{"ad_id", x.ad_id}, {"ctr", x.ctr}});
    }
    nlohmann::json want = {{"model", part.model},
                           {"version", part.version},
                           {"results", results},
                           {"missing_features", part.missing_features},
                           {"missing_rows", part.missing_rows},
                           {"candidates", part.candidates}};
    EXPECT_EQ(EncodeRankJson(part),
              want.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << n << " results";
  }
}

}  // namespace
}  // namespace clickrt::server
