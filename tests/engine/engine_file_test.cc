#include "engine/engine_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "engine/sha256.h"

namespace clickrt::engine {
namespace {

using nlohmann::json;

// ------------------------------------------------------------------ SHA-256 (FIPS 180-4 vectors)

std::string HexOf(std::string_view data, bool use_hardware) {
  Sha256 hasher(use_hardware);
  hasher.Update(data);
  return DigestHex(hasher.Finish());
}

TEST(Sha256Test, FipsVectors) {
  // Both the portable code and, where the CPU has them, the SHA instructions.
  for (bool hardware : {false, true}) {
    SCOPED_TRACE(Sha256(hardware).UsesHardware() ? "SHA-NI" : "portable");
    EXPECT_EQ(HexOf("abc", hardware),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(HexOf("", hardware),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(HexOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hardware),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(HexOf("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                    hardware),
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    EXPECT_EQ(HexOf(std::string(1000000, 'a'), hardware),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
  EXPECT_FALSE(Sha256(false).UsesHardware());
}

TEST(Sha256Test, StreamingInAnyChunksEqualsOneShot) {
  std::string data(1000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  const std::string expected = HexOf(data, false);
  EXPECT_EQ(Sha256Hex(data), expected);
  for (size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u, 999u}) {
    Sha256 hasher;
    for (size_t pos = 0; pos < data.size(); pos += chunk) {
      hasher.Update(std::string_view(data).substr(pos, chunk));
    }
    EXPECT_EQ(DigestHex(hasher.Finish()), expected) << "chunk " << chunk;
  }
  // Lengths around the padding boundary (55, 56, 64 bytes) one-shot vs byte by byte.
  for (size_t n : {55u, 56u, 57u, 63u, 64u, 119u, 120u}) {
    Sha256 hasher;
    for (size_t i = 0; i < n; ++i) hasher.Update(std::string_view(data).substr(i, 1));
    EXPECT_EQ(DigestHex(hasher.Finish()), Sha256Hex(std::string_view(data).substr(0, n))) << n;
  }
}

TEST(Sha256Test, OfFile) {
  std::string path = ::testing::TempDir() + "clickrt_sha_" + std::to_string(getpid());
  { std::ofstream(path, std::ios::binary) << "abc"; }
  auto hex = Sha256HexOfFile(path);
  ASSERT_TRUE(hex.ok()) << hex.status().ToString();
  EXPECT_EQ(*hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::remove(path.c_str());
  EXPECT_EQ(Sha256HexOfFile(path).status().code(), StatusCode::kNotFound);
}

// ------------------------------------------------------------------ fixtures

// y = relu(x @ w + b): x float32[-1,4] (caller buffer), w [4,2], b [2], y [-1,2] in the arena.
struct Sample {
  Program program;
  std::vector<uint8_t> weights;
};

Sample MakeSample() {
  Sample s;
  Metadata& m = s.program.meta;
  m.clickrt_version = "0.1.0";
  m.git_revision = "abc1234";
  m.build_time_utc = "2024-05-01T12:00:00Z";
  m.model_sha256 = Sha256Hex(std::string_view("model"));
  m.precision = "fp32";
  m.profile = {1, 8, 64, {1, 8, 32, 64}};
  m.backend = "cpu";
  m.cpu_isa = "avx2";
  m.arena_bytes = 64 * 2 * 4 * 2;
  m.arena_bytes_no_reuse = 64 * 2 * 4 * 3;
  m.extra = {{"passes", {"fuse_linear_relu", "fold_constants"}}, {"build_ms", 12.5}};
  s.program.tensors = {
      {"x", DType::kFloat32, {-1, 4}, -1, 0, -1},   // graph input, caller's buffer
      {"w", DType::kFloat32, {4, 2}, 0, 32, -1},    // weights [0, 32)
      {"b", DType::kFloat32, {2}, 64, 8, -1},       // weights [64, 72)
      {"h", DType::kFloat32, {-1, 2}, -1, 0, 0},    // arena [0, 512) at batch 64
      {"y", DType::kFloat32, {-1, 2}, -1, 0, 512},  // arena [512, 1024)
  };
  s.program.layers = {
      {"fc", "Linear", "clickrt", {0, 1, 2}, {3}, {{"transB", 0}, {"alpha", 1.0}}, "ref"},
      {"act", "Relu", "", {3}, {4}, json::object(), "ref"},
  };
  s.program.inputs = {0};
  s.program.outputs = {4};
  std::vector<float> w = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> b = {-0.5f, 0.25f};
  s.weights.assign(72, 0);
  std::memcpy(s.weights.data(), w.data(), 32);
  std::memcpy(s.weights.data() + 64, b.data(), 8);
  return s;
}

std::string Serialize(const Sample& s) {
  auto bytes = SerializeEngine(s.program, s.weights);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "clickrt_engine_test_" + std::to_string(getpid()) + "_" + name;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

uint64_t ReadLE64(const std::string& b, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(b[at + i])} << (8 * i);
  return v;
}
void WriteLE(std::string& b, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
}

// The checksum as ENGINE FORMAT spells it, computed independently of the library's writer.
uint64_t SpecChecksum(std::string bytes) {
  WriteLE(bytes, 56, 0, 8);
  Sha256 hasher;
  hasher.Update(bytes);
  Sha256::Digest d = hasher.Finish();
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{d[i]} << (8 * i);
  return v;
}

// Builds a file from a JSON text and weights following the spec in engine_file.h, so tests
// can hand the loader documents the writer would refuse to produce.
std::string Assemble(const std::string& json_text, const std::vector<uint8_t>& weights,
                     uint32_t version = kFormatVersion) {
  std::string b(64, '\0');
  std::memcpy(b.data(), "CLKRTENG", 8);
  uint64_t weights_offset = (64 + json_text.size() + 63) / 64 * 64;
  WriteLE(b, 8, version, 4);
  WriteLE(b, 12, 64, 4);
  WriteLE(b, 16, 64, 8);
  WriteLE(b, 24, json_text.size(), 8);
  WriteLE(b, 32, weights_offset, 8);
  WriteLE(b, 40, weights.size(), 8);
  WriteLE(b, 48, weights_offset + weights.size(), 8);
  b += json_text;
  b.resize(weights_offset, '\0');
  b.append(weights.begin(), weights.end());
  WriteLE(b, 56, SpecChecksum(b), 8);
  return b;
}

json SampleJson(const Sample& s) { return json::parse(ProgramToJson(s.program, false)); }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ------------------------------------------------------------------ round trip, determinism

TEST(EngineFileTest, RoundTripInMemoryAndThroughAFile) {
  Sample s = MakeSample();
  std::string bytes = Serialize(s);
  std::string path = TempPath("roundtrip.engine");
  ASSERT_TRUE(WriteEngine(s.program, s.weights, path).ok());

  for (bool from_file : {false, true}) {
    SCOPED_TRACE(from_file ? "file" : "memory");
    auto loaded = from_file ? LoadEngine(path) : LoadEngineFromBytes(bytes);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    std::shared_ptr<LoadedEngine> engine = *loaded;
    EXPECT_EQ(engine->program(), s.program);
    EXPECT_EQ(engine->source(), from_file ? path : "<memory>");
    ASSERT_EQ(engine->weights().size(), s.weights.size());
    EXPECT_EQ(std::memcmp(engine->weights().data(), s.weights.data(), s.weights.size()), 0);

    auto w = engine->Weight(1);
    auto b = engine->Weight(2);
    ASSERT_TRUE(w.ok() && b.ok());
    EXPECT_EQ(w->Describe(), "float32[4,2]");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(w->raw()) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->raw()) % 64, 0u);
    EXPECT_EQ(w->data<float>()[7], 8.f);
    EXPECT_EQ(b->data<float>()[0], -0.5f);
    EXPECT_EQ(b->data<float>()[1], 0.25f);
    EXPECT_EQ(engine->Weight(0).status().code(), StatusCode::kInvalidArgument);  // activation
    EXPECT_EQ(engine->Weight(5).status().code(), StatusCode::kOutOfRange);
    EXPECT_EQ(engine->Weight(-1).status().code(), StatusCode::kOutOfRange);

    // A weight tensor keeps the mapping alive after the engine handle is gone.
    Tensor kept = b.value();
    engine.reset();
    loaded = Status(StatusCode::kInternal, "dropped");
    EXPECT_EQ(kept.data<float>()[1], 0.25f);
  }
  std::remove(path.c_str());
}

TEST(EngineFileTest, FileBytesEqualSerializedBytesAndMatchTheSpec) {
  Sample s = MakeSample();
  std::string bytes = Serialize(s);
  std::string path = TempPath("same.engine");
  ASSERT_TRUE(WriteEngine(s.program, s.weights, path).ok());
  std::ifstream in(path, std::ios::binary);
  std::string on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, bytes);
  std::remove(path.c_str());

  EXPECT_EQ(bytes.substr(0, 8), "CLKRTENG");
  EXPECT_EQ(ReadLE64(bytes, 48), bytes.size());
  EXPECT_EQ(ReadLE64(bytes, 32) % 64, 0u);
  EXPECT_EQ(ReadLE64(bytes, 56), SpecChecksum(bytes));
  // Our independent assembler produces the same file from the same JSON.
  std::string json_text = bytes.substr(64, ReadLE64(bytes, 24));
  EXPECT_EQ(Assemble(json_text, s.weights), bytes);
}

TEST(EngineFileTest, SerializationIsDeterministic) {
  Sample s = MakeSample();
  std::string first = Serialize(s);
  EXPECT_EQ(Serialize(s), first);
  // Attribute insertion order does not matter: JSON objects are written with sorted keys.
  Sample t = MakeSample();
  t.program.layers[0].attrs = json::object();
  t.program.layers[0].attrs["alpha"] = 1.0;
  t.program.layers[0].attrs["transB"] = 0;
  EXPECT_EQ(Serialize(t), first);
  // And a different build time gives different bytes (it is the only timestamp).
  t.program.meta.build_time_utc = "2024-05-02T12:00:00Z";
  EXPECT_NE(Serialize(t), first);
}

TEST(EngineFileTest, NoWeightsAndEmptyProgram) {
  Program empty;
  empty.meta.backend = "cpu";
  auto bytes = SerializeEngine(empty, {});
  ASSERT_TRUE(bytes.ok());
  auto loaded = LoadEngineFromBytes(*bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->program(), empty);
  EXPECT_TRUE((*loaded)->weights().empty());
}

// ------------------------------------------------------------------ damaged files

TEST(EngineFileTest, TruncatedFilesAreDataLoss) {
  Sample s = MakeSample();
  std::string bytes = Serialize(s);
  const size_t json_end = 64 + ReadLE64(bytes, 24);
  const size_t weights_offset = ReadLE64(bytes, 32);
  std::string path = TempPath("truncated.engine");
  for (size_t size : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{63}, size_t{64},
                      size_t{65}, json_end / 2, json_end - 1, json_end, weights_offset - 1,
                      weights_offset, weights_offset + 36, bytes.size() - 1}) {
    SCOPED_TRACE("size " + std::to_string(size));
    std::string cut = bytes.substr(0, size);
    auto from_memory = LoadEngineFromBytes(cut);
    EXPECT_EQ(from_memory.status().code(), StatusCode::kDataLoss)
        << from_memory.status().ToString();
    WriteFile(path, cut);
    auto from_file = LoadEngine(path);
    EXPECT_EQ(from_file.status().code(), StatusCode::kDataLoss) << from_file.status().ToString();
    const std::string& message = from_file.status().message();
    EXPECT_TRUE(Contains(message, path)) << message;
    if (size == 0) {
      EXPECT_TRUE(Contains(message, "empty")) << message;
    }
    if (size >= 64) {
      EXPECT_TRUE(Contains(message, "truncated")) << message;
      EXPECT_TRUE(Contains(message, std::to_string(bytes.size()))) << message;
      EXPECT_TRUE(Contains(message, std::to_string(size) + " bytes")) << message;
    }
  }
  std::remove(path.c_str());
}

TEST(EngineFileTest, TrailingBytesAreDataLoss) {
  std::string bytes = Serialize(MakeSample()) + "x";
  auto loaded = LoadEngineFromBytes(bytes);
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(loaded.status().message(), "trailing")) << loaded.status().message();
}

TEST(EngineFileTest, FlippedByteIsChecksumMismatch) {
  Sample s = MakeSample();
  std::string bytes = Serialize(s);
  const size_t weights_offset = ReadLE64(bytes, 32);
  for (size_t at :
       {size_t{70}, size_t{64} + 20, weights_offset - 1, weights_offset + 4, bytes.size() - 1}) {
    SCOPED_TRACE("byte " + std::to_string(at));
    std::string bad = bytes;
    bad[at] ^= 0x10;
    auto loaded = LoadEngineFromBytes(bad);
    EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(loaded.status().message(), "checksum mismatch"))
        << loaded.status().message();
  }
  // With verification off, a flipped weight byte loads (and shows): structure is still checked.
  std::string bad = bytes;
  bad[weights_offset + 64] ^= 0x01;
  Expectations no_checksum;
  no_checksum.verify_checksum = false;
  auto loaded = LoadEngineFromBytes(bad, no_checksum);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_NE((*loaded)->Weight(2)->data<float>()[0], -0.5f);
}

// Any single damaged byte, any truncation: an error or a valid engine, never a crash.
TEST(EngineFileTest, NeverCrashesOnDamageWithoutChecksum) {
  std::string bytes = Serialize(MakeSample());
  Expectations no_checksum;
  no_checksum.verify_checksum = false;
  for (size_t at = 0; at < bytes.size(); ++at) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ mask);
      auto loaded = LoadEngineFromBytes(bad, no_checksum);
      if (loaded.ok()) {
        for (int32_t i = 0; i < 5; ++i) (void)(*loaded)->Weight(i);
      }
    }
  }
  for (size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(LoadEngineFromBytes(std::string_view(bytes).substr(0, size), no_checksum).ok());
  }
}

