// The Redis feature store (hiredis, synchronous API driven by hand so every socket wait is bounded
// by the call's deadline).
//
// A pipelined call appends all commands to the connection's output buffer, flushes it, then
// reads one reply per command. Before each socket read or write the socket timeout is set to the
// time left, so a stalled server costs at most the deadline (SO_RCVTIMEO bounds one recv, not a
// whole reply, hence the loop instead of redisGetReply).
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <mutex>

#include "features/feature_store.h"

namespace clickrt::features {
namespace {

Status DeadlineExceeded(std::string m) {
  return Status(StatusCode::kDeadlineExceeded, std::move(m));
}
Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }

timeval ToTimeval(Clock::duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 1) us = 1;  // {0, 0} would mean "no timeout" to the kernel
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

// hiredis writes with write(2): a write to a connection the server has reset raises SIGPIPE,
// whose default action ends the process. The signal is blocked in this thread while writing and
// a SIGPIPE raised meanwhile is consumed, so the write just fails with EPIPE and the connection
// is dropped, without touching the process-wide signal disposition.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// One pooled connection's I/O; `broken` tells the pool to close it.
class Connection {
 public:
  Connection(redisContext* ctx, const std::string& where) : ctx_(ctx), where_(where) {}

  Status Flush(Clock::time_point deadline) {
    SigpipeGuard guard;
    int done = 0;
    while (!done) {
      RETURN_IF_ERROR(ArmTimeout(deadline));
      if (redisBufferWrite(ctx_, &done) != REDIS_OK) return IoError(deadline, "write");
    }
    return Status::Ok();
  }

  StatusOr<ReplyPtr> Read(Clock::time_point deadline) {
    for (;;) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(ctx_, &reply) != REDIS_OK) return IoError(deadline, "read");
      if (reply != nullptr) return ReplyPtr(static_cast<redisReply*>(reply));
      RETURN_IF_ERROR(ArmTimeout(deadline));
      if (redisBufferRead(ctx_) != REDIS_OK) return IoError(deadline, "read");
    }
  }

  void Append(const std::vector<std::string>& args) {
    argv_.clear();
    lens_.clear();
    for (const auto& a : args) {
      argv_.push_back(a.data());
      lens_.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv_.data(), lens_.data());
  }

  bool broken = false;

 private:
  Status ArmTimeout(Clock::time_point deadline) {
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      broken = true;  // commands may be half sent or replies half read: the stream is unusable
      return DeadlineExceeded(where_ + ": no reply before the deadline");
    }
    if (redisSetTimeout(ctx_, ToTimeval(left)) != REDIS_OK) {
      broken = true;
      return Unavailable(where_ + ": cannot set the socket timeout: " + ctx_->errstr);
    }
    return Status::Ok();
  }

  Status IoError(Clock::time_point deadline, const char* what) {
    broken = true;
    int err = errno;
    if (ctx_->err == REDIS_ERR_IO &&
        (err == EAGAIN || err == EWOULDBLOCK || Clock::now() >= deadline)) {
      return DeadlineExceeded(where_ + ": no reply before the deadline");
    }
    if (ctx_->err == REDIS_ERR_EOF)
      return Unavailable(where_ + ": connection closed by the server");
    return Unavailable(where_ + ": " + what + " failed: " + ctx_->errstr);
  }

  redisContext* ctx_;
  const std::string& where_;
  std::vector<const char*> argv_;
  std::vector<size_t> lens_;
};

class RedisStore final : public FeatureStore {
 public:
  explicit RedisStore(const RedisOptions& options)
      : options_(options),
        where_("redis " + options.host + ":" + std::to_string(options.port)),
        slots_(options.pool_size, nullptr) {
    for (int i = options.pool_size - 1; i >= 0; --i) free_.push_back(i);
  }

  ~RedisStore() override {
    for (redisContext* c : slots_) {
      if (c != nullptr) redisFree(c);
    }
  }

  // Makes the first pooled connection, so a wrong address fails at start-up.
  Status CheckReachable() {
    auto deadline = Clock::now() + options_.connect_timeout;
    ASSIGN_OR_RETURN(redisContext * c, Connect(deadline));
    slots_[free_.back()] = c;
    return Status::Ok();
  }

  StatusOr<std::vector<RowPtr>> MultiGet(const std::vector<std::string>& keys,
                                         Clock::time_point deadline) override {
    std::vector<RowPtr> out(keys.size());
    if (keys.empty()) return out;
    Status status = WithConnection(deadline, [&](Connection& conn) -> Status {
      for (const auto& key : keys) conn.Append({"HGETALL", options_.key_prefix + key});
      RETURN_IF_ERROR(conn.Flush(deadline));
      Status first_error;
      for (size_t i = 0; i < keys.size(); ++i) {
        ASSIGN_OR_RETURN(ReplyPtr reply, conn.Read(deadline));
        out[i].reset();
        if (reply->type == REDIS_REPLY_ERROR) {
          // The connection stays in step: read every reply, report the first error.
          if (first_error.ok()) {
            first_error = FailedPrecondition(where_ + ": HGETALL " + options_.key_prefix + keys[i] +
                                             ": " + reply->str);
          }
          continue;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
          conn.broken = true;
          return Internal(where_ + ": HGETALL " + keys[i] + ": unexpected reply type " +
                          std::to_string(reply->type));
        }
        if (reply->elements == 0) continue;  // no such key
        FeatureRow row;
        for (size_t e = 0; e + 1 < reply->elements; e += 2) {
          const redisReply* name = reply->element[e];
          const redisReply* value = reply->element[e + 1];
          row.emplace(std::string(name->str, name->len), std::string(value->str, value->len));
        }
        out[i] = std::make_shared<const StoredRow>(std::move(row));
      }
      return first_error;
    });
    if (!status.ok()) return status;
    return out;
  }

