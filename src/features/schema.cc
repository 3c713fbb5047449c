// Schema parsing and feature assembly; the encodings follow python/clickrt_zoo/data/encoding.py
// and schema.py exactly (val_inputs/*.pb of every bundled model are the test of that).
#include "features/schema.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <unordered_map>

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

// ---- assembly ----

const std::string* Lookup(const std::vector<const FeatureRow*>& layers, const std::string& name) {
  for (const FeatureRow* row : layers) {
    if (row == nullptr) continue;
    auto it = row->find(name);
    if (it != row->end()) return &it->second;
  }
  return nullptr;
}

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

}  // namespace

struct Schema::Impl {
  std::string source;
  std::vector<Input> inputs;
};

Schema::Schema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Schema::~Schema() = default;

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

StatusOr<std::map<std::string, Tensor>> Schema::Assemble(
    const std::vector<std::vector<const FeatureRow*>>& layers, AssemblyStats* stats) const {
  AssemblyStats local;
  AssemblyStats* st = stats != nullptr ? stats : &local;
  const int64_t rows = static_cast<int64_t>(layers.size());
  std::map<std::string, Tensor> out;
  std::vector<Tensor*> tensors;
  for (const Input& in : impl_->inputs) {
    Dims dims = in.rank1 ? Dims{rows} : Dims{rows, in.width};
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(in.dtype, dims));
    tensors.push_back(&(out[in.name] = std::move(t)));
  }
  // The user row is the same object for every candidate of a ranking request: a field whose
  // value is the very string the previous row used gets that row's encoded columns copied, with
  // the same stats, instead of being encoded again.
  struct Memo {
    const std::string* value = nullptr;
    AssemblyStats delta;
  };
  std::vector<Memo> memo;
  for (const Input& in : impl_->inputs) memo.resize(memo.size() + in.fields.size());
  std::string derived;
  for (int64_t r = 0; r < rows; ++r) {
    size_t field_index = 0;
    for (size_t k = 0; k < impl_->inputs.size(); ++k) {
      const Input& in = impl_->inputs[k];
      Tensor& t = *tensors[k];
      const size_t elem = DTypeSize(in.dtype);
      for (const Field& f : in.fields) {
        Memo& m = memo[field_index++];
        const std::string* value = Lookup(layers[r], f.name);
        const int64_t at = r * in.width + f.offset;
        if (value != nullptr && value == m.value) {
          char* base = static_cast<char*>(t.raw());
          std::memcpy(base + at * elem, base + (at - in.width) * elem, f.length * elem);
          st->missing += m.delta.missing;
          st->out_of_vocab += m.delta.out_of_vocab;
          st->invalid += m.delta.invalid;
          continue;
        }
        const AssemblyStats before = *st;
        bool reusable = value != nullptr;  // not a derived value: `derived` is rewritten
        if (value == nullptr && f.derive != Derive::kNone) {
          if (const std::string* hour = Lookup(layers[r], "hour")) {
            auto d = DeriveFromHour(f.derive, *hour);
            if (d) {
              derived = *d;
              value = &derived;
            } else {
              ++st->invalid;
            }
          }
        }
        // A sequence that is present but empty is an empty history, not a missing one.
        bool missing = value == nullptr || (value->empty() && f.kind != Kind::kSequence);
        if (missing) {
          ++st->missing;
          value = nullptr;
        }
        switch (in.dtype) {
          case DType::kFloat32:
            t.data<float>()[at] = DenseValue(f, value, st);
            break;
          case DType::kInt64:
            FillIds(f, value, t.data<int64_t>() + at, st);
            break;
          case DType::kInt32:
            FillIds(f, value, t.data<int32_t>() + at, st);
            break;
          default:
            return Internal(impl_->source + ": input '" + in.name + "' has an unexpected dtype");
        }
        m.value = reusable ? value : nullptr;
        m.delta.missing = st->missing - before.missing;
        m.delta.out_of_vocab = st->out_of_vocab - before.out_of_vocab;
        m.delta.invalid = st->invalid - before.invalid;
      }
    }
  }
  st->rows += rows;
  return out;
}

}  // namespace clickrt::features