TEST(EngineFileTest, ForeignFilesNameTheMagic) {
  // The first bytes of a PyTorch-exported ONNX model: ir_version 7, producer "pytorch".
  std::string onnx = std::string(
                         "\x08\x07\x12\x07pytorch\x1a\x06"
                         "2.1.0:") +
                     std::string(200, '\x01');
  auto loaded = LoadEngineFromBytes(onnx);
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(loaded.status().message(), "not a clickrt engine file"));
  EXPECT_TRUE(Contains(loaded.status().message(), "magic"));
  EXPECT_TRUE(Contains(loaded.status().message(), "ONNX")) << loaded.status().message();

  std::mt19937 rng(42);
  std::string random(4096, '\0');
  for (char& c : random) c = static_cast<char>(rng());
  loaded = LoadEngineFromBytes(random);
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(loaded.status().message(), "magic")) << loaded.status().message();

  loaded = LoadEngineFromBytes("ftrt" + std::string(100, '\0'));
  EXPECT_TRUE(Contains(loaded.status().message(), "TensorRT")) << loaded.status().message();
  loaded = LoadEngineFromBytes("hi");  // short, and not even a magic prefix
  EXPECT_TRUE(Contains(loaded.status().message(), "magic")) << loaded.status().message();
}

TEST(EngineFileTest, OtherFormatVersionNamesBoth) {
  std::string bytes = Serialize(MakeSample());
  std::string json_text = bytes.substr(64, ReadLE64(bytes, 24));
  // A well-formed file from a newer clickrt (its checksum is valid for its bytes).
  std::string newer = Assemble(json_text, MakeSample().weights, kFormatVersion + 1);
  auto loaded = LoadEngineFromBytes(newer);
  EXPECT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition);
  const std::string& m = loaded.status().message();
  EXPECT_TRUE(Contains(m, "format version " + std::to_string(kFormatVersion + 1))) << m;
  EXPECT_TRUE(Contains(m, "format version " + std::to_string(kFormatVersion))) << m;
}

