// The metrics registry and its Prometheus text rendering (exposition format 0.0.4).
#include "server/metrics.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <mutex>
#include <shared_mutex>

namespace clickrt::server {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

struct Series {
  std::atomic<double> value{0};         // counter, gauge
  std::mutex mutex;                     // histogram
  std::vector<uint64_t> bucket_counts;  // per bound, not cumulative; cumulated when rendered
  double sum = 0;
  uint64_t count = 0;
};

struct Family {
  Type type = Type::kCounter;
  std::string help;
  std::vector<double> bounds;
  std::map<Labels, std::unique_ptr<Series>> series;
};

// Prometheus' client default buckets (seconds), for a histogram observed before registration.
const std::vector<double> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};

// Names that Prometheus would reject are made valid rather than refused: metrics never fail.
std::string SanitizeName(const std::string& name, bool allow_colon) {
  std::string out = name.empty() ? "_" : name;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) out[i] = '_';
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Whole numbers print without an exponent (counters read 1234567, not 1.234567e+06).
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

void AppendEscaped(std::string* out, const std::string& text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '"' && quote) {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

// `{a="1",b="2"}` with an optional extra label last (le for buckets); nothing for no labels.
void AppendLabels(std::string* out, const Labels& labels, const char* extra_name = nullptr,
                  const std::string& extra_value = "") {
  if (labels.empty() && extra_name == nullptr) return;
  *out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) *out += ',';
    first = false;
    *out += SanitizeName(name, false);
    *out += "=\"";
    AppendEscaped(out, value, true);
    *out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) *out += ',';
    *out += extra_name;
    *out += "=\"";
    *out += extra_value;
    *out += '"';
  }
  *out += '}';
}

}  // namespace

struct Metrics::Impl {
  mutable std::shared_mutex mutex;
  std::map<std::string, Family> families;

  Family* Register(const std::string& raw_name, Type type, const std::string& help,
                   std::vector<double> bounds) {
    std::string name = SanitizeName(raw_name, true);
    std::unique_lock lock(mutex);
    auto [it, inserted] = families.try_emplace(name);
    Family& f = it->second;
    if (inserted) {
      f.type = type;
      f.help = help;
      if (type == Type::kHistogram) {
        std::erase_if(bounds, [](double b) { return std::isnan(b) || std::isinf(b); });
        std::sort(bounds.begin(), bounds.end());
        bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
        f.bounds = std::move(bounds);
      }
    } else if (f.type == type && f.help.empty()) {
      f.help = help;
    }
    return f.type == type ? &f : nullptr;  // a clash of types keeps the first registration
  }

  // The series of `labels` in family `name`, created on first use (the family too, with
  // `implicit_type`); nullptr if the family has another type. Families and series are never
  // removed and a family's bounds never change, so the pointers stay valid without the lock.
  std::pair<const Family*, Series*> Find(const std::string& raw_name, const Labels& labels,
                                         Type implicit_type) {
    std::string name = SanitizeName(raw_name, true);
    {
      std::shared_lock lock(mutex);
      auto f = families.find(name);
      if (f != families.end()) {
        if (f->second.type != implicit_type) return {nullptr, nullptr};
        auto s = f->second.series.find(labels);
        if (s != f->second.series.end()) return {&f->second, s->second.get()};
      }
    }
    std::unique_lock lock(mutex);
    auto [it, inserted] = families.try_emplace(name);
    Family& f = it->second;
    if (inserted) {
      f.type = implicit_type;
      if (implicit_type == Type::kHistogram) f.bounds = kDefaultBuckets;
    }
    if (f.type != implicit_type) return {nullptr, nullptr};
    auto& slot = f.series[labels];
    if (!slot) {
      slot = std::make_unique<Series>();
      slot->bucket_counts.assign(f.bounds.size(), 0);
    }
    return {&f, slot.get()};
  }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::RegisterCounter(const std::string& name, const std::string& help) {
  impl_->Register(name, Type::kCounter, help, {});
}

void Metrics::RegisterGauge(const std::string& name, const std::string& help) {
  impl_->Register(name, Type::kGauge, help, {});
}

void Metrics::RegisterHistogram(const std::string& name, const std::string& help,
                                std::vector<double> buckets) {
  impl_->Register(name, Type::kHistogram, help, std::move(buckets));
}

void Metrics::Increment(const std::string& name, const Labels& labels, double by) {
  if (!(by >= 0)) return;  // counters only go up (NaN too is refused)
  if (Series* s = impl_->Find(name, labels, Type::kCounter).second) s->value.fetch_add(by);
}

void Metrics::Set(const std::string& name, const Labels& labels, double value) {
  if (Series* s = impl_->Find(name, labels, Type::kGauge).second) s->value.store(value);
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  if (std::isnan(value)) return;
  auto [family, s] = impl_->Find(name, labels, Type::kHistogram);
  if (s == nullptr) return;
  const std::vector<double>& bounds = family->bounds;
  size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  std::lock_guard lock(s->mutex);
  if (bucket < s->bucket_counts.size()) ++s->bucket_counts[bucket];
  s->sum += value;
  ++s->count;
}

std::string Metrics::Render() const {
  std::string out;
  // One sample line: name+suffix, labels (plus le), value. Built with append: GCC 12 warns
  // falsely (-Wrestrict) on string operator+ chains at -O3.
  auto sample = [&out](const std::string& name, const char* suffix, const Labels& labels,
                       const char* extra, const std::string& extra_value,
                       const std::string& value) {
    out.append(name).append(suffix);
    AppendLabels(&out, labels, extra, extra_value);
    out.append(" ").append(value).append("\n");
  };
  std::shared_lock lock(impl_->mutex);
  for (const auto& [name, family] : impl_->families) {
    if (!family.help.empty()) {
      out.append("# HELP ").append(name).append(" ");
      AppendEscaped(&out, family.help, false);
      out.append("\n");
    }
    out.append("# TYPE ").append(name).append(" ").append(TypeName(family.type)).append("\n");
    for (const auto& [labels, series] : family.series) {
      if (family.type != Type::kHistogram) {
        sample(name, "", labels, nullptr, "", FormatValue(series->value.load()));
        continue;
      }
      std::lock_guard series_lock(series->mutex);
      uint64_t cumulative = 0;
      for (size_t b = 0; b < family.bounds.size(); ++b) {
        cumulative += series->bucket_counts[b];
        sample(name, "_bucket", labels, "le", FormatValue(family.bounds[b]),
               std::to_string(cumulative));
      }
      sample(name, "_bucket", labels, "le", "+Inf", std::to_string(series->count));
      sample(name, "_sum", labels, nullptr, "", FormatValue(series->sum));
      sample(name, "_count", labels, nullptr, "", std::to_string(series->count));
    }
  }
  return out;
}

}  // namespace clickrt::server
