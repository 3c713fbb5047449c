// RequestLog: Bernoulli sampling by geometric skips, a bounded queue, one writer thread that
// serializes, appends and rotates.
#include "server/request_log.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

namespace clickrt::server {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Record {
  double time = 0;
  std::string model, version, user_id, ad_id;
  json inputs;
  float ctr = 0;
};

json Row(const Tensor& t, int64_t row) {
  json a = json::array();
  if (t.rank() < 1 || row >= t.dim(0)) return a;
  const int64_t width = t.dim(0) == 0 ? 0 : t.size() / t.dim(0);
  for (int64_t i = row * width; i < (row + 1) * width; ++i) {
    switch (t.dtype()) {
      case DType::kFloat32:
        a.push_back(t.data<float>()[i]);
        break;
      case DType::kInt64:
        a.push_back(t.data<int64_t>()[i]);
        break;
      case DType::kInt32:
        a.push_back(t.data<int32_t>()[i]);
        break;
      default:
        return json();  // not an input dtype of a CTR schema; logged as null
    }
  }
  return a;
}

}  // namespace

struct RequestLog::Impl {
  RequestLogOptions o;
  std::string path;
  int64_t file_limit = 0;

  std::mutex sample_mu;
  std::mt19937_64 rng;
  std::geometric_distribution<int64_t> gap;
  int64_t skip = 0;  // candidates still to pass before the next logged one

  mutable std::mutex mu;
  std::condition_variable cv, flushed;
  std::deque<Record> queue;
  int64_t accepted = 0, done = 0;
  bool stopping = false;
  Stats stats;
  std::thread writer;

  // Writer-thread state.
  std::ofstream out;
  int64_t file_bytes = 0;

  void Rotate() {
    out.close();
    std::error_code ec;
    fs::remove(path + "." + std::to_string(o.files - 1), ec);
    for (int i = o.files - 2; i >= 1; --i) {
      const std::string from = path + "." + std::to_string(i);
      if (fs::exists(from, ec)) fs::rename(from, path + "." + std::to_string(i + 1), ec);
    }
    if (o.files > 1) {
      fs::rename(path, path + ".1", ec);
    }
    out.open(path, std::ios::binary | std::ios::trunc);
    file_bytes = 0;
    std::lock_guard<std::mutex> l(mu);
    ++stats.rotations;
  }

  void Write(const Record& r) {
    json j = {{"time", r.time},       {"model", r.model}, {"version", r.version},
              {"user_id", r.user_id}, {"ad_id", r.ad_id}, {"inputs", r.inputs},
              {"ctr", r.ctr}};
    std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    const int64_t n = static_cast<int64_t>(line.size());
    if (file_bytes > 0 && file_bytes + n > file_limit) Rotate();
    out.write(line.data(), n);
    file_bytes += n;
  }

  void Loop() {
    std::unique_lock<std::mutex> l(mu);
    while (true) {
      cv.wait(l, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping, all written
      std::deque<Record> batch;
      batch.swap(queue);
      l.unlock();
      for (const Record& r : batch) Write(r);
      out.flush();
      l.lock();
      done += static_cast<int64_t>(batch.size());
      stats.written += static_cast<int64_t>(batch.size());
      flushed.notify_all();
    }
  }
};

RequestLog::RequestLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RequestLog::~RequestLog() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
}

StatusOr<std::unique_ptr<RequestLog>> RequestLog::Create(const RequestLogOptions& o) {
  if (o.dir.empty()) return InvalidArgument("the request log needs a folder");
  if (!(o.rate >= 0 && o.rate <= 1)) {
    return InvalidArgument("request log rate must be in [0, 1], got " + std::to_string(o.rate));
  }
  if (o.max_bytes < 1 || o.files < 1 || o.max_queue < 1) {
    return InvalidArgument("request log sizes must be >= 1");
  }
  std::error_code ec;
  fs::create_directories(o.dir, ec);
  if (!fs::is_directory(o.dir, ec)) {
    return NotFound("cannot create the request log folder '" + o.dir + "'");
  }
  auto impl = std::make_unique<Impl>();
  impl->o = o;
  impl->path = (fs::path(o.dir) / "requests.log").string();
  impl->file_limit = std::max<int64_t>(1, o.max_bytes / o.files);
  impl->rng.seed(
      o.seed ? o.seed
             : static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (o.rate > 0 && o.rate < 1) {
    impl->gap = std::geometric_distribution<int64_t>(o.rate);
    impl->skip = impl->gap(impl->rng);
  }
  impl->out.open(impl->path, std::ios::binary | std::ios::app);
  if (!impl->out) return NotFound("cannot open '" + impl->path + "' for writing");
  impl->file_bytes = static_cast<int64_t>(fs::file_size(impl->path, ec));
  if (ec) impl->file_bytes = 0;
  std::unique_ptr<RequestLog> log(new RequestLog(std::move(impl)));
  Impl* m = log->impl_.get();
  m->writer = std::thread([m] { m->Loop(); });
  return log;
}

std::vector<int64_t> RequestLog::Sample(int64_t n) {
  Impl& m = *impl_;
  std::vector<int64_t> rows;
  if (n <= 0 || m.o.rate <= 0) return rows;
  if (m.o.rate >= 1) {
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
    return rows;
  }
  std::lock_guard<std::mutex> l(m.sample_mu);
  int64_t i = m.skip;
  while (i < n) {
    rows.push_back(i);
    i += 1 + m.gap(m.rng);
  }
  m.skip = i - n;
  return rows;
}

void RequestLog::Log(const std::string& model, const std::string& version,
                     const std::string& user_id, const std::vector<std::string>& ad_ids,
                     const reference::TensorMap& inputs, const std::vector<int64_t>& rows,
                     const std::vector<float>& ctrs) {
  if (rows.empty()) return;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<Record> records;
  records.reserve(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    Record r;
    r.time = now;
    r.model = model;
    r.version = version;
    r.user_id = user_id;
    const int64_t row = rows[k];
    if (row >= 0 && row < static_cast<int64_t>(ad_ids.size())) r.ad_id = ad_ids[row];
    r.inputs = json::object();
    for (const auto& [name, t] : inputs) r.inputs[name] = Row(t, row);
    r.ctr = k < ctrs.size() ? ctrs[k] : 0.0f;
    records.push_back(std::move(r));
  }
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> l(m.mu);
    m.stats.sampled += static_cast<int64_t>(records.size());
    for (Record& r : records) {
      if (m.queue.size() >= m.o.max_queue) {
        ++m.stats.dropped;
        continue;
      }
      m.queue.push_back(std::move(r));
      ++m.accepted;
    }
  }
  m.cv.notify_one();
}

void RequestLog::Flush() {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> l(m.mu);
  const int64_t target = m.accepted;
  m.flushed.wait(l, [&] { return m.done >= target; });
}

RequestLog::Stats RequestLog::stats() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->stats;
}

const std::string& RequestLog::path() const { return impl_->path; }

}  // namespace clickrt::server
