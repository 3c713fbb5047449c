// Schema parsing and assembly. The key test: the raw val.tsv rows of every bundled model,
// assembled by the C++ schema, equal exactly the tensors the python reader wrote (val_inputs).
#include "features/schema.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "features/tsv_rows.h"
#include "zoo_rows.h"

namespace clickrt::features {
namespace {

using testing::ExpectSameAsPython;
using testing::kModels;

std::shared_ptr<const Schema> MustParse(const std::string& text) {
  auto s = Schema::Parse(text, "test.json");
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? s.value() : nullptr;
}

// Encodes raw rows and assembles them: `layers[i]` are row i's sources, front to back (null: a
// source that does not exist).
StatusOr<std::map<std::string, Tensor>> AssembleRaw(
    const Schema& schema, const std::vector<std::vector<const FeatureRow*>>& layers,
    AssemblyStats* stats) {
  AssemblyLayers sources;
  for (const auto& l : layers) sources.depth = std::max(sources.depth, l.size());
  std::vector<EncodedRowPtr> encoded;
  for (const auto& l : layers) {
    for (size_t d = 0; d < sources.depth; ++d) {
      const FeatureRow* row = d < l.size() ? l[d] : nullptr;
      if (row != nullptr) encoded.push_back(schema.Encode(*row));
      sources.rows.push_back(row != nullptr ? encoded.back().get() : nullptr);
    }
  }
  return schema.Assemble(sources, stats);
}

class ZooSchema : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooSchema, ValRowsAssembleToThePythonReadersTensors) {
  const std::string model = GetParam();
  auto schema = Schema::Load(kModels + model + "/schema.json");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  auto layout = ReadTsvLayout(kModels + model + "/schema.json");
  ASSERT_TRUE(layout.ok()) << layout.status().ToString();
  auto rows = ReadTsvRows(kModels + model + "/val.tsv", *layout);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2000u);
  std::vector<std::vector<const FeatureRow*>> layers;
  for (const auto& r : *rows) layers.push_back({&r});
  AssemblyStats stats;
  auto got = AssembleRaw(**schema, layers, &stats);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameAsPython(got.value(), model, (*schema)->input_names());
  EXPECT_EQ(stats.rows, 2000);
  EXPECT_EQ(stats.invalid, 0);
  EXPECT_GT(stats.missing, 0);       // Criteo rows have empty fields
  EXPECT_GT(stats.out_of_vocab, 0);  // and tokens rarer than min_count
}

INSTANTIATE_TEST_SUITE_P(Models, ZooSchema,
                         ::testing::Values("deepfm", "dcnv2", "din", "wide_deep"));

