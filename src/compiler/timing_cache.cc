#include "compiler/timing_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>
#include <vector>

namespace clickrt::compiler {
namespace {

constexpr char kMagic[] = "clickrt-timing-cache";
constexpr int kVersion = 1;

bool Holdable(const std::string& s) {
  return !s.empty() && s.find_first_of("\t\r\n") == std::string::npos;
}

std::string FormatMs(double ms) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), ms);
  return std::string(buf, res.ptr);
}

bool ParseMs(const std::string& s, double* out) {
  if (s.empty()) return false;
  auto res = std::from_chars(s.data(), s.data() + s.size(), *out);
  return res.ec == std::errc() && res.ptr == s.data() + s.size() && std::isfinite(*out) &&
         *out >= 0;
}

std::string SysError(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

std::string TimingContext::Key() const {
  nlohmann::json j = {{"gpu_name", gpu_name},
                      {"sm_arch", sm_arch},
                      {"cuda_version", cuda_version},
                      {"cublaslt_version", cublaslt_version},
                      {"clickrt_version", clickrt_version}};
  return j.dump();
}

std::string TimingContext::Describe() const {
  return gpu_name + " (" + sm_arch + "), CUDA " + cuda_version + ", cuBLASLt " + cublaslt_version +
         ", clickrt " + clickrt_version;
}

bool TimingContext::operator==(const TimingContext& o) const {
  return gpu_name == o.gpu_name && sm_arch == o.sm_arch && cuda_version == o.cuda_version &&
         cublaslt_version == o.cublaslt_version && clickrt_version == o.clickrt_version;
}

TimingCache::TimingCache(TimingContext context) : context_(std::move(context)) {}

StatusOr<TimingCache> TimingCache::Load(const std::string& path, const TimingContext& current,
                                        bool* stale) {
  if (stale) *stale = false;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("timing cache " + path + " does not exist");
    return Status(StatusCode::kUnavailable, SysError("cannot stat timing cache", path));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument("timing cache " + path + " is not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kUnavailable, SysError("cannot open timing cache", path));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  if (in.bad()) return Status(StatusCode::kUnavailable, SysError("cannot read timing cache", path));

  int line_no = 0;
  auto corrupt = [&](const std::string& why) {
    return DataLoss("timing cache " + path + ":" + std::to_string(line_no) + ": " + why);
  };
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      line_no = static_cast<int>(lines.size()) + 1;
      return corrupt("truncated (the last line has no end)");
    }
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }

  line_no = 1;
  const std::string magic_prefix = std::string(kMagic) + " ";
  if (lines.empty() || lines[0].rfind(magic_prefix, 0) != 0) {
    return corrupt(std::string("not a clickrt timing cache (expected \"") + kMagic + " " +
                   std::to_string(kVersion) + "\")");
  }
  if (lines[0] != magic_prefix + std::to_string(kVersion)) {
    return corrupt("format version \"" + lines[0].substr(magic_prefix.size()) +
                   "\"; this clickrt reads version " + std::to_string(kVersion));
  }

  line_no = 2;
  const std::string context_prefix = "context ";
  if (lines.size() < 2 || lines[1].rfind(context_prefix, 0) != 0) {
    return corrupt("expected \"context <json>\"");
  }
  nlohmann::json j = nlohmann::json::parse(lines[1].substr(context_prefix.size()), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt("context is not a JSON object");
  TimingContext file_context;
  std::pair<const char*, std::string*> fields[] = {
      {"gpu_name", &file_context.gpu_name},
      {"sm_arch", &file_context.sm_arch},
      {"cuda_version", &file_context.cuda_version},
      {"cublaslt_version", &file_context.cublaslt_version},
      {"clickrt_version", &file_context.clickrt_version}};
  for (auto& [name, field] : fields) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return corrupt(std::string("context has no string field \"") + name + "\"");
    }
    *field = it->get<std::string>();
  }

  std::map<std::string, Entry> entries;
  bool ended = false;
  for (size_t i = 2; i < lines.size(); ++i) {
    line_no = static_cast<int>(i) + 1;
    const std::string& line = lines[i];
    if (ended) return corrupt("text after the end line");
    if (line.rfind("end ", 0) == 0) {
      std::string count = line.substr(4);
      size_t n = 0;
      auto res = std::from_chars(count.data(), count.data() + count.size(), n);
      if (count.empty() || res.ec != std::errc() || res.ptr != count.data() + count.size()) {
        return corrupt("bad entry count \"" + count + "\"");
      }
      if (n != entries.size()) {
        return corrupt("the end line counts " + std::to_string(n) + " entries, the file has " +
                       std::to_string(entries.size()));
      }
      ended = true;
      continue;
    }
    if (line.rfind("entry ", 0) != 0) return corrupt("expected \"entry ...\" or \"end <count>\"");
    std::string rest = line.substr(6);
    size_t t1 = rest.find('\t');
    size_t t2 = t1 == std::string::npos ? t1 : rest.find('\t', t1 + 1);
    if (t2 == std::string::npos || rest.find('\t', t2 + 1) != std::string::npos) {
      return corrupt("expected \"entry <key>\\t<choice>\\t<ms>\"");
    }
    std::string key = rest.substr(0, t1), choice = rest.substr(t1 + 1, t2 - t1 - 1);
    std::string ms_text = rest.substr(t2 + 1);
    if (!Holdable(key)) return corrupt("empty key");
    if (!Holdable(choice)) return corrupt("empty choice for key " + key);
    double ms = 0;
    if (!ParseMs(ms_text, &ms)) {
      return corrupt("bad time \"" + ms_text + "\" (a number of ms >= 0) for key " + key);
    }
    if (!entries.emplace(key, Entry{choice, ms}).second) return corrupt("duplicate key " + key);
  }
  if (!ended) {
    line_no = static_cast<int>(lines.size());
    return corrupt("truncated (no \"end <count>\" line)");
  }

  TimingCache cache(current);
  if (file_context != current) {
    if (!stale) {
      return FailedPrecondition("timing cache " + path + " was built for " +
                                file_context.Describe() + ", this is " + current.Describe());
    }
    *stale = true;
    cache.stale_context_ = file_context;
    return cache;
  }
  cache.entries_ = std::move(entries);
  return cache;
}

