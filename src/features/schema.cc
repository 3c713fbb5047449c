// Schema parsing and feature assembly; the encodings follow python/clickrt_zoo/data/encoding.py
// and schema.py exactly (val_inputs/*.pb of every bundled model are the test of that).
#include "features/schema.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace clickrt::features {
namespace {

using nlohmann::json;

enum class Kind { kDense, kCategorical, kSequence };
enum class Encoding { kNone, kVocab, kHash, kIdentity };
enum class Derive { kNone, kHourOfDay, kWeekday };

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Field {
  std::string name;
  Kind kind = Kind::kDense;
  Encoding encoding = Encoding::kNone;
  int64_t size = 0;
  float default_value = 0;
  bool log1p_relu = false;  // applied here: the model does not do it
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> vocab;
  int64_t length = 1;  // columns filled
  std::string separator = ",";
  int64_t padding_id = 0;
  Derive derive = Derive::kNone;
  int64_t offset = 0;  // first column in its input
};

struct Input {
  std::string name;
  DType dtype = DType::kUndefined;
  bool rank1 = false;  // shape ["batch"]: one value per row
  int64_t width = 1;
  std::vector<Field> fields;
};

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = kFnvOffset;
  for (unsigned char c : bytes) h = (h ^ c) * kFnvPrime;
  return h;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Avazu's derived fields from "hour" (YYMMDDHH, year 20YY), as python/clickrt_zoo/data/avazu.py
// reads them; an impossible date or hour gives no value.
std::optional<std::string> DeriveFromHour(Derive derive, const std::string& hour) {
  if (hour.size() != 8) return std::nullopt;
  for (char c : hour) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  auto num = [&](int pos) { return (hour[pos] - '0') * 10 + (hour[pos + 1] - '0'); };
  int year = 2000 + num(0), month = num(2), day = num(4), hh = num(6);
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  if (month < 1 || month > 12 || hh > 23 || day < 1) return std::nullopt;
  if (day > kDays[month - 1] + (month == 2 && leap ? 1 : 0)) return std::nullopt;
  if (derive == Derive::kHourOfDay) return hour.substr(6, 2);
  int64_t monday_based = ((DaysFromCivil(year, month, day) + 3) % 7 + 7) % 7;  // 1970-01-01: Thu
  return std::to_string(monday_based);
}

// ---- parsing ----

class FieldParser {
 public:
  FieldParser(const std::string& where, const json& spec) : where_(where), spec_(spec) {}

  Status Error(const std::string& why) const { return InvalidArgument(where_ + ": " + why); }

  StatusOr<std::string> String(const char* key, const char* fallback = nullptr) const {
    auto it = spec_.find(key);
    if (it == spec_.end()) {
      if (fallback != nullptr) return std::string(fallback);
      return Error(std::string("missing \"") + key + "\"");
    }
    if (!it->is_string()) return Error(std::string("\"") + key + "\" must be a string");
    return it->get<std::string>();
  }

  StatusOr<int64_t> Int(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    auto it = spec_.find(key);
    if (it == spec_.end()) {
      if (fallback) return *fallback;
      return Error(std::string("missing \"") + key + "\"");
    }
    if (!it->is_number_integer()) return Error(std::string("\"") + key + "\" must be an integer");
    return it->get<int64_t>();
  }