  Status MultiPut(const std::vector<std::pair<std::string, FeatureRow>>& rows,
                  Clock::time_point deadline) override {
    return WithConnection(deadline, [&](Connection& conn) -> Status {
      size_t sent = 0;
      std::vector<std::string> args;
      for (const auto& [key, row] : rows) {
        if (row.empty()) continue;  // HSET needs a field; merging nothing changes nothing
        args.assign({"HSET", options_.key_prefix + key});
        for (const auto& [name, value] : row) {
          args.push_back(name);
          args.push_back(value);
        }
        conn.Append(args);
        ++sent;
      }
      RETURN_IF_ERROR(conn.Flush(deadline));
      Status first_error;
      for (size_t i = 0; i < sent; ++i) {
        ASSIGN_OR_RETURN(ReplyPtr reply, conn.Read(deadline));
        if (reply->type == REDIS_REPLY_ERROR && first_error.ok()) {
          first_error = FailedPrecondition(where_ + ": HSET: " + reply->str);
        }
      }
      return first_error;
    });
  }

  std::string kind() const override { return "redis"; }

 private:
  StatusOr<redisContext*> Connect(Clock::time_point deadline) {
    auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return DeadlineExceeded(where_ + ": deadline passed before connecting");
    }
    bool deadline_bound = left < options_.connect_timeout;
    // redisConnectWithTimeout connects non-blocking and polls for at most `tv`.
    redisContext* c = redisConnectWithTimeout(
        options_.host.c_str(), options_.port,
        ToTimeval(deadline_bound ? left : Clock::duration(options_.connect_timeout)));
    if (c == nullptr) return Unavailable(where_ + ": cannot allocate a connection");
    if (c->err != 0) {
      std::string why = c->errstr;
      redisFree(c);
      if (deadline_bound && Clock::now() >= deadline) {
        return DeadlineExceeded(where_ + ": connect did not finish before the deadline");
      }
      return Unavailable(where_ + ": cannot connect: " + why);
    }
    return c;
  }

  StatusOr<int> Acquire(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!slot_freed_.wait_until(lock, deadline, [&] { return !free_.empty(); })) {
      return DeadlineExceeded(where_ + ": all " + std::to_string(options_.pool_size) +
                              " connections busy until the deadline");
    }
    int slot = free_.back();
    free_.pop_back();
    return slot;
  }

  void Release(int slot, bool keep) {
    std::lock_guard lock(mutex_);
    if (!keep && slots_[slot] != nullptr) {
      redisFree(slots_[slot]);
      slots_[slot] = nullptr;
    }
    free_.push_back(slot);
    slot_freed_.notify_one();
  }

  // Runs `fn` on a pooled connection. A reused connection that breaks (the server restarted
  // since it was made) gets one retry on a fresh one: HGETALL and HSET are idempotent.
  template <typename Fn>
  Status WithConnection(Clock::time_point deadline, Fn&& fn) {
    Status status;
    for (int attempt = 0; attempt < 2; ++attempt) {
      ASSIGN_OR_RETURN(int slot, Acquire(deadline));
      // Slots are only touched by the caller holding them, so no lock is needed here.
      if (attempt > 0 && slots_[slot] != nullptr) {
        redisFree(slots_[slot]);
        slots_[slot] = nullptr;
      }
      bool fresh = slots_[slot] == nullptr;
      if (fresh) {
        auto connected = Connect(deadline);
        if (!connected.ok()) {
          Release(slot, false);
          return connected.status();
        }
        slots_[slot] = connected.value();
      }
      Connection conn(slots_[slot], where_);
      status = fn(conn);
      Release(slot, !conn.broken);
      if (status.ok() || !conn.broken || fresh || status.code() == StatusCode::kDeadlineExceeded) {
        return status;
      }
    }
    return status;
  }

  const RedisOptions options_;
  const std::string where_;
  std::mutex mutex_;
  std::condition_variable slot_freed_;
  std::vector<redisContext*> slots_;  // nullptr: not connected (yet, or dropped after an error)
  std::vector<int> free_;
};

}  // namespace

StatusOr<std::unique_ptr<FeatureStore>> MakeRedisStore(const RedisOptions& options) {
  if (options.host.empty()) return InvalidArgument("redis: empty host");
  if (options.port < 1 || options.port > 65535) {
    return InvalidArgument("redis: port " + std::to_string(options.port) + " out of [1, 65535]");
  }
  if (options.pool_size < 1) {
    return InvalidArgument("redis: pool_size must be >= 1, got " +
                           std::to_string(options.pool_size));
  }
  if (options.connect_timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgument("redis: connect_timeout must be positive");
  }
  auto store = std::make_unique<RedisStore>(options);
  RETURN_IF_ERROR(store->CheckReachable());
  return std::unique_ptr<FeatureStore>(std::move(store));
}

StatusOr<RedisOptions> ParseRedisAddress(const std::string& address) {
  RedisOptions options;
  std::string host = address;
  size_t colon = address.rfind(':');
  bool bracketed = !address.empty() && address[0] == '[';
  if (colon != std::string::npos && (!bracketed || address[colon - 1] == ']')) {
    host = address.substr(0, colon);
    std::string port = address.substr(colon + 1);
    int value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return InvalidArgument("redis address '" + address + "': port must be in [1, 65535]");
    }
    options.port = value;
  }
  if (bracketed && host.size() >= 2 && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return InvalidArgument("redis address '" + address + "': empty host");
  options.host = host;
  return options;
}

}  // namespace clickrt::features
