#include "quant/calibration_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace clickrt::quant {

namespace {

constexpr const char* kMagic = "clickrt-calibration-cache";
constexpr int kVersion = 1;

std::string HexFloat(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", static_cast<double>(v));
  return buf;
}

bool IsHex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

bool OneLine(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

// The cache's own reader: lines with their numbers, errors naming file and line.
class LineReader {
 public:
  LineReader(std::string path, std::string text) : path_(std::move(path)), text_(std::move(text)) {}

  Status Error(const std::string& what) const {
    return DataLoss("calibration cache " + path_ + ":" + std::to_string(line_) + ": " + what);
  }
  // The next line; DataLoss at the end of the file or for an unterminated last line.
  Status Next(std::string* line) {
    ++line_;
    if (pos_ >= text_.size()) return Error("unexpected end of file (truncated?)");
    const size_t nl = text_.find('\n', pos_);
    if (nl == std::string::npos) return Error("unterminated last line (truncated?)");
    *line = text_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return Status::Ok();
  }
  // "name value" -> value (the rest of the line after one space).
  Status Field(const std::string& name, std::string* value) {
    std::string line;
    RETURN_IF_ERROR(Next(&line));
    if (line.compare(0, name.size() + 1, name + " ") != 0) {
      return Error("expected '" + name + " <value>', found '" + line.substr(0, 80) + "'");
    }
    *value = line.substr(name.size() + 1);
    return Status::Ok();
  }
  Status IntField(const std::string& name, int64_t min, int64_t* value) {
    std::string s;
    RETURN_IF_ERROR(Field(name, &s));
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *value);
    if (ec != std::errc() || end != s.data() + s.size() || *value < min) {
      return Error(name + " must be an integer >= " + std::to_string(min) + ", found '" + s + "'");
    }
    return Status::Ok();
  }
  bool at_end() const { return pos_ >= text_.size(); }

 private:
  std::string path_, text_;
  size_t pos_ = 0;
  int64_t line_ = 0;
};

// A "%a" (or decimal) float that must round-trip through float.
bool ParseFloat(const std::string& s, float* v) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  errno = 0;
  char* end = nullptr;
  const float f = std::strtof(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE) return false;
  *v = f;
  return true;
}