  StatusOr<double> Number(const char* key, double fallback) const {
    auto it = spec_.find(key);
    if (it == spec_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return Error(std::string("\"") + key + "\" must be a number");
    return it->get<double>();
  }

  StatusOr<bool> Bool(const char* key, bool fallback) const {
    auto it = spec_.find(key);
    if (it == spec_.end()) return fallback;
    if (!it->is_boolean()) return Error(std::string("\"") + key + "\" must be true or false");
    return it->get<bool>();
  }

 private:
  const std::string& where_;
  const json& spec_;
};

Status ParseEncoding(const FieldParser& p, const json& spec, Field* f) {
  ASSIGN_OR_RETURN(std::string encoding, p.String("encoding"));
  ASSIGN_OR_RETURN(f->size, p.Int("size"));
  if (encoding == "vocab") {
    f->encoding = Encoding::kVocab;
    auto tokens = spec.find("tokens");
    if (tokens == spec.end() || !tokens->is_array())
      return p.Error("vocab needs a \"tokens\" list");
    for (size_t i = 0; i < tokens->size(); ++i) {
      if (!(*tokens)[i].is_string()) return p.Error("token " + std::to_string(i) + " not a string");
      // The first occurrence wins, as the trainer's stable search finds it.
      f->vocab.emplace((*tokens)[i].get<std::string>(), static_cast<int64_t>(i) + 1);
    }
    if (f->size < static_cast<int64_t>(tokens->size()) + 1) {
      return p.Error("size " + std::to_string(f->size) + " is too small for " +
                     std::to_string(tokens->size()) + " tokens plus id 0");
    }
  } else if (encoding == "hash") {
    f->encoding = Encoding::kHash;
    ASSIGN_OR_RETURN(std::string hash, p.String("hash", "fnv1a_64"));
    if (hash != "fnv1a_64") return p.Error("unknown hash '" + hash + "' (fnv1a_64)");
    if (f->size < 2) return p.Error("hash encoding needs size >= 2 (id 0 is reserved)");
  } else if (encoding == "identity") {
    f->encoding = Encoding::kIdentity;
    if (f->size < 1) return p.Error("identity encoding needs size >= 1");
  } else {
    return p.Error("unknown encoding '" + encoding + "' (vocab, hash or identity)");
  }
  ASSIGN_OR_RETURN(std::string derive, p.String("derive", ""));
  if (derive == "hour_of_day") {
    f->derive = Derive::kHourOfDay;
  } else if (derive == "weekday") {
    f->derive = Derive::kWeekday;
  } else if (!derive.empty()) {
    return p.Error("unknown derive rule '" + derive + "' (hour_of_day or weekday)");
  }
  return Status::Ok();
}

StatusOr<Field> ParseField(const std::string& where, const json& spec) {
  if (!spec.is_object()) return InvalidArgument(where + ": a field must be an object");
  FieldParser p(where, spec);
  Field f;
  ASSIGN_OR_RETURN(f.name, p.String("name"));
  if (f.name.empty()) return p.Error("empty field name");
  ASSIGN_OR_RETURN(std::string kind, p.String("kind"));
  if (kind == "dense") {
    f.kind = Kind::kDense;
    ASSIGN_OR_RETURN(double dflt, p.Number("default", 0.0));
    f.default_value = static_cast<float>(dflt);
    ASSIGN_OR_RETURN(std::string transform, p.String("transform", ""));
    ASSIGN_OR_RETURN(bool in_model, p.Bool("transform_in_model", true));
    if (!transform.empty() && transform != "log1p_relu") {
      return p.Error("unknown transform '" + transform + "' (log1p_relu)");
    }
    f.log1p_relu = !transform.empty() && !in_model;
  } else if (kind == "categorical") {
    f.kind = Kind::kCategorical;
    RETURN_IF_ERROR(ParseEncoding(p, spec, &f));
  } else if (kind == "sequence") {
    f.kind = Kind::kSequence;
    RETURN_IF_ERROR(ParseEncoding(p, spec, &f));
    ASSIGN_OR_RETURN(f.length, p.Int("length"));
    if (f.length < 1) return p.Error("length must be >= 1");
    ASSIGN_OR_RETURN(f.separator, p.String("separator", ","));
    if (f.separator.empty()) return p.Error("empty separator");
    ASSIGN_OR_RETURN(f.padding_id, p.Int("padding_id", 0));
    ASSIGN_OR_RETURN(std::string order, p.String("order", "most_recent_first"));
    if (order != "most_recent_first") {
      return p.Error("unknown order '" + order + "' (most_recent_first)");
    }
  } else {
    return p.Error("unknown kind '" + kind + "' (dense, categorical or sequence)");
  }
  return f;
}

StatusOr<Input> ParseInput(const std::string& source, size_t index, const json& spec) {
  std::string where = source + ": input " + std::to_string(index);
  if (!spec.is_object()) return InvalidArgument(where + ": must be an object");
  FieldParser p(where, spec);
  Input in;
  ASSIGN_OR_RETURN(in.name, p.String("name"));
  where = source + ": input '" + in.name + "'";
  FieldParser named(where, spec);
  ASSIGN_OR_RETURN(std::string dtype, named.String("dtype"));
  auto parsed_dtype = DTypeFromName(dtype);
  if (!parsed_dtype.ok() || (*parsed_dtype != DType::kFloat32 && *parsed_dtype != DType::kInt64 &&
                             *parsed_dtype != DType::kInt32)) {
    return named.Error("dtype '" + dtype + "' is not float32, int64 or int32");
  }
  in.dtype = parsed_dtype.value();
  auto shape = spec.find("shape");
  if (shape == spec.end() || !shape->is_array() || shape->empty() || shape->size() > 2 ||
      (*shape)[0] != "batch") {
    return named.Error("shape must be [\"batch\"] or [\"batch\", n]");
  }
  in.rank1 = shape->size() == 1;
  if (!in.rank1) {
    if (!(*shape)[1].is_number_integer() || (*shape)[1].get<int64_t>() < 1) {
      return named.Error("shape[1] must be a positive integer");
    }
    in.width = (*shape)[1].get<int64_t>();
  }
  auto fields = spec.find("fields");
  if (fields == spec.end() || !fields->is_array() || fields->empty()) {
    return named.Error("needs a non-empty \"fields\" list");
  }
  int64_t offset = 0;
  for (size_t i = 0; i < fields->size(); ++i) {
    std::string field_where = where + " field " + std::to_string(i);
    if ((*fields)[i].is_object() && (*fields)[i].contains("name") &&
        (*fields)[i]["name"].is_string()) {
      field_where = where + " field '" + (*fields)[i]["name"].get<std::string>() + "'";
    }
    ASSIGN_OR_RETURN(Field f, ParseField(field_where, (*fields)[i]));
    bool float_input = in.dtype == DType::kFloat32;
    if ((f.kind == Kind::kDense) != float_input) {
      return InvalidArgument(field_where + ": a " +
                             std::string(f.kind == Kind::kDense ? "dense" : "categorical") +
                             " field cannot fill a " + dtype + " input");
    }
    f.offset = offset;
    offset += f.length;
    in.fields.push_back(std::move(f));
  }
  if (offset != in.width) {
    return named.Error("fields fill " + std::to_string(offset) + " columns but the shape has " +
                       std::to_string(in.width));
  }
  return in;
}

// ---- encoding ----

// One raw token -> id, counting what did not encode. `token` is not empty.
int64_t EncodeToken(const Field& f, std::string_view token, AssemblyStats* stats) {
  switch (f.encoding) {
    case Encoding::kVocab: {
      auto it = f.vocab.find(token);
      if (it != f.vocab.end()) return it->second;
      ++stats->out_of_vocab;
      return 0;
    }
    case Encoding::kHash:
      return 1 + static_cast<int64_t>(Fnv1a64(token) % static_cast<uint64_t>(f.size - 1));
    case Encoding::kIdentity: {
      int64_t n = 0;
      if (!ParseInt64(token, &n)) {
        ++stats->invalid;
        return 0;
      }
      if (n < 0 || n >= f.size) {
        ++stats->out_of_vocab;
        return 0;
      }
      return n;
    }
    case Encoding::kNone:
      break;
  }
  return 0;
}

template <typename T>
void FillIds(const Field& f, const std::string* value, T* out, AssemblyStats* stats) {
  if (f.kind == Kind::kCategorical) {
    out[0] = (value == nullptr) ? 0 : static_cast<T>(EncodeToken(f, *value, stats));
    return;
  }
  // Sequence: most recent first, cut to length, padded.
  int64_t n = 0;
  if (value != nullptr && !value->empty()) {
    std::string_view rest(*value);
    while (n < f.length) {
      size_t sep = rest.find(f.separator);
      std::string_view token = rest.substr(0, sep);
      if (token.empty()) {
        ++stats->invalid;
        out[n++] = 0;
      } else {
        out[n++] = static_cast<T>(EncodeToken(f, token, stats));
      }
      if (sep == std::string_view::npos) break;
      rest.remove_prefix(sep + f.separator.size());
    }
  }
  for (; n < f.length; ++n) out[n] = static_cast<T>(f.padding_id);
}

float DenseValue(const Field& f, const std::string* value, AssemblyStats* stats) {
  if (value == nullptr) return f.default_value;
  double x = 0;
  const char* end = value->data() + value->size();
  auto [ptr, ec] = std::from_chars(value->data(), end, x);
  if (ec != std::errc() || ptr != end) {
    ++stats->invalid;
    return f.default_value;
  }
  float v = static_cast<float>(x);
  // float32 like the trainer's numpy, so the value is the same bit for bit.
  return f.log1p_relu ? std::log1p(std::max(v, 0.0f)) : v;
}

// One field value -> its columns at `out` (the input's dtype), counting into `stats`. `value` is
// null when absent. Empty counts as missing, except for a sequence (an empty history).
void EncodeValue(const Field& f, DType dtype, const std::string* value, void* out,
                 AssemblyStats* stats) {
  if (value == nullptr || (value->empty() && f.kind != Kind::kSequence)) {
    ++stats->missing;
    value = nullptr;
  }
  switch (dtype) {
    case DType::kFloat32:
      *static_cast<float*>(out) = DenseValue(f, value, stats);
      break;
    case DType::kInt64:
      FillIds(f, value, static_cast<int64_t*>(out), stats);
      break;
    case DType::kInt32:
      FillIds(f, value, static_cast<int32_t*>(out), stats);
      break;
    default:  // Parse admits no other dtype
      break;
  }
}

// What one encoded value counted (AssemblyStats without rows).
struct Counts {
  int32_t missing = 0, out_of_vocab = 0, invalid = 0;
};

// What a value fills: field slots first (schema order), then one slot per derived field for the
// value derived from a row's "hour".
struct Slot {
  const Field* field = nullptr;
  size_t field_index = 0;  // the field slot it fills (itself for a field slot)
  size_t input = 0;
  DType dtype = DType::kUndefined;
  size_t column_bytes = 0;  // offset of the field's first column in a tensor row
  size_t bytes = 0;         // its columns
};

// Copies one slot's columns: one load and store for the common single column.
inline void CopyColumns(unsigned char* to, const unsigned char* from, size_t bytes) {
  switch (bytes) {
    case 4:
      std::memcpy(to, from, 4);
      break;
    case 8:
      std::memcpy(to, from, 8);
      break;
    default:
      std::memcpy(to, from, bytes);
      break;
  }
}

}  // namespace

// What a row gives, encoded: one entry per slot it fills (a field it holds; a derived field's
// value from its "hour"), in slot order. Columns of up to 8 bytes sit in the entry itself; wider
// ones (sequences) in `wide`. An entry whose encoding counted something has its Counts in
// `counts`. The entries of a row of up to kInline values (an item row) sit in the object itself,
// so what assembly reads per candidate is a few adjacent cache lines.
class EncodedRow {
 public:
  struct Entry {
    uint32_t slot = 0;
    uint32_t counts = kNone;  // index in `counts`
    uint64_t columns = 0;     // the columns (<= 8 bytes), else their offset in `wide`
    static constexpr uint32_t kNone = 0xffffffffu;
  };
  static constexpr size_t kInline = 8;

