// The Redis store against a real redis-server on loopback: round trips, pipelining, the pool,
// deadlines (a SIGSTOPped server) and reconnection (a killed and restarted server).
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "features/feature_store.h"
#include "redis_server.h"

namespace clickrt::features {
namespace {

using namespace std::chrono_literals;

// A fetched row's values; nullopt where the key was missing.
std::optional<FeatureRow> Values(const RowPtr& row) {
  return row ? std::optional<FeatureRow>(row->values()) : std::nullopt;
}
using testing::RedisServer;

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RedisServerInstalled()) {
      GTEST_SKIP() << testing::kRedisServer << " not found: apt-get install redis-server";
    }
    server_ = std::make_unique<RedisServer>();
    ASSERT_TRUE(server_->Start()) << "redis-server did not start on port " << server_->port();
  }

  std::unique_ptr<FeatureStore> Connect(int pool_size = 2, const std::string& prefix = "t:") {
    RedisOptions options;
    options.port = server_->port();
    options.pool_size = pool_size;
    options.key_prefix = prefix;
    auto store = MakeRedisStore(options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::string Where() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<RedisServer> server_;
};

Clock::time_point In(Clock::duration d) { return Clock::now() + d; }

TEST_F(RedisStoreTest, PutGetMergeAndMisses) {
  auto store = Connect();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->kind(), "redis");
  ASSERT_TRUE(store
                  ->MultiPut({{"user:1", {{"C1", "aa"}, {"I1", "3"}}},
                              {"item:7", {{"C3", "x y\tz=1"}, {"E", ""}}}},
                             In(1s))
                  .ok());
  ASSERT_TRUE(store->MultiPut({{"user:1", {{"I1", "4"}}}}, In(1s)).ok());
  auto got = store->MultiGet({"user:1", "nobody", "item:7"}, In(1s));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ(Values((*got)[0]), (FeatureRow{{"C1", "aa"}, {"I1", "4"}}));
  EXPECT_EQ((*got)[1], nullptr);
  EXPECT_EQ(Values((*got)[2]), (FeatureRow{{"C3", "x y\tz=1"}, {"E", ""}}));
  // The prefix namespaces keys: another prefix sees nothing.
  auto other = Connect(1, "other:");
  auto none = other->MultiGet({"user:1"}, In(1s));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ((*none)[0], nullptr);
}

TEST_F(RedisStoreTest, LargePipelineAndManyThreads) {
  auto store = Connect(/*pool_size=*/3);
  ASSERT_NE(store, nullptr);
  std::vector<std::pair<std::string, FeatureRow>> rows;
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    rows.push_back({"user:" + std::to_string(i), {{"C1", std::to_string(i * 7)}, {"I2", "x"}}});
    keys.push_back("user:" + std::to_string(i));
  }
  ASSERT_TRUE(store->MultiPut(rows, In(5s)).ok());
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 5; ++round) {
        auto got = store->MultiGet(keys, In(5s));
        if (!got.ok()) return;
        bool ok = got->size() == keys.size();
        for (size_t i = 0; ok && i < keys.size(); ++i) {
          ok = (*got)[i] && (*got)[i]->values().at("C1") == std::to_string(i * 7);
        }
        if (ok) ++correct;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(correct.load(), 40);
}