TEST(Schema, Encodings) {
  auto schema = MustParse(R"({"schema_version": 1, "inputs": [
    {"name": "dense", "dtype": "float32", "shape": ["batch", 3], "fields": [
      {"name": "I1", "kind": "dense", "default": 0.5},
      {"name": "I2", "kind": "dense", "default": 0, "transform": "log1p_relu",
       "transform_in_model": false},
      {"name": "I3", "kind": "dense", "default": -1, "transform": "log1p_relu",
       "transform_in_model": true}]},
    {"name": "ids", "dtype": "int64", "shape": ["batch", 8], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 4,
       "tokens": ["aa", "bb", "cc"]},
      {"name": "h", "kind": "categorical", "encoding": "hash", "hash": "fnv1a_64", "size": 1000},
      {"name": "n", "kind": "categorical", "encoding": "identity", "size": 10},
      {"name": "seq", "kind": "sequence", "encoding": "identity", "size": 100, "length": 5,
       "separator": ",", "padding_id": 0}]},
    {"name": "target", "dtype": "int64", "shape": ["batch"], "fields": [
      {"name": "t", "kind": "categorical", "encoding": "identity", "size": 50}]}]})");
  ASSERT_NE(schema, nullptr);
  EXPECT_EQ(schema->input_names(), (std::vector<std::string>{"dense", "ids", "target"}));
  FeatureRow r0 = {{"I1", "3"},
                   {"I2", "-2"},
                   {"I3", "7"},
                   {"v", "bb"},
                   {"h", "68fd1e64"},
                   {"n", "9"},
                   {"seq", "4,8,15,16,23,42,99"},
                   {"t", "49"}};
  FeatureRow r1 = {{"I1", ""}, {"I2", "1.718281828"}, {"I3", "x1"},      {"v", "zz"},
                   {"h", ""},  {"n", "10"},           {"seq", "7,,500"}, {"t", "-1"}};
  FeatureRow r2 = {{"seq", ""}};  // everything else missing; an empty history
  AssemblyStats stats;
  auto got = AssembleRaw(*schema, {{&r0}, {&r1}, {&r2}}, &stats);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const Tensor& dense = got->at("dense");
  ASSERT_EQ(dense.dims(), (Dims{3, 3}));
  EXPECT_EQ(std::vector<float>(dense.span<float>().begin(), dense.span<float>().end()),
            (std::vector<float>{3, 0, 7,                             // log1p(relu(-2))
                                0.5f, std::log1p(1.718281828f), -1,  // x1: invalid
                                0.5f, 0, -1}));
  const Tensor& ids = got->at("ids");
  ASSERT_EQ(ids.dims(), (Dims{3, 8}));
  // hash: 1 + fnv1a_64("68fd1e64") % 999, as python's hash_encode computes it.
  EXPECT_EQ(std::vector<int64_t>(ids.span<int64_t>().begin(), ids.span<int64_t>().end()),
            (std::vector<int64_t>{2, 90, 9, 4, 8, 15, 16, 23,  //
                                  0, 0,  0, 7, 0, 0,  0,  0,   //
                                  0, 0,  0, 0, 0, 0,  0,  0}));
  const Tensor& target = got->at("target");
  ASSERT_EQ(target.dims(), (Dims{3}));
  EXPECT_EQ(target.data<int64_t>()[0], 49);
  EXPECT_EQ(target.data<int64_t>()[1], 0);
  EXPECT_EQ(stats.rows, 3);
  // r1: I1, h; r2: I1, I2, I3, v, h, n, t.
  EXPECT_EQ(stats.missing, 2 + 7);
  // r1: v "zz", n 10, seq 500, t -1.
  EXPECT_EQ(stats.out_of_vocab, 4);
  // r1: I3 "x1", the empty element of "7,,500".
  EXPECT_EQ(stats.invalid, 2);
}

TEST(Schema, LayersAreLookedUpFrontToBack) {
  auto schema = MustParse(R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int64", "shape": ["batch", 3], "fields": [
      {"name": "a", "kind": "categorical", "encoding": "identity", "size": 100},
      {"name": "b", "kind": "categorical", "encoding": "identity", "size": 100},
      {"name": "c", "kind": "categorical", "encoding": "identity", "size": 100}]}]})");
  ASSERT_NE(schema, nullptr);
  FeatureRow context = {{"a", "1"}};
  FeatureRow item = {{"a", "2"}, {"b", "3"}};
  FeatureRow user = {{"a", "4"}, {"b", "5"}, {"c", "6"}};
  auto got = AssembleRaw(*schema, {{&context, &item, &user}, {nullptr, &user}}, nullptr);
  ASSERT_TRUE(got.ok());
  const Tensor& x = got->at("x");
  EXPECT_EQ(std::vector<int64_t>(x.span<int64_t>().begin(), x.span<int64_t>().end()),
            (std::vector<int64_t>{1, 3, 6, 4, 5, 6}));
}

