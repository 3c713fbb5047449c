// The Prometheus text rendering, byte for byte, and updates from many threads.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace clickrt::server {
namespace {

TEST(Metrics, CounterAndGaugeText) {
  Metrics m;
  m.RegisterCounter("clickrt_requests_total", "Requests answered, by model and code.");
  m.RegisterGauge("clickrt_queue_rows", "Rows waiting in the batcher.");
  m.Increment("clickrt_requests_total", {{"model", "deepfm"}, {"code", "200"}});
  m.Increment("clickrt_requests_total", {{"model", "deepfm"}, {"code", "200"}}, 2);
  m.Increment("clickrt_requests_total", {{"model", "din"}, {"code", "503"}});
  m.Increment("clickrt_requests_total", {{"model", "din"}, {"code", "503"}}, -5);  // ignored
  m.Set("clickrt_queue_rows", {}, 12.5);
  m.Set("clickrt_queue_rows", {}, 7);
  EXPECT_EQ(m.Render(),
            "# HELP clickrt_queue_rows Rows waiting in the batcher.\n"
            "# TYPE clickrt_queue_rows gauge\n"
            "clickrt_queue_rows 7\n"
            "# HELP clickrt_requests_total Requests answered, by model and code.\n"
            "# TYPE clickrt_requests_total counter\n"
            "clickrt_requests_total{code=\"200\",model=\"deepfm\"} 3\n"
            "clickrt_requests_total{code=\"503\",model=\"din\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Metrics m;
  m.RegisterHistogram("latency_seconds", "Request latency.", {0.5, 0.001, 0.01});  // unsorted
  for (double v : {0.0005, 0.001, 0.002, 0.3, 7.0}) m.Observe("latency_seconds", {{"m", "a"}}, v);
  EXPECT_EQ(m.Render(),
            "# HELP latency_seconds Request latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{m=\"a\",le=\"0.001\"} 2\n"
            "latency_seconds_bucket{m=\"a\",le=\"0.01\"} 3\n"
            "latency_seconds_bucket{m=\"a\",le=\"0.5\"} 4\n"
            "latency_seconds_bucket{m=\"a\",le=\"+Inf\"} 5\n"
            "latency_seconds_sum{m=\"a\"} 7.3035\n"
            "latency_seconds_count{m=\"a\"} 5\n");
}

TEST(Metrics, EscapingAndInvalidNames) {
  Metrics m;
  m.RegisterCounter("odd-name", "line one\nback\\slash \"quoted\"");
  m.Increment("odd-name", {{"path", "a\"b\\c\nd"}, {"bad label", "x"}});
  EXPECT_EQ(m.Render(),
            "# HELP odd_name line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE odd_name counter\n"
            "odd_name{bad_label=\"x\",path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, UnregisteredUseTypeClashAndSpecialValues) {
  Metrics m;
  m.Increment("implicit_total");
  m.Set("implicit_total", {}, 100);  // a counter stays a counter: the gauge update is dropped
  m.Set("g", {}, std::numeric_limits<double>::infinity());
  m.Observe("h", {}, 0.2);  // default buckets
  std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE implicit_total counter\nimplicit_total 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("g +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"0.25\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 1\nh_sum 0.2\nh_count 1\n"), std::string::npos);
  EXPECT_EQ(text.find("# HELP implicit_total"), std::string::npos);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  Metrics m;
  m.RegisterCounter("c_total", "c");
  m.RegisterHistogram("h", "h", {1, 2});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 10000; ++i) {
        m.Increment("c_total", {{"shard", std::to_string(t % 2)}});
        m.Observe("h", {}, (i % 3) * 1.0);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string text = m.Render();
  EXPECT_NE(text.find("c_total{shard=\"0\"} 40000\nc_total{shard=\"1\"} 40000\n"),
            std::string::npos)
      << text;
  // i % 3: 0 -> le 1, 1 -> le 1, 2 -> le 2. Per thread 3334 zeros, 3333 ones, 3333 twos.
  EXPECT_NE(text.find("h_bucket{le=\"1\"} 53336\nh_bucket{le=\"2\"} 80000\n"
                      "h_bucket{le=\"+Inf\"} 80000\nh_sum 79992\nh_count 80000\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace clickrt::server