  // What assembly reads for every row first: the id, the size and the inline entries.
  uint64_t schema_id = 0;

  const Entry* begin() const { return size_ <= kInline ? inline_ : more_.data(); }
  const Entry* end() const { return begin() + size_; }
  void Add(const Entry& e) {
    if (size_ < kInline) {
      inline_[size_] = e;
    } else {
      if (size_ == kInline) more_.assign(inline_, inline_ + kInline);
      more_.push_back(e);
    }
    ++size_;
  }
  const unsigned char* Columns(const Entry& e, size_t bytes) const {
    return bytes <= sizeof e.columns ? reinterpret_cast<const unsigned char*>(&e.columns)
                                     : wide.data() + e.columns;
  }

 private:
  size_t size_ = 0;
  Entry inline_[kInline];

 public:
  std::vector<Counts> counts;
  std::vector<unsigned char> wide;

 private:
  std::vector<Entry> more_;  // all entries, once there are more than kInline
};

// The schemas alive (Parse registers one, ~Schema removes it): a stored row's encoding slot
// held by a schema that is gone may be reused (nothing can read that encoding any more).
class LiveSchemas {
 public:
  static LiveSchemas& Get() {
    static LiveSchemas* live = new LiveSchemas;  // never destroyed: schemas may outlive main
    return *live;
  }
  void Add(uint64_t id) {
    std::lock_guard lock(mutex_);
    ids_.insert(id);
  }
  void Remove(uint64_t id) {
    std::lock_guard lock(mutex_);
    ids_.erase(id);
  }
  bool Alive(uint64_t id) {
    std::lock_guard lock(mutex_);
    return ids_.count(id) != 0;
  }