TEST(Schema, SharedUserRowGivesTheSameColumnsAndStatsOnEveryRow) {
  auto schema = MustParse(R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int64", "shape": ["batch", 6], "fields": [
      {"name": "u", "kind": "categorical", "encoding": "vocab", "size": 3, "tokens": ["a", "b"]},
      {"name": "oov", "kind": "categorical", "encoding": "vocab", "size": 2, "tokens": ["a"]},
      {"name": "gone", "kind": "categorical", "encoding": "identity", "size": 9},
      {"name": "h", "kind": "sequence", "encoding": "identity", "size": 9, "length": 2},
      {"name": "i", "kind": "categorical", "encoding": "identity", "size": 9}]}]})");
  ASSERT_NE(schema, nullptr);
  FeatureRow user = {{"u", "b"}, {"oov", "zz"}, {"gone", ""}, {"h", "3,4,5"}, {"i", "8"}};
  FeatureRow item1 = {{"i", "1"}}, item2 = {{"i", "2"}}, item3 = {{"u", "a"}};
  AssemblyStats stats;
  auto got = AssembleRaw(
      *schema, {{&item1, &user}, {&item2, &user}, {&item3, &user}, {&item1, &user}}, &stats);
  ASSERT_TRUE(got.ok());
  const Tensor& x = got->at("x");
  EXPECT_EQ(std::vector<int64_t>(x.span<int64_t>().begin(), x.span<int64_t>().end()),
            (std::vector<int64_t>{2, 0, 0, 3, 4, 1,  //
                                  2, 0, 0, 3, 4, 2,  //
                                  1, 0, 0, 3, 4, 8,  //
                                  2, 0, 0, 3, 4, 1}));
  EXPECT_EQ(stats.out_of_vocab, 4);
  EXPECT_EQ(stats.missing, 4);
}

TEST(Schema, AvazuHourIsDerived) {
  auto schema = MustParse(R"({"schema_version": 1, "inputs": [
    {"name": "sparse", "dtype": "int64", "shape": ["batch", 2], "fields": [
      {"name": "hour_of_day", "kind": "categorical", "derive": "hour_of_day",
       "encoding": "vocab", "size": 25, "tokens": ["00", "13", "23"]},
      {"name": "weekday", "kind": "categorical", "derive": "weekday", "encoding": "vocab",
       "size": 8, "tokens": ["0", "1", "2", "3", "4", "5", "6"]}]}]})");
  ASSERT_NE(schema, nullptr);
  EXPECT_EQ(schema->field_names(), (std::vector<std::string>{"hour"}));
  // 2014-10-21 was a Tuesday ("1"); 2000-02-29 a Tuesday too; 14023012 is no date.
  FeatureRow a = {{"hour", "14102113"}}, b = {{"hour", "00022923"}}, c = {{"hour", "14023012"}};
  FeatureRow d = {{"hour", "14102113"}, {"weekday", "6"}};  // a given value wins
  AssemblyStats stats;
  auto got = AssembleRaw(*schema, {{&a}, {&b}, {&c}, {&d}}, &stats);
  ASSERT_TRUE(got.ok());
  const Tensor& s = got->at("sparse");
  EXPECT_EQ(std::vector<int64_t>(s.span<int64_t>().begin(), s.span<int64_t>().end()),
            (std::vector<int64_t>{2, 2, 3, 2, 0, 0, 2, 7}));
  EXPECT_EQ(stats.invalid, 2);
}