TEST_F(RedisStoreTest, UnreachableAddressIsUnavailableNamingHostAndPort) {
  RedisOptions options;
  options.port = testing::FreePort();
  auto store = MakeRedisStore(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(store.status().message().find("127.0.0.1:" + std::to_string(options.port)),
            std::string::npos)
      << store.status().message();
  options.pool_size = 0;
  EXPECT_EQ(MakeRedisStore(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RedisStoreTest, ReconnectsAfterTheServerRestarts) {
  auto store = Connect(/*pool_size=*/2);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MultiPut({{"k", {{"a", "1"}}}}, In(1s)).ok());
  server_->Stop();
  auto down = store->MultiGet({"k"}, In(1s));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  EXPECT_NE(down.status().message().find(Where()), std::string::npos) << down.status().message();
  EXPECT_EQ(store->MultiGet({"k"}, In(1s)).status().code(), StatusCode::kUnavailable);

  ASSERT_TRUE(server_->Start());
  // The restarted server is empty (--save ''): the call succeeds and finds nothing.
  auto up = store->MultiGet({"k"}, In(1s));
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ((*up)[0], nullptr);
  ASSERT_TRUE(store->MultiPut({{"k", {{"a", "2"}}}}, In(1s)).ok());
  auto again = store->MultiGet({"k"}, In(1s));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Values((*again)[0]), (FeatureRow{{"a", "2"}}));
}

TEST_F(RedisStoreTest, RestartBetweenCallsIsInvisibleToTheCaller) {
  auto store = Connect(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MultiGet({"k"}, In(1s)).ok());  // the pooled connection is now in use
  server_->Stop();
  ASSERT_TRUE(server_->Start());
  // The pooled connection is stale; the store retries once on a fresh one.
  auto got = store->MultiGet({"k"}, In(1s));
  EXPECT_TRUE(got.ok()) << got.status().ToString();
}

TEST_F(RedisStoreTest, LargeWriteToARestartedServerNeitherKillsTheProcessNorFails) {
  // Several MB of HSETs on a stale connection: the first write() draws a reset, the next ones
  // fail with EPIPE (SIGPIPE must not end the test process); the retry on a fresh connection
  // succeeds.
  auto store = Connect(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MultiGet({"k"}, In(1s)).ok());
  server_->Stop();
  ASSERT_TRUE(server_->Start());
  std::vector<std::pair<std::string, FeatureRow>> rows;
  for (int i = 0; i < 20000; ++i) {
    rows.push_back({"row:" + std::to_string(i), {{"payload", std::string(200, 'x')}}});
  }
  Status put = store->MultiPut(rows, In(10s));
  EXPECT_TRUE(put.ok()) << put.ToString();
  auto got = store->MultiGet({"row:19999"}, In(1s));
  ASSERT_TRUE(got.ok());
  EXPECT_NE((*got)[0], nullptr);
}

TEST_F(RedisStoreTest, StalledServerCostsNoMoreThanTheDeadline) {
  auto store = Connect(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MultiPut({{"k", {{"a", "1"}}}}, In(1s)).ok());
  server_->Pause();
  auto start = Clock::now();
  auto got = store->MultiGet({"k"}, start + 150ms);
  auto took = Clock::now() - start;
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded) << got.status().ToString();
  EXPECT_NE(got.status().message().find(Where()), std::string::npos);
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 400ms);
  // A deadline already past fails at once, without touching the network.
  EXPECT_EQ(store->MultiGet({"k"}, Clock::now() - 1ms).status().code(),
            StatusCode::kDeadlineExceeded);
  server_->Resume();
  // The timed-out connection was dropped (its reply would arrive late); the next call makes a
  // fresh one and gets the right answer.
  auto after = store->MultiGet({"k"}, In(1s));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(Values((*after)[0]), (FeatureRow{{"a", "1"}}));
}

TEST_F(RedisStoreTest, BusyPoolWaitsOnlyUntilTheDeadline) {
  auto store = Connect(/*pool_size=*/1);
  ASSERT_NE(store, nullptr);
  server_->Pause();
  std::thread holder([&] { (void)store->MultiGet({"k"}, In(500ms)); });
  std::this_thread::sleep_for(50ms);  // the holder now owns the only connection
  auto start = Clock::now();
  auto got = store->MultiGet({"k"}, start + 100ms);
  auto took = Clock::now() - start;
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(got.status().message().find("busy"), std::string::npos) << got.status().message();
  EXPECT_LT(took, 300ms);
  server_->Resume();
  holder.join();
}

}  // namespace
}  // namespace clickrt::features
