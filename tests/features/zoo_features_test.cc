// The bundled feature files (python/make_features.py): loaded into a store and assembled the way
// the server does it, layers {request context, item row, user row}, they reproduce every
// val.tsv row's tensors exactly (val_inputs/*.pb).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "features/feature_store.h"
#include "features/tsv_rows.h"
#include "redis_server.h"
#include "zoo_rows.h"

namespace clickrt::features {
namespace {

using namespace std::chrono_literals;

struct FeatureSplit {
  std::vector<std::string> user, item, context;
  std::vector<int64_t> item_of_line;
};

FeatureSplit ReadSplit(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json doc = nlohmann::json::parse(in);
  return {doc["user"], doc["item"], doc["context"], doc["item_of_line"]};
}

// Assembles every val.tsv line from `store` plus the line's own context fields.
void ExpectFeatureFileReproducesValInputs(const std::string& model, FeatureStore* store) {
  const std::string dir = testing::kModels + model;
  auto schema = Schema::Load(dir + "/schema.json");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  FeatureSplit split = ReadSplit(dir + "/features.json");
  auto layout = ReadTsvLayout(dir + "/schema.json");
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  auto raw_rows = ReadTsvRows(dir + "/val.tsv", *layout);
  ASSERT_TRUE(raw_rows.ok()) << raw_rows.status().ToString();
  const std::vector<FeatureRow>& raw = *raw_rows;
  ASSERT_EQ(raw.size(), split.item_of_line.size());

  std::vector<std::string> keys;
  for (size_t n = 1; n <= raw.size(); ++n) {
    keys.push_back("user:" + std::to_string(n));
    keys.push_back("item:" + std::to_string(split.item_of_line[n - 1]));
  }
  auto rows = store->MultiGet(keys, Clock::now() + 5s);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  std::vector<EncodedRowPtr> encoded;
  AssemblyLayers layers;
  layers.depth = 3;
  for (size_t i = 0; i < raw.size(); ++i) {
    FeatureRow context;
    for (const auto& name : split.context) context[name] = raw[i].at(name);
    const RowPtr& user = (*rows)[2 * i];
    const RowPtr& item = (*rows)[2 * i + 1];
    ASSERT_NE(user, nullptr) << keys[2 * i];
    ASSERT_NE(item, nullptr) << keys[2 * i + 1];
    // Each stored row holds only its own side's fields.
    for (const auto& [name, value] : item->values()) {
      ASSERT_NE(std::find(split.item.begin(), split.item.end(), name), split.item.end()) << name;
    }
    for (EncodedRowPtr e :
         {(*schema)->Encode(context), (*schema)->Encoded(*item), (*schema)->Encoded(*user)}) {
      layers.rows.push_back(e.get());
      encoded.push_back(std::move(e));
    }
  }
  auto got = (*schema)->Assemble(layers, nullptr);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  testing::ExpectSameAsPython(got.value(), model, (*schema)->input_names());
}

class ZooFeatures : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooFeatures, SplitCoversEverySchemaFieldOnce) {
  const std::string dir = testing::kModels + GetParam();
  FeatureSplit split = ReadSplit(dir + "/features.json");
  std::multiset<std::string> named;
  for (const auto* side : {&split.user, &split.item, &split.context}) {
    named.insert(side->begin(), side->end());
  }
  auto schema = Schema::Load(dir + "/schema.json");
  ASSERT_TRUE(schema.ok());
  auto fields = (*schema)->field_names();
  EXPECT_EQ(named, std::multiset<std::string>(fields.begin(), fields.end()));
  struct stat st {};
  ASSERT_EQ(stat((dir + "/features.tsv").c_str(), &st), 0);
  EXPECT_LT(st.st_size, 2 << 20);
}

TEST_P(ZooFeatures, MemoryStoreReproducesValInputs) {
  auto store = MakeMemoryStore();
  ASSERT_TRUE(store.ok());
  Status loaded = LoadFeatureFile(testing::kModels + GetParam() + "/features.tsv", store->get());
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  ExpectFeatureFileReproducesValInputs(GetParam(), store->get());
}

TEST_P(ZooFeatures, RedisStoreReproducesValInputs) {
  if (!testing::RedisServerInstalled()) GTEST_SKIP() << testing::kRedisServer << " not found";
  testing::RedisServer server;
  ASSERT_TRUE(server.Start());
  RedisOptions options;
  options.port = server.port();
  options.key_prefix = "zoo:";
  auto store = MakeRedisStore(options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status loaded = LoadFeatureFile(testing::kModels + GetParam() + "/features.tsv", store->get());
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  ExpectFeatureFileReproducesValInputs(GetParam(), store->get());
}

INSTANTIATE_TEST_SUITE_P(Models, ZooFeatures,
                         ::testing::Values("deepfm", "dcnv2", "din", "wide_deep"));

}  // namespace
}  // namespace clickrt::features
