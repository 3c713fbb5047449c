#include "compiler/timing_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace clickrt::compiler {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test: Save's temporary files are checked for by listing it.
class TimingCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("clickrt_timing_cache_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  void Write(const std::string& path, const std::string& text) const {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string Read(const std::string& path) const {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  size_t FilesInDir() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++n;
    return n;
  }

  static TimingContext H100() {
    return {"NVIDIA H100 80GB HBM3", "sm_90", "13.0", "13.1.0", "0.1.0"};
  }
  // The header of a valid file for H100(), for hand-written cases.
  static std::string Header() { return "clickrt-timing-cache 1\ncontext " + H100().Key() + "\n"; }

  fs::path dir_;
};

TEST_F(TimingCacheTest, RoundTripKeepsEveryEntryExactly) {
  TimingCache cache(H100());
  const std::string algo = std::string(128, 'a') + ":1048576";
  cache.Put("gemm:m=4096,n=400,k=221,lda=221,ldc=400,a=f16", {algo, 0.0123456789012345});
  cache.Put("mlp:bucket=64", {"fused_mlp", 0.004});
  cache.Put("gemm:zero", {"heuristic:0", 0});
  cache.Put("mlp:bucket=64", {"gemm_chain", 1e-7});  // replaces
  ASSERT_TRUE(cache.Save(Path("t.cache")).ok());

  bool stale = true;
  auto loaded = TimingCache::Load(Path("t.cache"), H100(), &stale);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_FALSE(stale);
  EXPECT_EQ(loaded->size(), 3u);
  auto e = loaded->Find("gemm:m=4096,n=400,k=221,lda=221,ldc=400,a=f16");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->choice, algo);
  EXPECT_EQ(e->ms, 0.0123456789012345);  // shortest round-trip form: bit-exact
  e = loaded->Find("mlp:bucket=64");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->choice, "gemm_chain");
  EXPECT_EQ(e->ms, 1e-7);
  EXPECT_EQ(loaded->Find("gemm:zero")->ms, 0.0);
  EXPECT_FALSE(loaded->Find("gemm:absent").has_value());
  EXPECT_EQ(loaded->hits(), 3);
  EXPECT_EQ(loaded->misses(), 1);

  // The documented layout, byte for byte: sorted entries and the end count.
  std::string text = Read(Path("t.cache"));
  EXPECT_EQ(text.rfind(Header(), 0), 0u) << text;
  EXPECT_NE(text.find("\nentry gemm:zero\theuristic:0\t0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nentry mlp:bucket=64\tgemm_chain\t1e-07\nend 3\n"), std::string::npos)
      << text;
  EXPECT_LT(text.find("entry gemm:m=4096"), text.find("entry gemm:zero"));
}

TEST_F(TimingCacheTest, EmptyCacheRoundTrips) {
  ASSERT_TRUE(TimingCache(H100()).Save(Path("e.cache")).ok());
  EXPECT_EQ(Read(Path("e.cache")), Header() + "end 0\n");
  bool stale = false;
  auto loaded = TimingCache::Load(Path("e.cache"), H100(), &stale);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->size(), 0u);
}

TEST_F(TimingCacheTest, MissingFileIsNotFound) {
  bool stale = true;
  auto loaded = TimingCache::Load(Path("absent.cache"), H100(), &stale);
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find("absent.cache"), std::string::npos);
  EXPECT_FALSE(stale);
  EXPECT_EQ(TimingCache::Load(dir_.string(), H100(), &stale).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(TimingCacheTest, EveryContextFieldMakesTheFileStale) {
  TimingCache cache(H100());
  cache.Put("k", {"c", 1.5});
  ASSERT_TRUE(cache.Save(Path("s.cache")).ok());
  for (int field = 0; field < 5; ++field) {
    TimingContext other = H100();
    std::string* f[] = {&other.gpu_name, &other.sm_arch, &other.cuda_version,
                        &other.cublaslt_version, &other.clickrt_version};
    *f[field] += "x";
    bool stale = false;
    auto loaded = TimingCache::Load(Path("s.cache"), other, &stale);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_TRUE(stale) << field;
    EXPECT_EQ(loaded->size(), 0u) << "a stale file's entries are never used";
    EXPECT_FALSE(loaded->Find("k").has_value());
    EXPECT_EQ(loaded->context(), other);
    ASSERT_TRUE(loaded->stale_context().has_value());
    EXPECT_EQ(*loaded->stale_context(), H100());
  }
  // Without a `stale` out-parameter it is an error that names both contexts.
  TimingContext a100{"NVIDIA A100-SXM4-80GB", "sm_80", "12.4", "12.4.5", "0.1.0"};
  auto loaded = TimingCache::Load(Path("s.cache"), a100, nullptr);
  EXPECT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("H100"), std::string::npos);
  EXPECT_NE(loaded.status().message().find("A100"), std::string::npos);
  EXPECT_EQ(H100().Describe(),
            "NVIDIA H100 80GB HBM3 (sm_90), CUDA 13.0, cuBLASLt 13.1.0, "
            "clickrt 0.1.0");
}