 private:
  std::mutex mutex_;
  std::unordered_set<uint64_t> ids_;
};

constexpr uint64_t kSlotClaimed = ~uint64_t{0};  // a slot being filled

struct Schema::Impl {
  std::string source;
  std::vector<Input> inputs;
  uint64_t id = 0;  // which schema encoded a row (unique in the process, never reused)
  std::vector<Slot> slots;
  size_t field_slots = 0;
  // Every field's value when no source gives one (its default, counted missing).
  std::vector<std::vector<unsigned char>> absent;

  void MakeSlots();
  // Appends slot `i`'s entry for `value` to `out`; `invalid` more is counted (an hour that
  // gives no derived value).
  void AddEntry(size_t i, const std::string* value, int32_t invalid, EncodedRow* out) const;
  std::unique_ptr<EncodedRow> EncodeRow(const FeatureRow& row) const;
};

void Schema::Impl::MakeSlots() {
  for (size_t k = 0; k < inputs.size(); ++k) {
    const size_t elem = DTypeSize(inputs[k].dtype);
    for (const Field& f : inputs[k].fields) {
      Slot s;
      s.field = &f;
      s.field_index = slots.size();
      s.input = k;
      s.dtype = inputs[k].dtype;
      s.column_bytes = static_cast<size_t>(f.offset) * elem;
      s.bytes = static_cast<size_t>(f.length) * elem;
      slots.push_back(s);
    }
  }
  field_slots = slots.size();
  for (size_t i = 0; i < field_slots; ++i) {
    if (slots[i].field->derive != Derive::kNone) slots.push_back(slots[i]);
  }
  for (size_t i = 0; i < field_slots; ++i) {
    AssemblyStats unused;
    absent.emplace_back(slots[i].bytes);
    EncodeValue(*slots[i].field, slots[i].dtype, nullptr, absent.back().data(), &unused);
  }
}

void Schema::Impl::AddEntry(size_t i, const std::string* value, int32_t invalid,
                            EncodedRow* out) const {
  const Slot& s = slots[i];
  EncodedRow::Entry e;
  e.slot = static_cast<uint32_t>(i);
  AssemblyStats st;
  st.invalid = invalid;
  if (s.bytes <= sizeof e.columns) {
    alignas(8) unsigned char columns[sizeof e.columns] = {};
    EncodeValue(*s.field, s.dtype, value, columns, &st);
    std::memcpy(&e.columns, columns, sizeof columns);
  } else {
    e.columns = out->wide.size();
    out->wide.resize(out->wide.size() + s.bytes);
    EncodeValue(*s.field, s.dtype, value, out->wide.data() + e.columns, &st);
  }
  if (st.missing != 0 || st.out_of_vocab != 0 || st.invalid != 0) {
    e.counts = static_cast<uint32_t>(out->counts.size());
    out->counts.push_back({static_cast<int32_t>(st.missing), static_cast<int32_t>(st.out_of_vocab),
                           static_cast<int32_t>(st.invalid)});
  }
  out->Add(e);
}

std::unique_ptr<EncodedRow> Schema::Impl::EncodeRow(const FeatureRow& row) const {
  auto out = std::make_unique<EncodedRow>();
  out->schema_id = id;
  if (row.empty()) return out;
  for (size_t i = 0; i < field_slots; ++i) {
    auto it = row.find(slots[i].field->name);
    if (it != row.end()) AddEntry(i, &it->second, 0, out.get());
  }
  if (slots.size() > field_slots) {
    auto hour = row.find("hour");
    // The values derived fields take when no source holds the field itself.
    for (size_t h = field_slots; hour != row.end() && h < slots.size(); ++h) {
      if (auto derived = DeriveFromHour(slots[h].field->derive, hour->second)) {
        AddEntry(h, &*derived, 0, out.get());
      } else {
        AddEntry(h, nullptr, 1, out.get());  // the default, counted missing, and invalid
      }
    }
  }
  return out;
}

Schema::Schema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Schema::~Schema() { LiveSchemas::Get().Remove(impl_->id); }

StatusOr<std::shared_ptr<const Schema>> Schema::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open schema " + path);
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

StatusOr<std::shared_ptr<const Schema>> Schema::Parse(const std::string& json_text,
                                                      const std::string& source) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument(source + ": not a JSON object");
  }
  auto version = doc.find("schema_version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1) {
    return Unimplemented(source + ": schema_version " +
                         (version == doc.end() ? std::string("missing") : version->dump()) +
                         ", this clickrt reads version 1");
  }
  auto inputs = doc.find("inputs");
  if (inputs == doc.end() || !inputs->is_array() || inputs->empty()) {
    return InvalidArgument(source + ": needs a non-empty \"inputs\" list");
  }
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  for (size_t i = 0; i < inputs->size(); ++i) {
    ASSIGN_OR_RETURN(Input input, ParseInput(source, i, (*inputs)[i]));
    for (const Input& other : impl->inputs) {
      if (other.name == input.name) {
        return InvalidArgument(source + ": input '" + input.name + "' listed twice");
      }
    }
    impl->inputs.push_back(std::move(input));
  }
  static std::atomic<uint64_t> next_id{1};
  impl->id = next_id.fetch_add(1);
  impl->MakeSlots();
  LiveSchemas::Get().Add(impl->id);
  return std::shared_ptr<const Schema>(new Schema(std::move(impl)));
}