// ------------------------------------------------------------------ expectations

Expectations Expect(std::string backend, std::vector<std::string> cpu_isas = {},
                    std::string sm_arch = "", std::string cuda_major = "") {
  Expectations e;
  e.backend = std::move(backend);
  e.cpu_isas = std::move(cpu_isas);
  e.sm_arch = std::move(sm_arch);
  e.cuda_major = std::move(cuda_major);
  return e;
}

TEST(EngineFileTest, ExpectationMismatchesNameBothSides) {
  Sample s = MakeSample();
  s.program.meta.backend = "cuda";
  s.program.meta.cpu_isa = "";
  s.program.meta.gpu_name = "NVIDIA H100 80GB HBM3";
  s.program.meta.sm_arch = "sm_90";
  s.program.meta.cuda_version = "12.4";
  std::string cuda_engine = Serialize(s);

  auto check = [&](const std::string& bytes, const Expectations& e,
                   std::vector<std::string> mentions) {
    auto loaded = LoadEngineFromBytes(bytes, e);
    ASSERT_EQ(loaded.status().code(), StatusCode::kFailedPrecondition)
        << loaded.status().ToString();
    for (const std::string& word : mentions) {
      EXPECT_TRUE(Contains(loaded.status().message(), word)) << loaded.status().message();
    }
  };
  check(cuda_engine, Expect("cpu"), {"'cuda'", "'cpu'"});
  check(cuda_engine, Expect("cuda", {}, "sm_80"), {"sm_90", "sm_80", "H100"});
  check(cuda_engine, Expect("", {}, "sm_90", "13"), {"12.4", "13"});
  EXPECT_TRUE(LoadEngineFromBytes(cuda_engine, Expect("cuda", {}, "sm_90", "12")).ok());

  std::string cpu_engine = Serialize(MakeSample());  // cpu_isa "avx2"
  check(cpu_engine, Expect("cuda"), {"'cpu'", "'cuda'"});
  check(cpu_engine, Expect("", {"sse4.2"}), {"avx2", "sse4.2"});
  EXPECT_TRUE(LoadEngineFromBytes(cpu_engine, Expect("cpu", {"avx2", "avx512"})).ok());
  // GPU fields do not apply to a cpu engine.
  EXPECT_TRUE(LoadEngineFromBytes(cpu_engine, Expect("", {}, "sm_80", "13")).ok());
}