TEST_F(TimingCacheTest, CorruptFilesNameTheFileAndLine) {
  struct Case {
    const char* name;
    std::string text;
    int line;
    const char* says;
  };
  const std::string entry = "entry k\tc\t0.5\n";
  const Case cases[] = {
      {"empty", "", 1, "not a clickrt timing cache"},
      {"wrong magic", "clickrt-engine 1\n", 1, "not a clickrt timing cache"},
      {"foreign file", "{\"json\": true}\n", 1, "not a clickrt timing cache"},
      {"future version", "clickrt-timing-cache 2\ncontext {}\nend 0\n", 1, "version \"2\""},
      {"no context", "clickrt-timing-cache 1\nentry k\tc\t1\nend 1\n", 2, "context"},
      {"bad context json", "clickrt-timing-cache 1\ncontext {gpu\nend 0\n", 2, "JSON"},
      {"context field missing", "clickrt-timing-cache 1\ncontext {\"gpu_name\":\"x\"}\nend 0\n", 2,
       "sm_arch"},
      {"truncated mid-line", Header() + entry + "entry k2\tc", 4, "truncated"},
      {"truncated at a line end", Header() + entry, 3, "truncated"},
      {"bad number", Header() + "entry k\tc\t0.5ms\nend 1\n", 3, "bad time \"0.5ms\""},
      {"negative time", Header() + "entry k\tc\t-1\nend 1\n", 3, "bad time"},
      {"nan time", Header() + "entry k\tc\tnan\nend 1\n", 3, "bad time"},
      {"empty time", Header() + "entry k\tc\t\nend 1\n", 3, "bad time"},
      {"missing field", Header() + "entry k\t0.5\nend 1\n", 3, "entry <key>"},
      {"extra field", Header() + "entry k\tc\t0.5\t9\nend 1\n", 3, "entry <key>"},
      {"empty key", Header() + "entry \tc\t0.5\nend 1\n", 3, "empty key"},
      {"duplicate key", Header() + entry + entry + "end 2\n", 4, "duplicate key k"},
      {"unknown line", Header() + "entri k\tc\t1\nend 1\n", 3, "expected"},
      {"count mismatch", Header() + entry + "end 2\n", 4, "counts 2"},
      {"bad count", Header() + entry + "end one\n", 4, "bad entry count"},
      {"text after end", Header() + entry + "end 1\n" + entry, 5, "after the end"},
  };
  for (const Case& c : cases) {
    const std::string path = Path("bad.cache");
    Write(path, c.text);
    bool stale = false;
    auto loaded = TimingCache::Load(path, H100(), &stale);
    ASSERT_FALSE(loaded.ok()) << c.name;
    EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss) << c.name;
    const std::string& msg = loaded.status().message();
    EXPECT_NE(msg.find(path + ":" + std::to_string(c.line) + ":"), std::string::npos)
        << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
  }
}

TEST_F(TimingCacheTest, SaveReplacesAtomicallyAndLeavesNoTemporaries) {
  const std::string path = Path("a.cache");
  TimingCache first(H100());
  first.Put("k", {"old", 2});
  ASSERT_TRUE(first.Save(path).ok());
  TimingCache second(H100());
  second.Put("k", {"new", 1});
  second.Put("k2", {"new2", 3});
  ASSERT_TRUE(second.Save(path).ok());
  EXPECT_EQ(FilesInDir(), 1u) << "the temporary file was renamed, not left behind";
  bool stale = false;
  auto loaded = TimingCache::Load(path, H100(), &stale);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->Find("k")->choice, "new");
  EXPECT_EQ(loaded->size(), 2u);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::others_read, fs::perms::others_read);
}

TEST_F(TimingCacheTest, FailedSaveKeepsTheOldFileAndCleansUp) {
  // rename() onto a non-empty directory fails after the temporary file is written.
  const std::string blocked = Path("blocked.cache");
  fs::create_directories(fs::path(blocked) / "inner");
  TimingCache cache(H100());
  cache.Put("k", {"c", 1});
  Status s = cache.Save(blocked);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blocked.cache"), std::string::npos) << s.ToString();
  EXPECT_EQ(FilesInDir(), 1u) << "the temporary file must be removed on failure";

  // A directory that does not exist: nothing is written anywhere.
  EXPECT_FALSE(cache.Save(Path("no/such/dir.cache")).ok());
  EXPECT_EQ(FilesInDir(), 1u);

  // An entry the format cannot hold is refused before the old file is touched.
  const std::string path = Path("good.cache");
  ASSERT_TRUE(cache.Save(path).ok());
  const std::string before = Read(path);
  TimingCache bad(H100());
  bad.Put("key\twith tab", {"c", 1});
  EXPECT_EQ(bad.Save(path).code(), StatusCode::kInvalidArgument);
  TimingCache bad_choice(H100());
  bad_choice.Put("k", {"two\nlines", 1});
  EXPECT_EQ(bad_choice.Save(path).code(), StatusCode::kInvalidArgument);
  TimingCache bad_ms(H100());
  bad_ms.Put("k", {"c", -1});
  EXPECT_EQ(bad_ms.Save(path).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(path), before);
  EXPECT_EQ(FilesInDir(), 2u);
}

}  // namespace
}  // namespace clickrt::compiler
