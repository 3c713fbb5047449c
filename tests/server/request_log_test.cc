// RequestLog: the sampling rate, the JSON lines, rotation and its size bound, drops when full.
#include "server/request_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace clickrt::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("clickrt_reqlog_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

// `rows` candidates: dense [rows, 3] = row + 0.5 * col, sparse [rows, 2] = 1000 * row + col.
reference::TensorMap Inputs(int64_t rows) {
  reference::TensorMap m;
  Tensor d = Tensor::Zeros(DType::kFloat32, {rows, 3}).value();
  Tensor s = Tensor::Zeros(DType::kInt64, {rows, 2}).value();
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < 3; ++c) d.data<float>()[r * 3 + c] = static_cast<float>(r) + 0.5f * c;
    for (int c = 0; c < 2; ++c) s.data<int64_t>()[r * 2 + c] = 1000 * r + c;
  }
  m["dense"] = d;
  m["sparse"] = s;
  return m;
}

TEST(RequestLog, SamplingRateIsRespected) {
  TempDir dir;
  RequestLogOptions o;
  o.dir = dir.str();
  o.rate = 0.01;
  o.seed = 7;
  auto log = RequestLog::Create(o);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  int64_t total = 0;
  for (int i = 0; i < 2000; ++i) {
    auto rows = (*log)->Sample(100);
    for (size_t k = 0; k < rows.size(); ++k) {
      ASSERT_GE(rows[k], 0);
      ASSERT_LT(rows[k], 100);
      if (k > 0) {
        ASSERT_GT(rows[k], rows[k - 1]);
      }
    }
    total += static_cast<int64_t>(rows.size());
  }
  // 200000 candidates at 1%: 2000 expected, sd ~44.5; 4 sd either side.
  EXPECT_GT(total, 1822);
  EXPECT_LT(total, 2178);
  o.rate = 0;
  EXPECT_TRUE(RequestLog::Create(o).value()->Sample(1000).empty());
  o.rate = 1;
  EXPECT_EQ(RequestLog::Create(o).value()->Sample(1000).size(), 1000u);
  o.rate = 1.5;
  EXPECT_EQ(RequestLog::Create(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(RequestLog, WritesOneJsonLinePerLoggedCandidate) {
  TempDir dir;
  RequestLogOptions o;
  o.dir = dir.str();
  o.rate = 1;
  auto log = RequestLog::Create(o).value();
  log->Log("deepfm", "2", "u7", {"a0", "a1", "a2"}, Inputs(3), {0, 2}, {0.25f, 0.75f});
  log->Flush();
  auto lines = Lines(log->path());
  ASSERT_EQ(lines.size(), 2u);
  json j = json::parse(lines[1]);
  EXPECT_EQ(j["model"], "deepfm");
  EXPECT_EQ(j["version"], "2");
  EXPECT_EQ(j["user_id"], "u7");
  EXPECT_EQ(j["ad_id"], "a2");
  EXPECT_EQ(j["ctr"].get<float>(), 0.75f);
  EXPECT_EQ(j["inputs"]["dense"], json({2.0, 2.5, 3.0}));
  EXPECT_EQ(j["inputs"]["sparse"], json({2000, 2001}));
  EXPECT_GT(j["time"].get<double>(), 1.7e9);
  EXPECT_EQ(log->stats().written, 2);
}

TEST(RequestLog, RotatesAndDropsTheOldestFile) {
  TempDir dir;
  RequestLogOptions o;
  o.dir = dir.str();
  o.rate = 1;
  o.max_bytes = 6000;
  o.files = 3;  // 2000 bytes a file
  auto log = RequestLog::Create(o).value();
  const int64_t n = 200;
  std::vector<std::string> ads;
  std::vector<int64_t> rows;
  std::vector<float> ctrs;
  for (int64_t i = 0; i < n; ++i) {
    ads.push_back("ad" + std::to_string(i));
    rows.push_back(i);
    ctrs.push_back(0.001f * i);
  }
  auto in = Inputs(n);
  for (int64_t i = 0; i < n; ++i) {  // one record per call, in order
    log->Log("m", "1", "u", ads, in, {i}, {ctrs[i]});
  }
  log->Flush();
  const std::string p = log->path();
  int64_t total = 0;
  for (const std::string& f : {p, p + ".1", p + ".2"}) {
    ASSERT_TRUE(fs::exists(f)) << f;
    EXPECT_LE(fs::file_size(f), 2000u) << f;
    total += static_cast<int64_t>(fs::file_size(f));
  }
  EXPECT_FALSE(fs::exists(p + ".3"));
  EXPECT_LE(total, o.max_bytes);
  EXPECT_GT(log->stats().rotations, 3);
  // The newest record is the last line of requests.log; .1 holds the records just before.
  auto cur = Lines(p), prev = Lines(p + ".1");
  ASSERT_FALSE(cur.empty());
  ASSERT_FALSE(prev.empty());
  EXPECT_EQ(json::parse(cur.back())["ad_id"], "ad199");
  const std::string first_cur = json::parse(cur.front())["ad_id"];
  const std::string last_prev = json::parse(prev.back())["ad_id"];
  EXPECT_EQ(std::stoi(first_cur.substr(2)), std::stoi(last_prev.substr(2)) + 1);
}

TEST(RequestLog, FullQueueDropsAndCounts) {
  TempDir dir;
  RequestLogOptions o;
  o.dir = dir.str();
  o.rate = 1;
  o.max_queue = 10;
  auto log = RequestLog::Create(o).value();
  const int64_t n = 500;
  std::vector<std::string> ads(n, "x");
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < n; ++i) rows.push_back(i);
  log->Log("m", "1", "u", ads, Inputs(n), rows, std::vector<float>(n, 0.5f));
  log->Flush();
  const auto s = log->stats();
  EXPECT_EQ(s.sampled, n);
  EXPECT_EQ(s.written, 10);
  EXPECT_EQ(s.dropped, n - 10);
  EXPECT_EQ(Lines(log->path()).size(), 10u);
}

}  // namespace
}  // namespace clickrt::server