// ------------------------------------------------------------------ invalid documents

TEST(EngineFileTest, InvalidDocumentsAreDataLossNamingTheField) {
  Sample s = MakeSample();
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* mention;
  };
  std::vector<Case> cases = {
      {"layer input out of range", [](json& j) { j["layers"][0]["inputs"][1] = 5; },
       "layer 0 'fc'"},
      {"layer output below -1", [](json& j) { j["layers"][1]["outputs"][0] = -2; }, "'act'"},
      {"graph output out of range", [](json& j) { j["outputs"][0] = 99; }, "graph output 0"},
      {"missing field", [](json& j) { j["meta"].erase("precision"); }, "'meta.precision'"},
      {"ill-typed field", [](json& j) { j["tensors"][1]["dims"] = "4x2"; }, "'tensors[1].dims'"},
      {"dims element", [](json& j) { j["tensors"][1]["dims"][0] = 1.5; }, "'tensors[1].dims[0]'"},
      {"index beyond int32", [](json& j) { j["inputs"][0] = 1LL << 40; }, "'inputs[0]'"},
      {"unknown dtype", [](json& j) { j["tensors"][2]["dtype"] = "float128"; }, "float128"},
      {"unaligned weight", [](json& j) { j["tensors"][2]["weight_offset"] = 40; },
       "multiple of 64"},
      {"weight outside blob", [](json& j) { j["tensors"][2]["weight_offset"] = 128; },
       "outside the weights blob"},
      {"wrong weight size", [](json& j) { j["tensors"][1]["weight_bytes"] = 16; }, "'w'"},
      {"constant with batch dim", [](json& j) { j["tensors"][1]["dims"][0] = -1; }, "batch"},
      {"arena overflow", [](json& j) { j["tensors"][4]["arena_offset"] = 600; }, "arena"},
      {"bad profile", [](json& j) { j["meta"]["profile"]["min"] = 0; }, "profile"},
      {"document not an object", [](json& j) { j = json::array(); }, "not an object"},
      {"meta version differs", [](json& j) { j["meta"]["format_version"] = 7; }, "format_version"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    json doc = SampleJson(s);
    c.edit(doc);
    auto loaded = LoadEngineFromBytes(Assemble(doc.dump(), s.weights));
    EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss) << loaded.status().ToString();
    EXPECT_TRUE(Contains(loaded.status().message(), c.mention)) << loaded.status().message();
  }
  auto loaded = LoadEngineFromBytes(Assemble("{\"meta\": [1, 2", s.weights));
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(loaded.status().message(), "does not parse"));
}

