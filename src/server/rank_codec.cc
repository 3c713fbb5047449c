// The JSON side of the ranking API (fuzzed with the other request decoders).
//
// Both directions have a fast path for the usual shapes and keep the general one (an nlohmann
// DOM) as the reference: the decoder scans a request in one pass straight into a RankRequest,
// and hands anything it does not take on as it is (an unknown or repeated key, a value of an
// unexpected type, an escape, an invalid document) to the DOM decoder, which gives the answer
// and the error message; the encoder writes the answer directly unless a string in it is not
// plain ASCII.
#include "server/rank_codec.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace clickrt::server {
namespace {

using nlohmann::json;

// An id or a feature value: strings as-is, numbers and booleans as their JSON text.
bool ScalarText(const json& v, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return true;
  }
  if (v.is_number() || v.is_boolean()) {
    *out = v.dump();
    return true;
  }
  return false;
}

// The fast path: one pass over the bytes, for requests in the usual form: a top-level object
// with each of model, version, user_id, context, candidates, k at most once; strings of
// printable ASCII without escapes; integers; booleans as context values. Anything else (and
// anything invalid) returns false, and the DOM decoder answers instead: the same request, or the
// error. Where this path answers, its answer is the DOM's: the same bytes for strings, the same
// decimal text for integers (as the DOM writes them back).
class RankScanner {
 public:
  RankScanner(std::string_view body, RankRequest* out)
      : p_(body.data()), end_(p_ + body.size()), r_(out) {}

  bool Scan() {
    Space();
    if (!Eat('{')) return false;
    unsigned seen = 0;
    Space();
    if (Eat('}')) return false;  // no user_id: the DOM's error
    for (;;) {
      std::string_view key;
      if (!String(&key)) return false;
      Space();
      if (!Eat(':')) return false;
      Space();
      const int field = FieldOf(key);
      if (field < 0 || (seen & (1u << field))) return false;  // unknown or repeated
      seen |= 1u << field;
      if (!Value(field)) return false;
      Space();
      if (Eat(',')) {
        Space();
        continue;
      }
      if (!Eat('}')) return false;
      break;
    }
    Space();
    constexpr unsigned kRequired = (1u << kUser) | (1u << kCandidates);
    return p_ == end_ && (seen & kRequired) == kRequired && !r_->candidates.empty();
  }

 private:
  enum Field { kModel, kVersion, kUser, kContext, kCandidates, kK };

  static int FieldOf(std::string_view key) {
    static constexpr std::string_view kNames[] = {"model",   "version",    "user_id",
                                                  "context", "candidates", "k"};
    for (int i = 0; i < 6; ++i) {
      if (key == kNames[i]) return i;
    }
    return -1;
  }

  void Space() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool Eat(char c) {
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  bool String(std::string_view* out) {
    if (!Eat('"')) return false;
    const char* begin = p_;
    for (; p_ != end_; ++p_) {
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(begin, static_cast<size_t>(p_ - begin));
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;  // escapes, UTF-8: the DOM's
    }
    return false;
  }
  // An integer as JSON writes it, no fraction or exponent, at most 18 digits (no overflow).
  bool Integer(std::string* text, int64_t* value) {
    const char* begin = p_;
    const bool negative = Eat('-');
    const char* digits = p_;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    const size_t n = static_cast<size_t>(p_ - digits);
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return false;
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    int64_t v = 0;
    for (const char* d = digits; d != p_; ++d) v = v * 10 + (*d - '0');
    if (negative) v = -v;
    *value = v;
    if (text != nullptr) {
      if (v == 0 && negative) {
        *text = "0";  // "-0" is the integer 0
      } else {
        text->assign(begin, p_);
      }
    }
    return true;
  }
  bool Starts(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }
  // A string, or an integer's text.
  bool Scalar(std::string* out) {
    if (p_ != end_ && *p_ == '"') {
      std::string_view v;
      if (!String(&v)) return false;
      out->assign(v);
      return true;
    }
    int64_t unused;
    return Integer(out, &unused);
  }

  bool Value(int field) {
    switch (field) {
      case kModel: {
        std::string_view v;
        if (!String(&v)) return false;
        r_->model.assign(v);
        return true;
      }
      case kVersion:
        return Scalar(&r_->version);
      case kUser:
        return Scalar(&r_->user_id) && !r_->user_id.empty();
      case kK: {
        int64_t k;
        if (!Integer(nullptr, &k) || k < 1) return false;
        r_->k = k;
        return true;
      }
      case kContext:
        return Context();
      case kCandidates:
        return Candidates();
    }
    return false;
  }

  bool Context() {
    if (!Eat('{')) return false;
    Space();
    if (Eat('}')) return true;
    for (;;) {
      std::string_view key;
      if (!String(&key)) return false;
      Space();
      if (!Eat(':')) return false;
      Space();
      std::string& value = r_->context[std::string(key)];  // a repeated name: the last wins
      if (Starts("true")) {
        value = "true";
      } else if (Starts("false")) {
        value = "false";
      } else if (!Scalar(&value)) {
        return false;
      }
      Space();
      if (Eat(',')) {
        Space();
        continue;
      }
      return Eat('}');
    }
  }

  bool Candidates() {
    if (!Eat('[')) return false;
    Space();
    if (p_ != end_ && *p_ == ']') return false;  // empty: the DOM's error
    r_->candidates.reserve(static_cast<size_t>(end_ - p_) / 4);
    for (;;) {
      std::string& id = r_->candidates.emplace_back();
      if (!Scalar(&id) || id.empty()) return false;
      Space();
      if (Eat(',')) {
        Space();
        continue;
      }
      return Eat(']');
    }
  }

  const char* p_;
  const char* const end_;
  RankRequest* r_;
};

StatusOr<RankRequest> DecodeRankJsonDom(std::string_view body);

}  // namespace

