#include "import/onnx/onnx_importer.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "../onnx_builder.h"

namespace clickrt::onnx_import {
namespace {

namespace fs = std::filesystem;
using testing::OnnxBuilder;

fs::path TempDir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("clickrt_import_test_" + name + std::to_string(getpid()));
  fs::create_directories(p);
  return p;
}

OnnxBuilder EmbeddingModel() {
  OnnxBuilder b;
  b.Input("ids", onnx::TensorProto::INT64, {-1, 2})
      .FloatInit("table", {4, 2}, {0, 1, 2, 3, 4, 5, 6, 7})
      .Output("emb", onnx::TensorProto::FLOAT, {-1, 2, 2});
  b.Node("Gather", {"table", "ids"}, {"emb"}, "lookup");
  return b;
}

TEST(OnnxImporter, ImportsGraphWithSymbolicBatch) {
  auto g = ImportModelFromBytes(EmbeddingModel().Bytes(), ".");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ASSERT_EQ((*g)->inputs.size(), 1u);
  EXPECT_EQ((*g)->inputs[0]->shape.ToString(), "[batch,2]");
  EXPECT_EQ((*g)->outputs[0]->shape.ToString(), "[batch,2,2]");
  EXPECT_EQ((*g)->outputs[0]->dtype, DType::kFloat32);
  EXPECT_EQ((*g)->ConstantBytes(), 32);
}

TEST(OnnxImporter, TruncatedAndGarbageFilesAreDataLoss) {
  std::string bytes = EmbeddingModel().Bytes();
  auto t = ImportModelFromBytes(bytes.substr(0, bytes.size() / 2), ".");
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss) << t.status().ToString();
  auto g = ImportModelFromBytes(std::string(100, '\xff'), ".");
  EXPECT_EQ(g.status().code(), StatusCode::kDataLoss);
  auto e = ImportModelFromBytes("", ".");
  EXPECT_EQ(e.status().code(), StatusCode::kDataLoss);
  auto missing = ImportModel("/nonexistent/model.onnx");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/model.onnx"), std::string::npos);
}

TEST(OnnxImporter, UnsupportedOpNamesNodeAndOp) {
  OnnxBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1, 3, 4, 4}).Output("y", onnx::TensorProto::FLOAT, {});
  b.Node("Conv", {"x", "x"}, {"y"}, "conv_1");
  auto g = ImportModelFromBytes(b.Bytes(), ".");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(g.status().message().find("conv_1"), std::string::npos);
  EXPECT_NE(g.status().message().find("'Conv'"), std::string::npos);
  ImportOptions keep;
  keep.allow_unsupported = true;
  auto kept = ImportModelFromBytes(b.Bytes(), ".", keep);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ((*kept)->nodes()[0]->op, ir::OpKind::kUnsupported);
}

TEST(OnnxImporter, OpsetOutsideRangeIsRejected) {
  OnnxBuilder b(22);
  b.Input("x", onnx::TensorProto::FLOAT, {1}).Output("y", onnx::TensorProto::FLOAT, {1});
  b.Node("Relu", {"x"}, {"y"});
  auto g = ImportModelFromBytes(b.Bytes(), ".");
  EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(g.status().message().find("opset 22"), std::string::npos);
}

TEST(OnnxImporter, DanglingInputIsAnError) {
  OnnxBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1}).Output("y", onnx::TensorProto::FLOAT, {1});
  b.Node("Add", {"x", "nowhere"}, {"y"}, "add_1");
  auto g = ImportModelFromBytes(b.Bytes(), ".");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("nowhere"), std::string::npos);
}

TEST(OnnxImporter, DtypeMismatchFoundAtImport) {
  OnnxBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {2}).Input("i", onnx::TensorProto::INT64, {2});
  b.Output("y", onnx::TensorProto::FLOAT, {2});
  b.Node("Add", {"x", "i"}, {"y"}, "bad_add");
  auto g = ImportModelFromBytes(b.Bytes(), ".");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("bad_add"), std::string::npos);
}

TEST(OnnxImporter, ExternalDataIsMappedAndChecked) {
  fs::path dir = TempDir("ext");
  std::vector<float> table = {0, 1, 2, 3, 4, 5, 6, 7};
  {
    std::ofstream f(dir / "weights.bin", std::ios::binary);
    float pad[2] = {0, 0};
    f.write(reinterpret_cast<const char*>(pad), sizeof pad);  // data at offset 8
    f.write(reinterpret_cast<const char*>(table.data()), table.size() * 4);
  }
  OnnxBuilder b = EmbeddingModel();
  auto* init = b.model().mutable_graph()->mutable_initializer(0);
  init->clear_float_data();
  init->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const std::string& k, const std::string& v) {
    auto* e = init->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", "weights.bin");
  add("offset", "8");
  add("length", "32");
  {
    std::ofstream f(dir / "model.onnx", std::ios::binary);
    f << b.Bytes();
  }
  auto g = ImportModel((dir / "model.onnx").string());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const ir::Value* t = (*g)->FindValue("table");
  ASSERT_TRUE(t->constant.has_value());
  EXPECT_EQ(t->constant->data<float>()[7], 7.f);

  // Truncate the weights file: a clear error naming the tensor.
  fs::resize_file(dir / "weights.bin", 20);
  auto bad = ImportModel((dir / "model.onnx").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("'table'"), std::string::npos);
  fs::remove(dir / "weights.bin");
  auto gone = ImportModel((dir / "model.onnx").string());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(OnnxImporter, TensorProtoFilesRoundTrip) {
  fs::path dir = TempDir("pb");
  Tensor t = Tensor::FromVector<int64_t>({2, 2}, {1, -2, 3, 1LL << 40});
  ASSERT_TRUE(WriteTensorProtoFile(t, "ids", (dir / "ids.pb").string()).ok());
  std::string name;
  auto r = ReadTensorProtoFile((dir / "ids.pb").string(), &name);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(name, "ids");
  EXPECT_EQ(r->data<int64_t>()[3], 1LL << 40);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace clickrt::onnx_import