std::optional<TimingCache::Entry> TimingCache::Find(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  return it->second;
}

void TimingCache::Put(const std::string& key, Entry entry) { entries_[key] = std::move(entry); }

Status TimingCache::Save(const std::string& path) const {
  std::string text = std::string(kMagic) + " " + std::to_string(kVersion) + "\n";
  text += "context " + context_.Key() + "\n";
  for (const auto& [key, entry] : entries_) {
    if (!Holdable(key))
      return InvalidArgument("timing cache key \"" + key + "\" is empty or has a tab or newline");
    if (!Holdable(entry.choice)) {
      return InvalidArgument("timing cache choice for " + key +
                             " is empty or has a tab or newline");
    }
    if (!std::isfinite(entry.ms) || entry.ms < 0) {
      return InvalidArgument("timing cache time for " + key + " is not a number of ms >= 0");
    }
    text += "entry " + key + "\t" + entry.choice + "\t" + FormatMs(entry.ms) + "\n";
  }
  text += "end " + std::to_string(entries_.size()) + "\n";

  // Same directory as the target, so rename() is atomic (one file system).
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0)
    return Status(StatusCode::kUnavailable, SysError("cannot create a temporary file for", path));
  auto fail = [&](const std::string& what) {
    Status s(StatusCode::kUnavailable, SysError(what, path));
    if (fd >= 0) close(fd);
    unlink(tmp.c_str());
    return s;
  };
  fchmod(fd, 0644);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t w = write(fd, text.data() + done, text.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write timing cache");
    }
    done += static_cast<size_t>(w);
  }
  if (fsync(fd) != 0) return fail("cannot sync timing cache");
  int closed = close(fd);
  fd = -1;
  if (closed != 0) return fail("cannot close timing cache");
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename into timing cache");
  return Status::Ok();
}

}  // namespace clickrt::compiler