std::vector<std::string> Schema::input_names() const {
  std::vector<std::string> names;
  for (const Input& in : impl_->inputs) names.push_back(in.name);
  return names;
}

std::vector<std::string> Schema::field_names() const {
  std::vector<std::string> names;
  bool hour_listed = false;
  for (const Input& in : impl_->inputs) {
    for (const Field& f : in.fields) {
      if (f.derive == Derive::kNone) {
        names.push_back(f.name);
      } else if (!hour_listed) {
        names.push_back("hour");
        hour_listed = true;
      }
    }
  }
  return names;
}

EncodedRowPtr Schema::Encode(const FeatureRow& row) const { return impl_->EncodeRow(row); }

// A slot's protocol. Reader: schema == mine (acquire), then the encoding is there and stays
// (a slot changes hands only once its schema is gone, and the reader's is not). Writer: claims a
// slot that is empty or whose schema is gone by CAS to kSlotClaimed, frees the encoding that was
// there, stores its own, then publishes its schema (release).
EncodedRowPtr Schema::Encoded(const StoredRow& row) const {
  const uint64_t id = impl_->id;
  for (int i = 0; i < StoredRow::kEncodingSlots; ++i) {
    const StoredRow::EncodingSlot& slot = row.encoding_slot(i);
    if (slot.schema.load(std::memory_order_acquire) == id) {
      return EncodedRowPtr(EncodedRowPtr(), slot.encoding.load(std::memory_order_acquire));
    }
  }
  std::unique_ptr<EncodedRow> made = impl_->EncodeRow(row.values());
  for (int i = 0; i < StoredRow::kEncodingSlots; ++i) {
    StoredRow::EncodingSlot& slot = row.encoding_slot(i);
    uint64_t holder = slot.schema.load(std::memory_order_acquire);
    if (holder == kSlotClaimed || (holder != 0 && LiveSchemas::Get().Alive(holder))) continue;
    if (!slot.schema.compare_exchange_strong(holder, kSlotClaimed, std::memory_order_acq_rel)) {
      continue;
    }
    const EncodedRow* kept = made.release();
    delete slot.encoding.exchange(kept, std::memory_order_acq_rel);
    slot.schema.store(id, std::memory_order_release);
    return EncodedRowPtr(EncodedRowPtr(), kept);
  }
  return EncodedRowPtr(std::move(made));  // every slot held by another live schema
}