// The stored-row path: one encoding per row and schema, kept on the row, giving what encoding
// the values afresh gives.
TEST(Schema, StoredRowEncodingIsMadeOnceAndMatchesAFreshOne) {
  const std::string text = R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int32", "shape": ["batch", 4], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 3, "tokens": ["a", "b"]},
      {"name": "s", "kind": "sequence", "encoding": "hash", "size": 50, "length": 2},
      {"name": "wd", "kind": "categorical", "derive": "weekday", "encoding": "identity",
       "size": 7}]},
    {"name": "d", "dtype": "float32", "shape": ["batch"], "fields": [
      {"name": "I1", "kind": "dense", "default": 2.5}]}]})";
  auto schema = MustParse(text);
  auto other = MustParse(text);  // the same text: a schema of its own
  ASSERT_NE(schema, nullptr);
  ASSERT_NE(other, nullptr);
  StoredRow user(FeatureRow{{"v", "b"}, {"s", "p,q,r"}, {"hour", "14102113"}, {"I1", "x"}});
  StoredRow item(FeatureRow{{"v", "zz"}, {"I1", ""}});
  EncodedRowPtr u1 = schema->Encoded(user), u2 = schema->Encoded(user);
  EXPECT_EQ(u1, u2);  // cached on the row
  EXPECT_NE(other->Encoded(user), u1);
  EXPECT_EQ(schema->Encoded(user), u1);  // the other schema took its own slot
  FeatureRow context = {{"s", ""}};
  EncodedRowPtr ctx = schema->Encode(context), it = schema->Encoded(item);
  AssemblyLayers cached;
  cached.depth = 3;
  cached.rows = {ctx.get(), it.get(), u1.get(), nullptr, nullptr,
                 u1.get(),  nullptr,  it.get(), nullptr};
  AssemblyStats got_stats, want_stats;
  auto got = schema->Assemble(cached, &got_stats);
  auto want = AssembleRaw(*schema,
                          {{&context, &item.values(), &user.values()},
                           {nullptr, nullptr, &user.values()},
                           {nullptr, &item.values(), nullptr}},
                          &want_stats);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(want.ok());
  for (const char* name : {"x", "d"}) {
    const Tensor &g = got->at(name), &w = want->at(name);
    ASSERT_EQ(g.dims(), w.dims());
    EXPECT_EQ(std::memcmp(g.raw(), w.raw(), g.nbytes()), 0) << name;
  }
  const Tensor& x = got->at("x");
  EXPECT_EQ(x.data<int32_t>()[0], 0);  // item "zz": out of vocabulary
  EXPECT_EQ(x.data<int32_t>()[4], 2);  // no item: the user's "b"
  EXPECT_EQ(x.data<int32_t>()[3], 1);  // weekday derived from the user's hour (a Tuesday)
  EXPECT_EQ(x.data<int32_t>()[11], 0);
  EXPECT_EQ(got->at("d").data<float>()[0], 2.5f);  // the item's empty I1: missing
  EXPECT_EQ(got_stats.rows, 3);
  EXPECT_EQ(got_stats.missing, want_stats.missing);
  EXPECT_EQ(got_stats.out_of_vocab, want_stats.out_of_vocab);
  EXPECT_EQ(got_stats.invalid, want_stats.invalid);
  // Row 0: I1 (item, empty). Row 1: none. Row 2: s, wd, I1 (item, empty).
  EXPECT_EQ(got_stats.missing, 4);
  EXPECT_EQ(got_stats.out_of_vocab, 2);  // the item's "zz", rows 0 and 2
  EXPECT_EQ(got_stats.invalid, 1);       // the user's I1 "x", row 1

  // A row encoded by another schema is refused, not misread.
  AssemblyLayers foreign;
  foreign.rows = {other->Encoded(user).get()};
  EXPECT_EQ(schema->Assemble(foreign, nullptr).status().code(), StatusCode::kInvalidArgument);
}