StatusOr<RankRequest> DecodeRankJson(std::string_view body) {
  RankRequest r;
  if (RankScanner(body, &r).Scan()) return r;
  return DecodeRankJsonDom(body);
}

namespace {

StatusOr<RankRequest> DecodeRankJsonDom(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  RankRequest r;
  if (auto it = j.find("model"); it != j.end()) {
    if (!it->is_string()) return InvalidArgument("\"model\" must be a string");
    r.model = it->get<std::string>();
  }
  if (auto it = j.find("version"); it != j.end()) {
    if (!ScalarText(*it, &r.version) || it->is_boolean()) {
      return InvalidArgument("\"version\" must be a string or an integer");
    }
  }
  auto user = j.find("user_id");
  if (user == j.end() || user->is_boolean() || !ScalarText(*user, &r.user_id) ||
      r.user_id.empty()) {
    return InvalidArgument("\"user_id\" must be a non-empty string or a number");
  }
  if (auto it = j.find("context"); it != j.end()) {
    if (!it->is_object()) return InvalidArgument("\"context\" must be an object {feature: value}");
    for (auto f = it->begin(); f != it->end(); ++f) {
      std::string v;
      if (!ScalarText(f.value(), &v)) {
        return InvalidArgument("context." + f.key() + " must be a string or a number, got " +
                               std::string(f.value().type_name()));
      }
      r.context[f.key()] = std::move(v);
    }
  }
  auto cands = j.find("candidates");
  if (cands == j.end() || !cands->is_array()) {
    return InvalidArgument("\"candidates\" must be an array of ad ids");
  }
  if (cands->empty()) return InvalidArgument("\"candidates\" is empty");
  r.candidates.reserve(cands->size());
  for (size_t i = 0; i < cands->size(); ++i) {
    std::string id;
    if ((*cands)[i].is_boolean() || !ScalarText((*cands)[i], &id) || id.empty()) {
      return InvalidArgument("candidates[" + std::to_string(i) +
                             "] must be a non-empty string or a number");
    }
    r.candidates.push_back(std::move(id));
  }
  if (auto it = j.find("k"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      return InvalidArgument("\"k\" must be a positive integer, got " + it->dump());
    }
    r.k = it->get<int64_t>();
  }
  return r;
}

}  // namespace

namespace {

std::string EncodeRankJsonDom(const RankResponse& r) {
  json results = json::array();
  for (const RankResult& x : r.results) results.push_back({{"ad_id", x.ad_id}, {"ctr", x.ctr}});
  json j = {{"model", r.model},
            {"version", r.version},
            {"results", std::move(results)},
            {"missing_features", r.missing_features},
            {"missing_rows", r.missing_rows},
            {"candidates", r.candidates}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Appends `s` as a JSON string the way the DOM dumps it; false when `s` is not plain text (a byte
// >= 0x80: UTF-8 the DOM checks, and replaces where invalid).
bool AppendString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x80) return false;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
  return true;
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, res.ptr);
}

}  // namespace

std::string EncodeRankJson(const RankResponse& r) {
  // Keys in the DOM's (sorted) order; numbers as the DOM writes them.
  std::string out;
  out.reserve(128 + 48 * r.results.size());
  out.append("{\"candidates\":");
  AppendInt(r.candidates, &out);
  out.append(",\"missing_features\":");
  AppendInt(r.missing_features, &out);
  out.append(",\"missing_rows\":");
  AppendInt(r.missing_rows, &out);
  out.append(",\"model\":");
  bool plain = AppendString(r.model, &out);
  out.append(",\"results\":[");
  for (size_t i = 0; i < r.results.size() && plain; ++i) {
    out.append(i == 0 ? "{\"ad_id\":" : ",{\"ad_id\":");
    plain = AppendString(r.results[i].ad_id, &out);
    out.append(",\"ctr\":");
    out.append(nlohmann::json(r.results[i].ctr).dump());
    out.push_back('}');
  }
  out.append("],\"version\":");
  plain = plain && AppendString(r.version, &out);
  out.push_back('}');
  return plain ? out : EncodeRankJsonDom(r);
}

}  // namespace clickrt::server