StoredRow::~StoredRow() {
  for (EncodingSlot& slot : encodings_) delete slot.encoding.load(std::memory_order_acquire);
}

// Assembly. A field's value comes from the first source (front to back) that holds it; failing
// that, for a derived field, from the first source holding "hour"; failing that, its default.
// As ranks: held by layer l: l; derived from layer l's hour: depth + l; default: 2 * depth; the
// lowest rank wins. Layers that are the same row for every batch row (a ranking request's
// context and user) are resolved once into a base row; each batch row is the base row with the
// entries of its own layers (the item) that outrank the base laid over it.
StatusOr<std::map<std::string, Tensor>> Schema::Assemble(const AssemblyLayers& layers,
                                                         AssemblyStats* stats) const {
  const Impl& impl = *impl_;
  const size_t depth = layers.depth;
  if (depth == 0 || layers.rows.size() % depth != 0) {
    return InvalidArgument(impl.source + ": " + std::to_string(layers.rows.size()) +
                           " sources do not make rows of depth " + std::to_string(depth));
  }
  auto foreign = [&] {
    return InvalidArgument(impl.source + ": a source row was encoded by another schema");
  };
  const size_t rows = layers.rows.size() / depth;
  std::map<std::string, Tensor> out;
  std::vector<unsigned char*> base_of;  // per input: its tensor's data
  std::vector<size_t> row_bytes;
  for (const Input& in : impl.inputs) {
    const int64_t n = static_cast<int64_t>(rows);
    Dims dims = in.rank1 ? Dims{n} : Dims{n, in.width};
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(in.dtype, dims));
    Tensor& placed = out[in.name] = std::move(t);
    base_of.push_back(static_cast<unsigned char*>(placed.raw()));
    row_bytes.push_back(static_cast<size_t>(in.width) * DTypeSize(in.dtype));
  }

  // Which layers are the same row for every batch row.
  std::vector<size_t> varying;
  for (size_t l = 0; l < depth; ++l) {
    for (size_t r = 1; r < rows; ++r) {
      if (layers.rows[r * depth + l] != layers.rows[l]) {
        varying.push_back(l);
        break;
      }
    }
  }
  auto is_constant = [&](size_t l) {
    return std::find(varying.begin(), varying.end(), l) == varying.end();
  };
  const size_t fields = impl.field_slots;
  const uint32_t kDefault = static_cast<uint32_t>(2 * depth);
  auto rank_of = [&](size_t l, uint32_t slot) {
    return static_cast<uint32_t>(slot < fields ? l : depth + l);
  };

  // The base row: every field from the constant layers, or its default.
  struct Winner {
    uint32_t rank;
    const unsigned char* columns;
    Counts counts;
  };
  std::vector<Winner> base(fields);
  for (size_t f = 0; f < fields; ++f) base[f] = {kDefault, impl.absent[f].data(), {1, 0, 0}};
  if (rows > 0) {
    for (size_t l = 0; l < depth; ++l) {
      const EncodedRow* e = layers.rows[l];
      if (e == nullptr || !is_constant(l)) continue;
      if (e->schema_id != impl.id) return foreign();
      for (const EncodedRow::Entry& entry : *e) {
        const Slot& s = impl.slots[entry.slot];
        const uint32_t rank = rank_of(l, entry.slot);
        Winner& w = base[s.field_index];
        if (rank >= w.rank) continue;
        w = {rank, e->Columns(entry, s.bytes),
             entry.counts == EncodedRow::Entry::kNone ? Counts() : e->counts[entry.counts]};
      }
    }
  }
  std::vector<std::vector<unsigned char>> base_row(impl.inputs.size());
  for (size_t k = 0; k < impl.inputs.size(); ++k) base_row[k].resize(row_bytes[k]);
  Counts base_counts;
  for (size_t f = 0; f < fields; ++f) {
    const Slot& s = impl.slots[f];
    CopyColumns(base_row[s.input].data() + s.column_bytes, base[f].columns, s.bytes);
    base_counts.missing += base[f].counts.missing;
    base_counts.out_of_vocab += base[f].counts.out_of_vocab;
    base_counts.invalid += base[f].counts.invalid;
  }

  int64_t missing = 0, out_of_vocab = 0, invalid = 0;
  // Per batch row: the rank each field's value has so far, and what that value counted when it
  // is not the base's.
  std::vector<uint32_t> rank(fields);
  for (size_t f = 0; f < fields; ++f) rank[f] = base[f].rank;
  std::vector<Counts> counted(fields);
  std::vector<uint32_t> touched;
  touched.reserve(fields);
  constexpr size_t kAhead = 4;  // rows whose sources are fetched into the cache ahead of use
  for (size_t r = 0; r < rows; ++r) {
    if (r + kAhead < rows) {
      for (size_t l : varying) {
        const EncodedRow* e = layers.rows[(r + kAhead) * depth + l];
        if (e == nullptr) continue;
        __builtin_prefetch(e);
        __builtin_prefetch(reinterpret_cast<const char*>(e) + 64);
      }
    }
    for (size_t k = 0; k < impl.inputs.size(); ++k) {
      std::memcpy(base_of[k] + r * row_bytes[k], base_row[k].data(), row_bytes[k]);
    }
    missing += base_counts.missing;
    out_of_vocab += base_counts.out_of_vocab;
    invalid += base_counts.invalid;
    for (size_t l : varying) {
      const EncodedRow* e = layers.rows[r * depth + l];
      if (e == nullptr) continue;
      if (e->schema_id != impl.id) return foreign();
      for (const EncodedRow::Entry& entry : *e) {
        const Slot& s = impl.slots[entry.slot];
        const uint32_t f = static_cast<uint32_t>(s.field_index);
        const uint32_t rk = rank_of(l, entry.slot);
        if (rk >= rank[f]) continue;
        // Replaces the value this row had for f (the base's, or an earlier layer's).
        const bool from_base = rank[f] == base[f].rank;
        const Counts& was = from_base ? base[f].counts : counted[f];
        missing -= was.missing;
        out_of_vocab -= was.out_of_vocab;
        invalid -= was.invalid;
        if (from_base) touched.push_back(f);
        rank[f] = rk;
        CopyColumns(base_of[s.input] + r * row_bytes[s.input] + s.column_bytes,
                    e->Columns(entry, s.bytes), s.bytes);
        counted[f] = entry.counts == EncodedRow::Entry::kNone ? Counts() : e->counts[entry.counts];
        missing += counted[f].missing;
        out_of_vocab += counted[f].out_of_vocab;
        invalid += counted[f].invalid;
      }
    }
    for (uint32_t f : touched) rank[f] = base[f].rank;
    touched.clear();
  }
  if (stats != nullptr) {
    stats->rows += static_cast<int64_t>(rows);
    stats->missing += missing;
    stats->out_of_vocab += out_of_vocab;
    stats->invalid += invalid;
  }
  return out;
}

}  // namespace clickrt::features