TEST(EngineFileTest, WriterRefusesInvalidPrograms) {
  auto expect_refused = [](const Sample& s, const std::string& mention) {
    auto bytes = SerializeEngine(s.program, s.weights);
    EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument) << bytes.status().ToString();
    EXPECT_TRUE(Contains(bytes.status().message(), mention)) << bytes.status().message();
  };
  Sample s = MakeSample();
  s.program.tensors[2].weight_offset = 32;
  expect_refused(s, "multiple of 64");
  s = MakeSample();
  s.weights.resize(70);
  expect_refused(s, "outside the weights blob");
  s = MakeSample();
  s.program.layers[0].outputs = {5};
  expect_refused(s, "layer 0 'fc'");
  s = MakeSample();
  s.program.meta.profile.buckets = {8, 4};
  expect_refused(s, "buckets");
  s = MakeSample();
  s.program.tensors[3].dtype = DType::kUndefined;
  expect_refused(s, "'h' has no dtype");
  s = MakeSample();
  s.program.tensors[0].name = "bad\xff";
  expect_refused(s, "UTF-8");
  // ProgramToJson still shows such a program (for inspect).
  EXPECT_TRUE(Contains(ProgramToJson(s.program, true), "\"kernel\": \"ref\""));
}

// ------------------------------------------------------------------ paths

TEST(EngineFileTest, PathErrors) {
  auto loaded = LoadEngine("/nonexistent/dir/model.engine");
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(loaded.status().message(), "/nonexistent/dir/model.engine"));
  EXPECT_EQ(LoadEngine(::testing::TempDir()).status().code(), StatusCode::kInvalidArgument);

  std::string empty = TempPath("empty.engine");
  WriteFile(empty, "");
  loaded = LoadEngine(empty);
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(loaded.status().message(), "empty")) << loaded.status().message();
  std::remove(empty.c_str());

  Sample s = MakeSample();
  EXPECT_EQ(WriteEngine(s.program, s.weights, "/nonexistent/dir/model.engine").code(),
            StatusCode::kNotFound);
}

TEST(EngineFileTest, WriteReplacesAnExistingFileAtomically) {
  Sample s = MakeSample();
  std::string path = TempPath("replace.engine");
  WriteFile(path, "old contents");
  ASSERT_TRUE(WriteEngine(s.program, s.weights, path).ok());
  ASSERT_TRUE(LoadEngine(path).ok());
  EXPECT_NE(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK), 0);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace clickrt::engine
