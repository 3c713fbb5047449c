// The in-memory store and the feature file reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <optional>

#include "features/feature_store.h"

namespace clickrt::features {
namespace {

using namespace std::chrono_literals;

// A fetched row's values; nullopt where the key was missing.
std::optional<FeatureRow> Values(const RowPtr& row) {
  return row ? std::optional<FeatureRow>(row->values()) : std::nullopt;
}

Clock::time_point Soon() { return Clock::now() + 1s; }

std::string WriteTemp(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + "/" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(MemoryStore, GetPutMergeAndMisses) {
  auto store = MakeMemoryStore();
  ASSERT_TRUE(store.ok());
  FeatureStore& s = **store;
  EXPECT_EQ(s.kind(), "memory");
  ASSERT_TRUE(s.MultiPut({{"user:1", {{"C1", "aa"}, {"I1", "3"}}}}, Soon()).ok());
  ASSERT_TRUE(
      s.MultiPut({{"user:1", {{"I1", "4"}, {"I2", ""}}}, {"item:9", {{"C3", "x"}}}}, Soon()).ok());
  auto got = s.MultiGet({"item:9", "user:2", "user:1"}, Soon());
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ(Values((*got)[0]), (FeatureRow{{"C3", "x"}}));
  EXPECT_EQ((*got)[1], nullptr);
  EXPECT_EQ(Values((*got)[2]), (FeatureRow{{"C1", "aa"}, {"I1", "4"}, {"I2", ""}}));
  auto late = s.MultiGet({"user:1"}, Clock::now() - 1ms);
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
}

TEST(MemoryStore, RowsAreSharedAndAWriteReplacesThem) {
  auto store = MakeMemoryStore();
  ASSERT_TRUE(store.ok());
  FeatureStore& s = **store;
  ASSERT_TRUE(s.MultiPut({{"user:1", {{"C1", "aa"}}}}, Soon()).ok());
  auto first = s.MultiGet({"user:1", "user:1"}, Soon());
  ASSERT_TRUE(first.ok());
  ASSERT_NE((*first)[0], nullptr);
  EXPECT_EQ((*first)[0], (*first)[1]);  // the same stored row, not two copies
  ASSERT_TRUE(s.MultiPut({{"user:1", {{"I1", "4"}}}}, Soon()).ok());
  auto second = s.MultiGet({"user:1"}, Soon());
  ASSERT_TRUE(second.ok());
  EXPECT_NE((*second)[0], (*first)[0]);
  EXPECT_EQ(Values((*second)[0]), (FeatureRow{{"C1", "aa"}, {"I1", "4"}}));
  // A row already handed out keeps its values.
  EXPECT_EQ(Values((*first)[0]), (FeatureRow{{"C1", "aa"}}));
}

TEST(MemoryStore, ManyKeysAndMisses) {
  auto store = MakeMemoryStore();
  ASSERT_TRUE(store.ok());
  std::vector<std::pair<std::string, FeatureRow>> rows;
  auto key = [](int i) { return std::string("k").append(std::to_string(i)); };
  for (int i = 0; i < 5000; ++i) rows.push_back({key(i), {{"v", std::to_string(i)}}});
  ASSERT_TRUE((*store)->MultiPut(rows, Soon()).ok());
  std::vector<std::string> keys;
  for (int i = 0; i < 10000; i += 3) keys.push_back(key(i));
  auto got = (*store)->MultiGet(keys, Soon());
  ASSERT_TRUE(got.ok());
  for (size_t j = 0; j < keys.size(); ++j) {
    const int i = static_cast<int>(3 * j);
    if (i < 5000) {
      EXPECT_EQ(Values((*got)[j]), (FeatureRow{{"v", std::to_string(i)}})) << keys[j];
    } else {
      EXPECT_EQ((*got)[j], nullptr) << keys[j];
    }
  }
}

TEST(FeatureFile, TsvAndJsonLines) {
  std::string path =
      WriteTemp("features.tsv",
                "# a comment\n"
                "\n"
                "user:1\tC1=aa\tI1=3\tQ=a=b\r\n"
                "{\"key\": \"item:7\", \"features\": {\"C3\": \"x y\", \"I5\": 12}}\n"
                "user:2\tC1=\n");
  auto store = MakeMemoryStore();
  ASSERT_TRUE(LoadFeatureFile(path, store->get()).ok());
  auto got = (*store)->MultiGet({"user:1", "item:7", "user:2"}, Soon());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Values((*got)[0]), (FeatureRow{{"C1", "aa"}, {"I1", "3"}, {"Q", "a=b"}}));
  EXPECT_EQ(Values((*got)[1]), (FeatureRow{{"C3", "x y"}, {"I5", "12"}}));
  EXPECT_EQ(Values((*got)[2]), (FeatureRow{{"C1", ""}}));

  size_t batches = 0, rows = 0;
  ASSERT_TRUE(ReadFeatureFile(path, 2, [&](FeatureBatch& b) {
                ++batches;
                rows += b.size();
                return Status::Ok();
              }).ok());
  EXPECT_EQ(batches, 2u);
  EXPECT_EQ(rows, 3u);
}

TEST(FeatureFile, ErrorsNameFileAndLine) {
  auto store = MakeMemoryStore();
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    std::string path = WriteTemp("bad.tsv", text);
    Status s = LoadFeatureFile(path, store->get());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_NE(s.message().find(path + ": line "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  expect_error("user:1\tC1=a\nuser:2 C1=b\n", "line 2: expected <key>");
  expect_error("user:1\tC1=a\tnovalue\n", "line 1: column 3 is not <name>=<value>: 'novalue'");
  expect_error("#\nuser:1\tC1=a\tC1=b\n", "line 2: feature 'C1' given twice");
  expect_error("{\"key\": \"k\"}\n", "line 1: \"features\" must be an object");
  expect_error("{\"key\": 3, \"features\": {}}\n", "\"key\" must be a non-empty string");
  expect_error("{not json\n", "line 1: not a JSON object");
  EXPECT_EQ(LoadFeatureFile("/nonexistent/f.tsv", store->get()).code(), StatusCode::kNotFound);
}

TEST(RedisAddress, Parse) {
  auto a = ParseRedisAddress("10.0.0.5:6380");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "10.0.0.5");
  EXPECT_EQ(a->port, 6380);
  auto b = ParseRedisAddress("cache");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "cache");
  EXPECT_EQ(b->port, 6379);
  auto c = ParseRedisAddress("[::1]:7000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 7000);
  EXPECT_FALSE(ParseRedisAddress("host:99999").ok());
  EXPECT_FALSE(ParseRedisAddress("host:").ok());
  EXPECT_FALSE(ParseRedisAddress(":6379").ok());
}

}  // namespace
}  // namespace clickrt::features
