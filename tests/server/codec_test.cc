// The request decoders: KServe JSON, KServe protobuf, ranking JSON.
#include <gtest/gtest.h>

#include <cstring>

#include "server/kserve_codec.h"
#include "server/kserve_proto_codec.h"
#include "server/rank_codec.h"

namespace clickrt::server {
namespace {

TEST(KServeJson, DecodesFlatAndNestedData) {
  auto r = DecodeInferJson(R"({"id":"r1","inputs":[
      {"name":"dense","datatype":"FP32","shape":[2,2],"data":[[1.5,2],[3,4]]},
      {"name":"sparse","datatype":"INT64","shape":[2,1],"data":[7,9]}],
      "outputs":[{"name":"prob"}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, "r1");
  const Tensor& d = r->inputs.at("dense");
  EXPECT_EQ(d.dims(), (Dims{2, 2}));
  EXPECT_FLOAT_EQ(d.data<float>()[0], 1.5f);
  EXPECT_FLOAT_EQ(d.data<float>()[3], 4.0f);
  EXPECT_EQ(r->inputs.at("sparse").data<int64_t>()[1], 9);
  EXPECT_EQ(r->outputs, std::vector<std::string>{"prob"});
}

TEST(KServeJson, ErrorsNameWhatAndWhere) {
  struct Case {
    const char* body;
    const char* expect;
  } cases[] = {
      {"{not json", "not valid JSON"},
      {"[]", "JSON object"},
      {R"({"inputs":[]})", "non-empty array"},
      {R"({"inputs":[{"name":"x","datatype":"FP99","shape":[1],"data":[1]}]})", "FP99"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1]}]})",
       "inputs[0] ('x').data holds 1 values, shape [2] needs 2"},
      {R"({"inputs":[{"name":"x","datatype":"INT64","shape":[1],"data":[1.5]}]})",
       "not an integer"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["a"]}]})", "not a number"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[]}]})", "negative"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[100000,100000,100000],"data":[]}]})",
       "exceeds"},
      {R"({"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[300]}]})", "does not fit"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},
                     {"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
       "given twice"},
  };
  for (const Case& c : cases) {
    auto r = DecodeInferJson(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.body << " -> " << r.status().message();
  }
}

TEST(KServeJson, DeepNestingIsRefusedNotRecursed) {
  std::string deep = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)";
  deep += std::string(5000, '[') + "1" + std::string(5000, ']') + "}]}";
  auto r = DecodeInferJson(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested deeper"), std::string::npos);
}

TEST(KServeJson, EncodesRequestedOutputs) {
  reference::TensorMap out;
  out["prob"] = Tensor::FromVector<float>({2, 1}, {0.25f, 0.5f});
  auto s = EncodeInferJson("m", "3", "id7", out, {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, R"({"id":"id7","model_name":"m","model_version":"3","outputs":[{"data":[0.25,0.5],)"
                R"("datatype":"FP32","name":"prob","shape":[2,1]}]})");
  EXPECT_FALSE(EncodeInferJson("m", "3", "", out, {"nope"}).ok());
}

TEST(KServeProto, TypedAndRawContents) {
  inference::ModelInferRequest req;
  auto* a = req.add_inputs();
  a->set_name("dense");
  a->set_datatype("FP32");
  a->add_shape(1);
  a->add_shape(2);
  a->mutable_contents()->add_fp32_contents(1.f);
  a->mutable_contents()->add_fp32_contents(2.f);
  auto r = DecodeInferProto(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->raw);
  EXPECT_FLOAT_EQ(r->inputs.at("dense").data<float>()[1], 2.f);

  a->clear_contents();
  const float v[2] = {3.f, 4.f};
  req.add_raw_input_contents(std::string(reinterpret_cast<const char*>(v), sizeof(v)));
  r = DecodeInferProto(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->raw);
  EXPECT_FLOAT_EQ(r->inputs.at("dense").data<float>()[0], 3.f);

  req.set_raw_input_contents(0, "abc");
  r = DecodeInferProto(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has 3 bytes"), std::string::npos) << r.status().message();

  inference::ModelInferResponse resp;
  InferRequest raw_req;
  raw_req.raw = true;
  reference::TensorMap out;
  out["prob"] = Tensor::FromVector<float>({1, 1}, {0.75f});
  ASSERT_TRUE(EncodeInferProto("m", "1", raw_req, out, &resp).ok());
  ASSERT_EQ(resp.raw_output_contents_size(), 1);
  float f;
  std::memcpy(&f, resp.raw_output_contents(0).data(), 4);
  EXPECT_FLOAT_EQ(f, 0.75f);
}

TEST(KServeProto, WrongContentsFieldOrCountIsAnError) {
  inference::ModelInferRequest req;
  auto* a = req.add_inputs();
  a->set_name("sparse");
  a->set_datatype("INT64");
  a->add_shape(2);
  a->mutable_contents()->add_int64_contents(1);
  auto r = DecodeInferProto(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("int64_contents holds 1 values"), std::string::npos);
  a->mutable_contents()->add_fp32_contents(1.f);
  a->mutable_contents()->add_int64_contents(2);
  r = DecodeInferProto(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("more than one contents field"), std::string::npos);
}

TEST(RankJson, DecodesAndValidates) {
  auto r = DecodeRankJson(
      R"({"model":"deepfm","user_id":17,"context":{"I1":3,"C6":"abc"},"candidates":["a",5],"k":1})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->user_id, "17");
  EXPECT_EQ(r->context.at("I1"), "3");
  EXPECT_EQ(r->context.at("C6"), "abc");
  EXPECT_EQ(r->candidates, (std::vector<std::string>{"a", "5"}));
  EXPECT_EQ(r->k, 1);
  for (const char* bad :
       {R"({"candidates":["a"]})", R"({"user_id":"u","candidates":[]})",
        R"({"user_id":"u","candidates":"a"})", R"({"user_id":"u","candidates":["a"],"k":0})",
        R"({"user_id":"u","candidates":["a"],"context":{"x":[1]}})",
        R"({"user_id":true,"candidates":["a"]})", "nope"}) {
    auto b = DecodeRankJson(bad);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(RankJson, EncodesResults) {
  RankResponse r;
  r.model = "m";
  r.version = "2";
  r.results = {{"b", 0.5f}, {"a", 0.25f}};
  r.candidates = 2;
  EXPECT_EQ(EncodeRankJson(r),
            R"({"candidates":2,"missing_features":0,"missing_rows":0,"model":"m","results":)"
            R"([{"ad_id":"b","ctr":0.5},{"ad_id":"a","ctr":0.25}],"version":"2"})");
}

}  // namespace
}  // namespace clickrt::server
