// The calibration cache: bit-exact round trip, a named error for every key field that differs,
// DataLoss naming the line of a malformed file, atomic replacement.
#include "quant/calibration_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace clickrt::quant {
namespace {
namespace fs = std::filesystem;

class CacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("clickrt_calib_cache_" + std::to_string(getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "model.calib").string();
    key_.model_sha256 = std::string(64, 'a');
    key_.calibrator = "entropy";
    key_.calibrator_param = "bins=2048,levels=128";
    key_.clickrt_version = "0.1.0";
    key_.batch_size = 256;
    key_.rows = 2000;
    key_.data_sha256 = std::string(63, '0') + "f";
    table_.calibrator = "entropy";
    table_.param = "bins=2048,levels=128";
    table_.rows = 2000;
    // Values that a decimal round trip could get wrong.
    table_.scale["/Concat_output_0"] = 1.0f / 3.0f;
    table_.amax["/Concat_output_0"] = 42.123456789f;
    table_.clipped["/Concat_output_0"] = 0.0279912f;
    table_.scale["a name with spaces"] = std::numeric_limits<float>::denorm_min();
    table_.amax["a name with spaces"] = 0.f;
    table_.clipped["a name with spaces"] = 1.f;
    table_.scale["big"] = std::numeric_limits<float>::max();
    table_.amax["big"] = std::nextafter(1.f, 2.f);
    table_.clipped["big"] = 0.f;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Text() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void WriteText(const std::string& text) const { std::ofstream(path_, std::ios::trunc) << text; }

  fs::path dir_;
  std::string path_;
  CalibrationKey key_;
  CalibrationTable table_;
};

bool BitEqual(const std::map<std::string, float>& a, const std::map<std::string, float>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || std::memcmp(&v, &it->second, sizeof v) != 0) return false;
  }
  return true;
}

TEST_F(CacheTest, RoundTripIsBitExact) {
  ASSERT_TRUE(SaveCalibrationCache(path_, key_, table_, "models/deepfm/val.tsv (tsv)").ok());
  auto t = LoadCalibrationCache(path_, key_);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(BitEqual(t->scale, table_.scale));
  EXPECT_TRUE(BitEqual(t->amax, table_.amax));
  EXPECT_TRUE(BitEqual(t->clipped, table_.clipped));
  EXPECT_EQ(t->calibrator, "entropy");
  EXPECT_EQ(t->param, key_.calibrator_param);
  EXPECT_EQ(t->rows, 2000);
  auto f = ReadCalibrationCache(path_);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->key, key_);
  EXPECT_EQ(f->data, "models/deepfm/val.tsv (tsv)");
  // The documented layout.
  const std::string text = Text();
  EXPECT_EQ(text.rfind("clickrt-calibration-cache 1\nmodel_sha256 " + key_.model_sha256 + "\n", 0),
            0u);
  EXPECT_NE(text.find("\ntensor\t/Concat_output_0\t0x1.555556p-2\t"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 4), "end\n");
}

TEST_F(CacheTest, EveryKeyFieldMismatchIsNamed) {
  ASSERT_TRUE(SaveCalibrationCache(path_, key_, table_, "").ok());
  struct Case {
    const char* field;
    std::function<void(CalibrationKey&)> change;
  };
  const std::vector<Case> cases = {
      {"model_sha256", [](CalibrationKey& k) { k.model_sha256 = std::string(64, 'b'); }},
      {"calibrator", [](CalibrationKey& k) { k.calibrator = "minmax"; }},
      {"calibrator_param", [](CalibrationKey& k) { k.calibrator_param = "bins=1024,levels=128"; }},
      {"clickrt_version", [](CalibrationKey& k) { k.clickrt_version = "0.2.0"; }},
      {"batch_size", [](CalibrationKey& k) { k.batch_size = 512; }},
      {"rows", [](CalibrationKey& k) { k.rows = 1999; }},
      {"data_sha256", [](CalibrationKey& k) { k.data_sha256 = std::string(64, 'c'); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    CalibrationKey expected = key_;
    c.change(expected);
    auto t = LoadCalibrationCache(path_, expected);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kFailedPrecondition);
    const std::string& m = t.status().message();
    EXPECT_NE(m.find(std::string(c.field) + ": expected '"), std::string::npos) << m;
    EXPECT_NE(m.find(path_), std::string::npos) << m;
    // Only that field is named.
    EXPECT_EQ(m.find(";"), std::string::npos) << m;
  }
  CalibrationKey two = key_;
  two.batch_size = 1;
  two.rows = 1;
  auto t = LoadCalibrationCache(path_, two);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(
                "batch_size: expected '1', found '256'; rows: expected '1', found '2000'"),
            std::string::npos)
      << t.status().message();
}