Status WriteAtomically(const std::string& path, const std::string& text) {
  // Same folder as the target, so rename() is atomic (one file system).
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) {
    return NotFound("cannot create a temporary file beside '" + path +
                    "': " + std::strerror(errno));
  }
  auto fail = [&](const std::string& what) {
    const int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return DataLoss(what + " '" + tmp + "': " + std::strerror(err));
  };
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    done += static_cast<size_t>(n);
  }
  if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) return fail("cannot sync");
  if (close(fd) != 0) {
    unlink(tmp.c_str());
    return DataLoss("cannot close '" + tmp + "'");
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return NotFound("cannot rename into '" + path + "': " + std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace

std::string CalibrationKey::Diff(const CalibrationKey& found) const {
  std::string out;
  auto cmp = [&](const char* name, const std::string& want, const std::string& got) {
    if (want == got) return;
    out += (out.empty() ? "" : "; ") + std::string(name) + ": expected '" + want + "', found '" +
           got + "'";
  };
  cmp("model_sha256", model_sha256, found.model_sha256);
  cmp("calibrator", calibrator, found.calibrator);
  cmp("calibrator_param", calibrator_param, found.calibrator_param);
  cmp("clickrt_version", clickrt_version, found.clickrt_version);
  cmp("batch_size", std::to_string(batch_size), std::to_string(found.batch_size));
  cmp("rows", std::to_string(rows), std::to_string(found.rows));
  cmp("data_sha256", data_sha256, found.data_sha256);
  return out;
}

Status SaveCalibrationCache(const std::string& path, const CalibrationKey& key,
                            const CalibrationTable& table, const std::string& data_description) {
  auto bad = [&](const std::string& what) {
    return InvalidArgument("cannot write calibration cache '" + path + "': " + what);
  };
  if (!IsHex64(key.model_sha256)) return bad("model_sha256 is not 64 lower-case hex digits");
  if (!IsHex64(key.data_sha256)) return bad("data_sha256 is not 64 lower-case hex digits");
  for (const std::string* s : {&key.calibrator, &key.calibrator_param, &key.clickrt_version}) {
    if (s->empty() || s->find_first_of(" \t\r\n") != std::string::npos) {
      return bad("key field '" + *s + "' is empty or holds white space");
    }
  }
  if (key.batch_size < 1 || key.rows < 1) return bad("batch_size and rows must be >= 1");
  if (table.calibrator != key.calibrator || table.param != key.calibrator_param ||
      table.rows != key.rows) {
    return bad("the table (" + table.calibrator + " " + table.param + ", " +
               std::to_string(table.rows) + " rows) is not the key's (" + key.calibrator + " " +
               key.calibrator_param + ", " + std::to_string(key.rows) + " rows)");
  }
  if (!OneLine(data_description)) return bad("the data description holds a line break");
  std::ostringstream o;
  o << kMagic << " " << kVersion << "\n"
    << "model_sha256 " << key.model_sha256 << "\n"
    << "calibrator " << key.calibrator << "\n"
    << "calibrator_param " << key.calibrator_param << "\n"
    << "clickrt_version " << key.clickrt_version << "\n"
    << "batch_size " << key.batch_size << "\n"
    << "rows " << key.rows << "\n"
    << "data_sha256 " << key.data_sha256 << "\n"
    << "data " << data_description << "\n"
    << "git_revision " << CLICKRT_GIT_REV << "\n"
    << "tensors " << table.scale.size() << "\n";
  for (const auto& [name, scale] : table.scale) {
    if (name.empty() || name.find_first_of("\t\r\n") != std::string::npos) {
      return bad("value name '" + name + "' is empty or holds a tab or line break");
    }
    auto a = table.amax.find(name);
    auto c = table.clipped.find(name);
    const float amax = a == table.amax.end() ? 0.f : a->second;
    const float clipped = c == table.clipped.end() ? 0.f : c->second;
    if (!(std::isfinite(scale) && scale > 0) || !(std::isfinite(amax) && amax >= 0) ||
        !(clipped >= 0 && clipped <= 1)) {
      return bad("value '" + name + "': scale " + std::to_string(scale) + ", amax " +
                 std::to_string(amax) + ", clipped " + std::to_string(clipped) +
                 " (need scale > 0, amax >= 0, clipped in [0, 1])");
    }
    o << "tensor\t" << name << "\t" << HexFloat(scale) << "\t" << HexFloat(amax) << "\t"
      << HexFloat(clipped) << "\n";
  }
  o << "end\n";
  return WriteAtomically(path, o.str());
}

StatusOr<CalibrationCacheFile> ReadCalibrationCache(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("calibration cache '" + path + "' does not exist or cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  LineReader r(path, ss.str());
  std::string line;
  RETURN_IF_ERROR(r.Next(&line));
  const std::string magic = std::string(kMagic) + " ";
  if (line.compare(0, magic.size(), magic) != 0) {
    return r.Error("not a clickrt calibration cache (expected '" + std::string(kMagic) + " " +
                   std::to_string(kVersion) + "')");
  }
  if (line != magic + std::to_string(kVersion)) {
    return r.Error("format version '" + line.substr(magic.size()) + "', this clickrt reads " +
                   std::to_string(kVersion));
  }
  CalibrationCacheFile f;
  CalibrationKey& k = f.key;
  RETURN_IF_ERROR(r.Field("model_sha256", &k.model_sha256));
  if (!IsHex64(k.model_sha256)) return r.Error("model_sha256 is not 64 lower-case hex digits");
  RETURN_IF_ERROR(r.Field("calibrator", &k.calibrator));
  auto kind = ParseCalibrator(k.calibrator);
  if (!kind.ok()) return r.Error(kind.status().message());
  RETURN_IF_ERROR(r.Field("calibrator_param", &k.calibrator_param));
  if (k.calibrator_param.empty()) return r.Error("empty calibrator_param");
  RETURN_IF_ERROR(r.Field("clickrt_version", &k.clickrt_version));
  if (k.clickrt_version.empty()) return r.Error("empty clickrt_version");
  RETURN_IF_ERROR(r.IntField("batch_size", 1, &k.batch_size));
  RETURN_IF_ERROR(r.IntField("rows", 1, &k.rows));
  RETURN_IF_ERROR(r.Field("data_sha256", &k.data_sha256));
  if (!IsHex64(k.data_sha256)) return r.Error("data_sha256 is not 64 lower-case hex digits");
  RETURN_IF_ERROR(r.Field("data", &f.data));
  RETURN_IF_ERROR(r.Field("git_revision", &f.git_revision));
  int64_t n = 0;
  RETURN_IF_ERROR(r.IntField("tensors", 0, &n));
  CalibrationTable& t = f.table;
  t.calibrator = k.calibrator;
  t.param = k.calibrator_param;
  t.rows = k.rows;
  for (int64_t i = 0; i < n; ++i) {
    RETURN_IF_ERROR(r.Next(&line));
    if (line == "end") {
      return r.Error("'end' after " + std::to_string(i) + " of " + std::to_string(n) +
                     " tensor lines");
    }
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      parts.push_back(line.substr(start, tab - start));
    }
    parts.push_back(line.substr(start));
    if (parts.size() != 5 || parts[0] != "tensor" || parts[1].empty()) {
      return r.Error("expected 'tensor<TAB>name<TAB>scale<TAB>amax<TAB>clipped', found '" +
                     line.substr(0, 80) + "'");
    }
    float scale = 0, amax = 0, clipped = 0;
    if (!ParseFloat(parts[2], &scale) || !std::isfinite(scale) || !(scale > 0)) {
      return r.Error("scale of '" + parts[1] + "' is '" + parts[2] + "', not a finite float > 0");
    }
    if (!ParseFloat(parts[3], &amax) || !std::isfinite(amax) || !(amax >= 0)) {
      return r.Error("amax of '" + parts[1] + "' is '" + parts[3] + "', not a finite float >= 0");
    }
    if (!ParseFloat(parts[4], &clipped) || !(clipped >= 0 && clipped <= 1)) {
      return r.Error("clipped of '" + parts[1] + "' is '" + parts[4] + "', not in [0, 1]");
    }
    if (!t.scale.emplace(parts[1], scale).second) {
      return r.Error("value '" + parts[1] + "' appears twice");
    }
    t.amax[parts[1]] = amax;
    t.clipped[parts[1]] = clipped;
  }
  RETURN_IF_ERROR(r.Next(&line));
  if (line != "end") return r.Error("expected 'end', found '" + line.substr(0, 80) + "'");
  if (!r.at_end()) {
    RETURN_IF_ERROR(r.Next(&line));
    return r.Error("text after 'end'");
  }
  return f;
}

StatusOr<CalibrationTable> LoadCalibrationCache(const std::string& path,
                                                const CalibrationKey& expected) {
  ASSIGN_OR_RETURN(CalibrationCacheFile f, ReadCalibrationCache(path));
  const std::string diff = expected.Diff(f.key);
  if (!diff.empty()) {
    return FailedPrecondition("calibration cache '" + path +
                              "' was made for other inputs: " + diff);
  }
  return std::move(f.table);
}

}  // namespace clickrt::quant
