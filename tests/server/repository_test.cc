// The model repository (errors name the path) and an in-process server over models/deepfm.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "grpc_predict_v2.grpc.pb.h"
#include "server/model_repository.h"
#include "server/server.h"
#include "server/server_metrics.h"

namespace clickrt::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kDeepfm = fs::path(CLICKRT_SOURCE_DIR) / "models" / "deepfm";

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("clickrt_repo_test_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// <repo>/deepfm/<version>/ with the model, its schema and `config`.
void AddDeepfm(const fs::path& repo, const std::string& version, const std::string& config = "") {
  const fs::path d = repo / "deepfm" / version;
  fs::create_directories(d);
  fs::copy_file(kDeepfm / "model.onnx", d / "model.onnx");
  fs::copy_file(kDeepfm / "schema.json", d / "schema.json");
  if (!config.empty()) Write(d / "config.json", config);
}

TEST(ModelConfig, ParsesAndRejectsTypos) {
  auto c = ParseModelConfig(R"({"max_batch": 64, "preferred_batch_sizes": [16, 32],
                                "max_queue_delay_us": 100, "instance_count": 2})",
                            "c.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->max_batch, 64);
  EXPECT_EQ(c->preferred_batch_sizes, (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(c->instance_count, 2);
  auto typo = ParseModelConfig(R"({"max_bacth": 64})", "c.json");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(), "c.json: unknown key \"max_bacth\"");
  EXPECT_FALSE(ParseModelConfig(R"({"max_batch": -1})", "c.json").ok());
  EXPECT_FALSE(ParseModelConfig(R"({"preferred_batch_sizes": [32, 16]})", "c.json").ok());
  EXPECT_FALSE(ParseModelConfig("{", "c.json").ok());
}

TEST(ModelRepository, ErrorsNameThePath) {
  RepositoryOptions o;
  {
    TempDir t;
    auto r = ModelRepository::Load(t.path().string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("holds no model"), std::string::npos);
  }
  {
    TempDir t;
    fs::create_directories(t.path() / "m" / "latest");
    auto r = ModelRepository::Load(t.path().string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("m/latest: a version folder must be named by a positive"),
              std::string::npos)
        << r.status().message();
  }
  {
    TempDir t;
    fs::create_directories(t.path() / "m" / "1");
    auto r = ModelRepository::Load(t.path().string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("m/1: holds neither model.engine nor model.onnx"),
              std::string::npos);
  }
  {
    TempDir t;
    AddDeepfm(t.path(), "1", R"({"max_batch": "big"})");
    auto r = ModelRepository::Load(t.path().string(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("deepfm/1/config.json: \"max_batch\" must be an integer"),
              std::string::npos)
        << r.status().message();
  }
  {
    TempDir t;
    AddDeepfm(t.path(), "1", R"({"max_batch": 4096, "build_max_batch": 64})");
    auto r = ModelRepository::Load(t.path().string(), o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();  // the build follows max_batch
    EXPECT_EQ((*r)->Find("deepfm", "").value()->config.max_batch, 4096);
  }
}

TEST(Server, HttpAndGrpcAgreeAndRankUsesTheStore) {
  TempDir t;
  AddDeepfm(t.path(), "1", R"({"max_batch": 64})");
  AddDeepfm(t.path(), "3", R"({"max_batch": 64})");
  auto metrics = std::make_shared<Metrics>();
  metric::RegisterServerMetrics(metrics.get());
  RepositoryOptions ro;
  ro.metrics = metrics.get();
  auto repo = ModelRepository::Load(t.path().string(), ro);
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  EXPECT_EQ((*repo)->Versions("deepfm"), (std::vector<std::string>{"3", "1"}));
  auto store = features::MakeMemoryStore();
  ASSERT_TRUE(store.ok());
  features::FeatureRow user = {{"C1", "249e0d00"}, {"I4", "3"}};
  features::FeatureRow item_a = {{"C3", "b3b9c9b8"}}, item_b = {{"C3", "nope"}};
  ASSERT_TRUE((*store)
                  ->MultiPut({{"user:u1", user}, {"item:a", item_a}, {"item:b", item_b}},
                             features::Clock::now() + std::chrono::seconds(1))
                  .ok());
  ServerOptions so;
  so.http_port = 0;
  so.grpc_port = 0;
  auto srv = Server::Start(so, std::move(repo).value(), std::move(store).value(), metrics);
  ASSERT_TRUE(srv.ok()) << srv.status().ToString();

  httplib::Client http("127.0.0.1", (*srv)->http_port());
  // 130 rows: split into three batches of at most 64 and joined back in order.
  json dense = json::array(), sparse = json::array();
  for (int i = 0; i < 130; ++i) {
    json d = json::array(), s = json::array();
    for (int k = 0; k < 13; ++k) d.push_back(0.1 * ((i + k) % 7));
    for (int k = 0; k < 26; ++k) s.push_back((i * 7 + k) % 4);
    dense.push_back(d);
    sparse.push_back(s);
  }
  json body = {
      {"inputs",
       {{{"name", "dense"}, {"datatype", "FP32"}, {"shape", {130, 13}}, {"data", dense}},
        {{"name", "sparse"}, {"datatype", "INT64"}, {"shape", {130, 26}}, {"data", sparse}}}}};
  auto res = http.Post("/v2/models/deepfm/infer", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json out = json::parse(res->body);
  EXPECT_EQ(out["model_version"], "3");
  const auto probs = out["outputs"][0]["data"].get<std::vector<float>>();
  ASSERT_EQ(probs.size(), 130u);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*srv)->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(channel);
  inference::ModelInferRequest req;
  req.set_model_name("deepfm");
  req.set_model_version("1");
  auto* d = req.add_inputs();
  d->set_name("dense");
  d->set_datatype("FP32");
  d->add_shape(130);
  d->add_shape(13);
  auto* s = req.add_inputs();
  s->set_name("sparse");
  s->set_datatype("INT64");
  s->add_shape(130);
  s->add_shape(26);
  for (const auto& row : dense)
    for (const auto& v : row) d->mutable_contents()->add_fp32_contents(v.get<float>());
  for (const auto& row : sparse)
    for (const auto& v : row) s->mutable_contents()->add_int64_contents(v.get<int64_t>());
  inference::ModelInferResponse resp;
  grpc::ClientContext ctx;
  grpc::Status st = stub->ModelInfer(&ctx, req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.model_version(), "1");
  ASSERT_EQ(resp.outputs(0).contents().fp32_contents_size(), 130);
  for (int i = 0; i < 130; ++i)
    EXPECT_EQ(resp.outputs(0).contents().fp32_contents(i), probs[i]) << i;

  // Ranking: a, b and a missing ad c; ties are broken by id, missing rows counted.
  auto r =
      http.Post("/v1/rank", R"({"user_id":"u1","candidates":["c","b","a"],"context":{"I1":2}})",
                "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json ranked = json::parse(r->body);
  EXPECT_EQ(ranked["candidates"], 3);
  EXPECT_EQ(ranked["missing_rows"], 1);
  ASSERT_EQ(ranked["results"].size(), 3u);
  // b (unknown token) and c (no row) assemble to the same inputs: equal scores, b before c.
  std::vector<std::string> order;
  for (const auto& x : ranked["results"]) order.push_back(x["ad_id"]);
  auto pos = [&](const std::string& id) {
    return std::find(order.begin(), order.end(), id) - order.begin();
  };
  EXPECT_LT(pos("b"), pos("c"));
  auto bad = http.Post("/v1/rank", R"({"user_id":"u1","candidates":["a"],"context":{"nope":1}})",
                       "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("context.nope is not a schema field"), std::string::npos) << bad->body;
  auto m = http.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(
      m->body.find(
          R"(clickrt_request_failures_total{code="400",endpoint="rank",model="deepfm",protocol="http",reason="invalid_argument",version="3"} 1)"),
      std::string::npos)
      << m->body.substr(0, 3000);
  (*srv)->Shutdown();
}

}  // namespace
}  // namespace clickrt::server