TEST_F(CacheTest, MalformedFilesNameTheLine) {
  ASSERT_TRUE(SaveCalibrationCache(path_, key_, table_, "d").ok());
  const std::string good = Text();
  std::vector<std::string> lines;
  std::stringstream ss(good);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 15u);  // 11 header lines, 3 tensors, end
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& l : v) s += l + "\n";
    return s;
  };
  struct Case {
    std::string name, text, want;  // want: ":<line>: ..." in the message
  };
  std::vector<Case> cases;
  auto with = [&](size_t line, const std::string& replacement) {
    auto v = lines;
    v[line - 1] = replacement;
    return join(v);
  };
  cases.push_back(
      {"magic", with(1, "clickrt-timing-cache 1"), ":1: not a clickrt calibration cache"});
  cases.push_back({"version", with(1, "clickrt-calibration-cache 2"), ":1: format version '2'"});
  cases.push_back({"sha", with(2, "model_sha256 xyz"), ":2: model_sha256"});
  cases.push_back({"calibrator", with(3, "calibrator kl"), ":3: unknown calibrator 'kl'"});
  cases.push_back(
      {"field order", with(4, "clickrt_version 0.1.0"), ":4: expected 'calibrator_param"});
  cases.push_back({"batch", with(6, "batch_size 0"), ":6: batch_size must be an integer >= 1"});
  cases.push_back({"rows", with(7, "rows 12x"), ":7: rows must be an integer"});
  cases.push_back({"count", with(11, "tensors 4"), ":15: 'end' after 3 of 4 tensor lines"});
  cases.push_back({"scale", with(12, "tensor\t/Concat_output_0\tnan\t0x1p+0\t0x0p+0"),
                   ":12: scale of '/Concat_output_0'"});
  cases.push_back(
      {"negative scale", with(12, "tensor\tx\t-0x1p+0\t0x1p+0\t0x0p+0"), ":12: scale of 'x'"});
  cases.push_back({"amax", with(13, "tensor\ty\t0x1p+0\tabc\t0x0p+0"), ":13: amax of 'y'"});
  cases.push_back(
      {"clipped", with(13, "tensor\ty\t0x1p+0\t0x1p+0\t0x1p+1"), ":13: clipped of 'y'"});
  cases.push_back({"columns", with(13, "tensor\ty\t0x1p+0"), ":13: expected 'tensor<TAB>name"});
  cases.push_back({"duplicate", with(14, lines[12]), ":14: value '"});
  cases.push_back({"no end", with(15, "fin"), ":15: expected 'end'"});
  {
    auto v = lines;
    v.pop_back();
    cases.push_back({"truncated", join(v), ":15: unexpected end of file"});
  }
  cases.push_back({"unterminated", good.substr(0, good.size() - 1), ":15: unterminated last line"});
  cases.push_back({"trailing", good + "extra\n", ":16: text after 'end'"});
  cases.push_back({"empty", "", ":1: unexpected end of file"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WriteText(c.text);
    auto t = LoadCalibrationCache(path_, key_);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kDataLoss) << t.status().ToString();
    EXPECT_NE(t.status().message().find(path_ + c.want), std::string::npos) << t.status().message();
  }
}

TEST_F(CacheTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadCalibrationCache(path_ + ".nope", key_).status().code(), StatusCode::kNotFound);
}

TEST_F(CacheTest, SaveReplacesAtomicallyAndRejectsWhatTheFormatCannotHold) {
  ASSERT_TRUE(SaveCalibrationCache(path_, key_, table_, "first").ok());
  table_.scale["/Concat_output_0"] = 2.f;
  ASSERT_TRUE(SaveCalibrationCache(path_, key_, table_, "second").ok());
  EXPECT_EQ(LoadCalibrationCache(path_, key_)->scale.at("/Concat_output_0"), 2.f);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // no temporary left behind

  const std::string before = Text();
  CalibrationTable bad = table_;
  bad.scale["tab\there"] = 1.f;
  EXPECT_EQ(SaveCalibrationCache(path_, key_, bad, "").code(), StatusCode::kInvalidArgument);
  bad = table_;
  bad.scale["zero"] = 0.f;
  EXPECT_EQ(SaveCalibrationCache(path_, key_, bad, "").code(), StatusCode::kInvalidArgument);
  bad = table_;
  bad.calibrator = "minmax";  // not the key's
  EXPECT_EQ(SaveCalibrationCache(path_, key_, bad, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SaveCalibrationCache(path_, key_, table_, "two\nlines").code(),
            StatusCode::kInvalidArgument);
  CalibrationKey k = key_;
  k.model_sha256 = "short";
  EXPECT_EQ(SaveCalibrationCache(path_, k, table_, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Text(), before);  // untouched
  EXPECT_FALSE(
      SaveCalibrationCache((dir_ / "no" / "such" / "dir").string(), key_, table_, "").ok());
}

}  // namespace
}  // namespace clickrt::quant