// A batch whose context and user are the same row for every candidate (resolved once, with each
// item laid over them) gives what assembling every candidate on its own gives.
TEST(Schema, BatchOfSharedAndPerRowLayersEqualsRowByRow) {
  auto schema = MustParse(R"({"schema_version": 1, "inputs": [
    {"name": "ids", "dtype": "int64", "shape": ["batch", 7], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 4,
       "tokens": ["a", "b", "c"]},
      {"name": "h", "kind": "categorical", "encoding": "hash", "size": 97},
      {"name": "n", "kind": "categorical", "encoding": "identity", "size": 10},
      {"name": "seq", "kind": "sequence", "encoding": "vocab", "size": 4, "tokens": ["a", "b", "c"],
       "length": 2, "padding_id": 3},
      {"name": "hod", "kind": "categorical", "derive": "hour_of_day", "encoding": "identity",
       "size": 24},
      {"name": "wd", "kind": "categorical", "derive": "weekday", "encoding": "identity",
       "size": 7}]},
    {"name": "dense", "dtype": "float32", "shape": ["batch", 2], "fields": [
      {"name": "x", "kind": "dense", "default": -1},
      {"name": "y", "kind": "dense", "default": 9, "transform": "log1p_relu",
       "transform_in_model": false}]}]})");
  ASSERT_NE(schema, nullptr);
  const std::vector<FeatureRow> contexts = {
      {}, {{"x", "0.5"}}, {{"hour", "14102113"}, {"v", "zz"}}};
  const std::vector<FeatureRow> users = {
      {}, {{"v", "b"}, {"n", "12"}, {"seq", "c,a,b"}, {"hour", "bad"}, {"y", "3"}}};
  const std::vector<FeatureRow> items = {
      {},
      {{"v", "c"}},
      {{"v", ""}, {"h", "x1"}, {"x", "nan?"}},
      {{"hour", "14102223"}, {"wd", "5"}},
      {{"seq", ""}, {"n", "4"}, {"y", "-2"}},
      {{"hod", "7"}, {"hour", "99999999"}, {"seq", "b,,q"}},
  };
  for (const FeatureRow& context : contexts) {
    for (const FeatureRow& user : users) {
      SCOPED_TRACE("context of " + std::to_string(context.size()) + ", user of " +
                   std::to_string(user.size()));
      std::vector<std::vector<const FeatureRow*>> batch;
      for (size_t i = 0; i <= items.size(); ++i) {
        // A missing item (null) among them; the user missing for the last candidate.
        const FeatureRow* item = i < items.size() ? &items[i] : nullptr;
        batch.push_back({&context, item, i + 1 == items.size() ? nullptr : &user});
      }
      // Shared context and user rows, as the ranker passes them.
      AssemblyLayers shared;
      shared.depth = 3;
      EncodedRowPtr ctx = schema->Encode(context), usr = schema->Encode(user);
      std::vector<EncodedRowPtr> item_rows;
      for (const auto& item : items) item_rows.push_back(schema->Encode(item));
      for (size_t i = 0; i <= items.size(); ++i) {
        shared.rows.push_back(ctx.get());
        shared.rows.push_back(i < items.size() ? item_rows[i].get() : nullptr);
        shared.rows.push_back(i + 1 == items.size() ? nullptr : usr.get());
      }
      AssemblyStats got_stats, want_stats;
      auto got = schema->Assemble(shared, &got_stats);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      for (size_t r = 0; r < batch.size(); ++r) {
        auto one = AssembleRaw(*schema, {batch[r]}, &want_stats);
        ASSERT_TRUE(one.ok());
        for (const char* name : {"ids", "dense"}) {
          const Tensor &g = got->at(name), &w = one->at(name);
          const size_t row = w.nbytes();
          EXPECT_EQ(std::memcmp(static_cast<const char*>(g.raw()) + r * row, w.raw(), row), 0)
              << name << " row " << r;
        }
      }
      EXPECT_EQ(got_stats.rows, want_stats.rows);
      EXPECT_EQ(got_stats.missing, want_stats.missing);
      EXPECT_EQ(got_stats.out_of_vocab, want_stats.out_of_vocab);
      EXPECT_EQ(got_stats.invalid, want_stats.invalid);
    }
  }
}

TEST(Schema, MoreSchemasThanEncodingSlotsStillEncodeRight) {
  const std::string text = R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int64", "shape": ["batch", 1], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 3, "tokens": ["a", "b"]}]}]})";
  StoredRow row(FeatureRow{{"v", "b"}});
  std::vector<std::shared_ptr<const Schema>> schemas;
  for (int i = 0; i < StoredRow::kEncodingSlots + 3; ++i) schemas.push_back(MustParse(text));
  for (int round = 0; round < 2; ++round) {
    for (const auto& schema : schemas) {
      ASSERT_NE(schema, nullptr);
      EncodedRowPtr e = schema->Encoded(row);
      AssemblyLayers one;
      one.rows = {e.get()};
      auto got = schema->Assemble(one, nullptr);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->at("x").data<int64_t>()[0], 2);
    }
  }
}

TEST(Schema, ASlotOfASchemaThatIsGoneIsReused) {
  const std::string text = R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int64", "shape": ["batch", 1], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 3, "tokens": ["a", "b"]}]}]})";
  StoredRow row(FeatureRow{{"v", "a"}});
  std::vector<std::shared_ptr<const Schema>> schemas;
  for (int i = 0; i < StoredRow::kEncodingSlots; ++i) {
    schemas.push_back(MustParse(text));
    ASSERT_NE(schemas.back(), nullptr);
    (void)schemas.back()->Encoded(row);
  }
  auto late = MustParse(text);  // every slot taken by a live schema: encoded each call
  ASSERT_NE(late, nullptr);
  EXPECT_NE(late->Encoded(row), late->Encoded(row));
  schemas[1].reset();  // its slot is free for the taking now
  EncodedRowPtr kept = late->Encoded(row);
  EXPECT_EQ(late->Encoded(row), kept);
  for (const auto& schema : {schemas[0], schemas[2], schemas[3]}) {
    EXPECT_EQ(schema->Encoded(row), schema->Encoded(row));  // theirs untouched
  }
}

// Readers of live schemas race with schemas that come and go (their slots reused): every
// reader still assembles the right value from the row's kept encoding.
TEST(Schema, EncodingsAreSharedSafelyAcrossThreads) {
  const std::string text = R"({"schema_version": 1, "inputs": [
    {"name": "x", "dtype": "int64", "shape": ["batch", 1], "fields": [
      {"name": "v", "kind": "categorical", "encoding": "vocab", "size": 4,
       "tokens": ["a", "b", "c"]}]}]})";
  std::vector<std::unique_ptr<StoredRow>> rows;
  for (const char* v : {"a", "b", "c", "zz"}) {
    rows.push_back(std::make_unique<StoredRow>(FeatureRow{{"v", v}}));
  }
  const std::vector<int64_t> want = {1, 2, 3, 0};
  std::atomic<bool> wrong{false};
  auto reader = [&] {
    auto schema = MustParse(text);
    for (int i = 0; i < 2000 && schema != nullptr; ++i) {
      const size_t r = static_cast<size_t>(i) % rows.size();
      EncodedRowPtr e = schema->Encoded(*rows[r]);
      AssemblyLayers one;
      one.rows = {e.get()};
      auto got = schema->Assemble(one, nullptr);
      if (!got.ok() || got->at("x").data<int64_t>()[0] != want[r]) wrong = true;
    }
  };
  auto churn = [&] {  // short-lived schemas take slots and leave them
    for (int i = 0; i < 200; ++i) {
      auto schema = MustParse(text);
      for (const auto& row : rows) (void)schema->Encoded(*row);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back(reader);
  threads.emplace_back(churn);
  for (auto& t : threads) t.join();
  EXPECT_FALSE(wrong);
}

TEST(Schema, ErrorsNameTheSourceAndTheField) {
  auto check = [](const std::string& text, StatusCode code, const std::string& needle) {
    auto s = Schema::Parse(text, "models/x/schema.json");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), code) << s.status().ToString();
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status().message();
  };
  check("{", StatusCode::kInvalidArgument, "models/x/schema.json: not a JSON object");
  check(R"({"schema_version": 2, "inputs": []})", StatusCode::kUnimplemented, "schema_version 2");
  const std::string head = R"({"schema_version": 1, "inputs": [{"name": "s", "dtype": "int64",
      "shape": ["batch", 1], "fields": [)";
  check(head + R"({"name": "C7", "kind": "categorical", "encoding": "vocab", "size": 2,
      "tokens": ["a", "b"]}]}]})",
        StatusCode::kInvalidArgument, "input 's' field 'C7': size 2 is too small for 2 tokens");
  check(head + R"({"name": "C1", "kind": "categorical", "encoding": "crc", "size": 9}]}]})",
        StatusCode::kInvalidArgument, "field 'C1': unknown encoding 'crc'");
  check(head + R"({"name": "C1", "kind": "categorical", "encoding": "hash", "size": 1}]}]})",
        StatusCode::kInvalidArgument, "size >= 2");
  check(head + R"({"name": "I1", "kind": "dense"}]}]})", StatusCode::kInvalidArgument,
        "field 'I1': a dense field cannot fill a int64 input");
  check(head + R"({"name": "a", "kind": "categorical", "encoding": "identity", "size": 9},
      {"name": "b", "kind": "categorical", "encoding": "identity", "size": 9}]}]})",
        StatusCode::kInvalidArgument, "input 's': fields fill 2 columns but the shape has 1");
  check(head + R"({"name": "q", "kind": "sequence", "encoding": "identity", "size": 9}]}]})",
        StatusCode::kInvalidArgument, "field 'q': missing \"length\"");
  EXPECT_EQ(Schema::Load("/nonexistent/schema.json").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace clickrt::features
