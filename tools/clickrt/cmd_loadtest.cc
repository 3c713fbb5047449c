// `clickrt loadtest`: drive a local `clickrt serve` with ranking or KServe infer requests.
//
// Closed loop: N clients, each sends its next request when the previous one is answered.
// Open loop: requests are scheduled at fixed intervals (1/rate) whatever the replies; they go
// out on a pool of up to --connections connections, and latency counts from the scheduled time,
// so a server that falls behind shows its queueing in the percentiles (no coordinated omission).
// Only loopback addresses are accepted: this is a benchmark tool, not a traffic generator.
//
// The generator usually shares its machine with the server it measures, so it is made cheap:
// request bodies are made before the clock starts (a pool of 64, sent in turn), each request is
// one pre-built HTTP/1.1 message written with one call, and one thread drives every connection
// from an epoll loop (no thread per client, no wake-up per reply but its own).
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

#include "commands.h"

namespace clickrt::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct LoadCmd {
  std::string url = "http://127.0.0.1:8000";
  std::string mode = "closed", endpoint = "rank", model, features;
  double rate = 100, duration_s = 0;
  int clients = 4, connections = 64;
  int64_t requests = 0, candidates = 100, users = 1000, items = 10000, id_range = 4;
  int timeout_ms = 5000;
  uint64_t seed = 1;
  bool json_out = false;
};

struct Target {
  std::string host;
  int port = 0;
};

StatusOr<Target> ParseLoopbackUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return InvalidArgument("--url must start with http://, got " + url);
  std::string rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  Target t;
  std::string port = "80";
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("--url has an unclosed '[': " + url);
    t.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    t.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    t.host = rest;
  }
  if (t.host != "127.0.0.1" && t.host != "localhost" && t.host != "::1") {
    return InvalidArgument("--url host '" + t.host +
                           "' is not a loopback address (127.0.0.1, localhost, ::1): loadtest only "
                           "drives a local server");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    return InvalidArgument("--url has a bad port '" + port + "'");
  }
  t.port = std::stoi(port);
  return t;
}

// User and item ids: from a feature file's keys ("user:<id>", "item:<id>") or u<i> / ad<i>.
Status LoadIds(const LoadCmd& c, std::vector<std::string>* users, std::vector<std::string>* items) {
  if (!c.features.empty()) {
    std::ifstream in(c.features);
    if (!in) return NotFound("cannot read --features '" + c.features + "'");
    std::string line;
    while (std::getline(in, line)) {
      std::string key;
      if (!line.empty() && line[0] == '{') {
        json j = json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("key") && j["key"].is_string())
          key = j["key"].get<std::string>();
      } else {
        key = line.substr(0, line.find('\t'));
      }
      if (key.rfind("user:", 0) == 0) users->push_back(key.substr(5));
      if (key.rfind("item:", 0) == 0) items->push_back(key.substr(5));
    }
    if (users->empty() || items->empty()) {
      return InvalidArgument("--features '" + c.features + "' holds no user: or item: keys");
    }
    return Status::Ok();
  }
  for (int64_t i = 0; i < c.users; ++i) users->push_back("u" + std::to_string(i));
  for (int64_t i = 0; i < c.items; ++i) items->push_back("ad" + std::to_string(i));
  return Status::Ok();
}

// A pool of request bodies made up front, so the send loop only sends.
StatusOr<std::vector<std::string>> MakeBodies(const LoadCmd& c, const Target& t,
                                              std::string* path) {
  std::mt19937_64 rng(c.seed);
  std::vector<std::string> bodies;
  constexpr int kBodies = 64;
  if (c.endpoint == "rank") {
    *path = "/v1/rank";
    std::vector<std::string> users, items;
    RETURN_IF_ERROR(LoadIds(c, &users, &items));
    for (int b = 0; b < kBodies; ++b) {
      json j = {{"user_id", users[rng() % users.size()]}, {"k", 10}};
      if (!c.model.empty()) j["model"] = c.model;
      json cands = json::array();
      for (int64_t i = 0; i < c.candidates; ++i) cands.push_back(items[rng() % items.size()]);
      j["candidates"] = std::move(cands);
      bodies.push_back(j.dump());
    }
    return bodies;
  }
  if (c.endpoint != "infer") return InvalidArgument("--endpoint must be rank or infer");
  if (c.model.empty()) return InvalidArgument("--endpoint infer needs --model");
  *path = "/v2/models/" + c.model + "/infer";
  httplib::Client cli(t.host, t.port);
  auto res = cli.Get("/v2/models/" + c.model);
  if (!res)
    return Status(StatusCode::kUnavailable,
                  "GET /v2/models/" + c.model + ": " + httplib::to_string(res.error()));
  if (res->status != 200) return NotFound("GET /v2/models/" + c.model + ": " + res->body);
  json meta = json::parse(res->body, nullptr, false);
  if (meta.is_discarded() || !meta.contains("inputs"))
    return Internal("bad model metadata: " + res->body);
  std::uniform_real_distribution<float> uni(0, 1);
  for (int b = 0; b < kBodies; ++b) {
    json inputs = json::array();
    for (const json& in : meta["inputs"]) {
      std::vector<int64_t> shape = in["shape"].get<std::vector<int64_t>>();
      int64_t n = 1;
      for (auto& d : shape) {
        if (d < 0) d = c.candidates;
        n *= d;
      }
      const std::string dt = in["datatype"].get<std::string>();
      json data = json::array();
      for (int64_t i = 0; i < n; ++i) {
        if (dt == "FP32" || dt == "FP64") {
          data.push_back(uni(rng));
        } else {
          data.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(c.id_range)));
        }
      }
      inputs.push_back({{"name", in["name"]}, {"datatype", dt}, {"shape", shape}, {"data", data}});
    }
    bodies.push_back(json({{"inputs", inputs}}).dump());
  }
  return bodies;
}

// ---- the sender ----

struct Results {
  std::vector<double> latency_ms;  // successful requests
  std::map<std::string, int64_t> errors;
  int64_t ok = 0;
  int64_t resent = 0;  // requests sent again on a fresh connection (see Sender::Read)
  void Add(double ms, const std::string& error) {
    if (error.empty()) {
      ++ok;
      latency_ms.push_back(ms);
    } else {
      ++errors[error];
    }
  }
};

bool StartsWithNoCase(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != lower_prefix[i]) return false;
  }
  return true;
}

// Where the reply bytes received so far stand.
struct Reply {
  bool complete = false, bad = false, close = false;
  int status = 0;
};

// A reply is read to its end by its Content-Length (what the server always sends).
Reply ParseReply(const std::string& in) {
  Reply r;
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) {
    r.bad = in.size() > (64 << 10);  // no end of the headers in 64 KiB
    return r;
  }
  const std::string_view head(in.data(), end);
  if (head.size() < 12 || !StartsWithNoCase(head, "http/1.")) {
    r.bad = true;
    return r;
  }
  r.status = std::atoi(std::string(head.substr(9, 3)).c_str());
  size_t length = 0;
  bool have_length = false;
  for (size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(
        pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
    if (StartsWithNoCase(line, "content-length:")) {
      have_length = true;
      length = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
    } else if (StartsWithNoCase(line, "connection:") &&
               line.find("close") != std::string_view::npos) {
      r.close = true;
    }
    pos = next;
  }
  r.bad = !have_length;
  r.complete = have_length && in.size() >= end + 4 + length;
  return r;
}

// One connection and the request it carries.
struct Conn {
  int fd = -1;
  bool reused = false;  // has answered a request before: the server may have closed it since
  bool busy = false;
  bool resent = false;    // the request in flight was already sent again once
  uint32_t watching = 0;  // the epoll events asked for
  bool connecting = false;
  bool unproven = false;  // opened, no reply on it yet
  int64_t request = -1;
  Clock::time_point t0;        // latency counts from here (the scheduled time in the open loop)
  Clock::time_point deadline;  // --timeout-ms after it went out
  const std::string* message = nullptr;
  size_t sent = 0;
  std::string in;  // reply bytes so far
};

// Drives every connection from one epoll loop on the calling thread.
class Sender {
 public:
  Sender(const Target& t, const LoadCmd& c, std::vector<std::string> messages)
      : target_(t), cmd_(c), messages_(std::move(messages)) {}
  ~Sender() {
    for (Conn& c : conns_) Close(c);
    if (epoll_ >= 0) close(epoll_);
  }

  Status Run(Results* results, double* elapsed_s);

 private:
  void Close(Conn& c) {
    if (c.fd < 0) return;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    c.reused = false;
    c.watching = 0;
    c.connecting = false;
    if (c.unproven) --unproven_;
    c.unproven = false;
  }

  // Opens `c`'s connection. `wait`: block until it is made (before the clock starts); else the
  // connect completes in the loop (a handshake the server is slow to take must not stall
  // every other connection).
  bool Connect(Conn& c, bool wait) {
    Close(c);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (!Resolve(&addr, &len)) return false;
    const int fd =
        socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (wait ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
    if (rc != 0 && !(errno == EINPROGRESS && !wait)) {
      close(fd);
      return false;
    }
    if (wait) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c.connecting = rc != 0;
    c.unproven = true;
    ++unproven_;
    c.fd = fd;
    c.watching = c.connecting ? EPOLLIN | EPOLLOUT : EPOLLIN;
    epoll_event ev{};
    ev.events = c.watching;
    ev.data.ptr = &c;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    return true;
  }

  bool Resolve(sockaddr_storage* addr, socklen_t* len) {
    if (address_len_ == 0) {
      addrinfo hints{}, *res = nullptr;
      hints.ai_socktype = SOCK_STREAM;
      const std::string port = std::to_string(target_.port);
      if (getaddrinfo(target_.host.c_str(), port.c_str(), &hints, &res) != 0) return false;
      std::memcpy(&address_, res->ai_addr, res->ai_addrlen);
      address_len_ = res->ai_addrlen;
      freeaddrinfo(res);
    }
    *addr = address_;
    *len = address_len_;
    return true;
  }

  // A non-blocking connect finished (the socket turned writable or failed).
  void Connected(Conn& c) {
    int error = 0;
    socklen_t len = sizeof error;
    c.connecting = false;
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
      return Lost(c, "transport_Connection");
    }
    if (c.busy) Write(c);
  }

  void Watch(Conn& c, uint32_t events) {
    if (c.watching == events) return;
    c.watching = events;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &c;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // Sends request `i` on `c`; its latency counts from `t0`.
  void Start(Conn& c, int64_t i, Clock::time_point t0) {
    c.busy = true;
    c.resent = false;
    c.request = i;
    c.t0 = t0;
    c.message = &messages_[static_cast<size_t>(i) % messages_.size()];
    ++in_flight_;
    Send(c);
  }

  void Send(Conn& c) {
    c.deadline = Clock::now() + std::chrono::milliseconds(cmd_.timeout_ms);
    c.sent = 0;
    c.in.clear();
    if (c.fd < 0 && !Connect(c, false)) return Finish(c, "transport_Connection");
    if (!c.connecting) Write(c);
  }

  void Write(Conn& c) {
    while (c.sent < c.message->size()) {
      const ssize_t n =
          send(c.fd, c.message->data() + c.sent, c.message->size() - c.sent, MSG_NOSIGNAL);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return Watch(c, EPOLLIN | EPOLLOUT);
      } else {
        return Lost(c, "transport_Write");
      }
    }
    Watch(c, EPOLLIN);
  }

  void Read(Conn& c) {
    char buf[16384];
    for (;;) {  // until a short read: the socket is drained without a call that finds it empty
      const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return Lost(c, "transport_Read");  // closed by the server, or reset
    }
    if (!c.busy) return Close(c);  // bytes nobody asked for
    const Reply r = ParseReply(c.in);
    if (r.bad) {
      Close(c);
      return Finish(c, "transport_Read");
    }
    if (!r.complete) return;
    if (r.close) {
      Close(c);
    } else {
      c.reused = true;
      if (c.unproven) --unproven_;
      c.unproven = false;
    }
    Finish(c, r.status == 200 ? std::string() : "http_" + std::to_string(r.status));
  }

  // The connection failed under the request on it. A keep-alive connection the server closed
  // while it sat idle fails before any reply byte: the request is sent once more on a fresh
  // one, as HTTP clients do (counted in `resent`). Anything else is the request's error.
  void Lost(Conn& c, const char* error) {
    const bool stale = c.reused && c.in.empty() && !c.resent;
    Close(c);
    if (!c.busy) return;
    if (stale) {
      c.resent = true;
      ++results_->resent;
      return Send(c);
    }
    Finish(c, error);
  }

  void Finish(Conn& c, const std::string& error) {
    results_->Add(std::chrono::duration<double, std::milli>(Clock::now() - c.t0).count(), error);
    c.busy = false;
    --in_flight_;
    idle_.push_back(&c);
  }

  // epoll_wait for at most `timeout` (negative: no limit), to the microsecond where the kernel
  // has epoll_pwait2 (the open loop's schedule), else to the millisecond (rounded up). -1 on
  // an error other than EINTR.
  int Wait(std::vector<epoll_event>& events, Clock::duration timeout) {
    const int max = static_cast<int>(events.size());
    int n;
    if (timeout < Clock::duration(0)) {
      n = epoll_wait(epoll_, events.data(), max, -1);
    } else {
      n = -1;
      if (have_pwait2_) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        n = epoll_pwait2(epoll_, events.data(), max, &ts, nullptr);
        if (n < 0 && errno == ENOSYS) have_pwait2_ = false;
      }
      if (!have_pwait2_) {
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
        n = epoll_wait(epoll_, events.data(), max,
                       static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
      }
    }
    if (n < 0 && errno == EINTR) return 0;
    return n;
  }

  const Target target_;
  const LoadCmd cmd_;
  const std::vector<std::string> messages_;
  std::vector<Conn> conns_;
  std::vector<Conn*> idle_;  // most recently used last: the open loop reuses warm connections
  int epoll_ = -1;
  sockaddr_storage address_{};
  socklen_t address_len_ = 0;
  int64_t in_flight_ = 0;
  // Connections not yet known to be accepted (no reply on them yet). The server's listen
  // backlog is short (5 in cpp-httplib) and its accept thread may wait for a core: at most
  // kUnproven connections are opened before one of them has answered, so the loop never makes
  // the kernel drop a SYN (a 1 s retry, counted in that request's latency).
  static constexpr int kUnproven = 4;
  int unproven_ = 0;
  bool have_pwait2_ = true;
  Results* results_ = nullptr;
};

Status Sender::Run(Results* results, double* elapsed_s) {
  results_ = results;
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) return Internal(std::string("epoll: ") + std::strerror(errno));

  const bool open = cmd_.mode == "open";
  conns_.resize(static_cast<size_t>(open ? cmd_.connections : cmd_.clients));
  for (auto it = conns_.rbegin(); it != conns_.rend(); ++it) idle_.push_back(&*it);
  // Connections are made before the clock starts (every client's in the closed loop, 8 in the
  // open loop), so the measurement is of requests, not of a burst of handshakes (which a short
  // listen backlog answers with a 1 s SYN retry). The open loop opens more when every open one
  // is busy (see kUnproven), and gives the next request the most recently freed one, so no more
  // are busy than the load needs (an idle keep-alive connection is not free for the server: it
  // polls it).
  const size_t warm = open ? std::min<size_t>(conns_.size(), 8) : conns_.size();
  for (size_t i = 0; i < warm; ++i) Connect(*idle_[idle_.size() - 1 - i], true);
  const auto start = Clock::now();
  const auto end = cmd_.duration_s > 0 ? start + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(cmd_.duration_s))
                                       : Clock::time_point::max();
  const int64_t limit = cmd_.requests > 0 ? cmd_.requests : INT64_MAX;
  const std::chrono::duration<double> interval(open ? 1.0 / cmd_.rate : 0);
  auto scheduled = [&](int64_t i) {
    return start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
  };
  int64_t next = 0;
  std::deque<int64_t> due;  // open loop: scheduled, waiting for a free connection
  std::vector<epoll_event> events(conns_.size());
  for (;;) {
    auto now = Clock::now();
    if (open) {
      while (next < limit && scheduled(next) <= now && scheduled(next) < end) due.push_back(next++);
      while (!due.empty() && !idle_.empty()) {
        if (idle_.back()->fd < 0) {  // prefer an open connection; see `unproven_`
          auto open_one =
              std::find_if(idle_.rbegin(), idle_.rend(), [](const Conn* c) { return c->fd >= 0; });
          if (open_one != idle_.rend()) {
            std::swap(*open_one, idle_.back());
          } else if (unproven_ >= kUnproven) {
            break;
          }
        }
        Conn* c = idle_.back();
        idle_.pop_back();
        Start(*c, due.front(), scheduled(due.front()));
        due.pop_front();
      }
    } else {
      while (!idle_.empty() && next < limit && now < end) {
        Conn* c = idle_.back();
        idle_.pop_back();
        Start(*c, next++, now);
      }
    }
    const bool more = open ? next < limit && scheduled(next) < end : next < limit && now < end;
    if (!more && due.empty() && in_flight_ == 0) break;

    // Wake for the next scheduled request (open loop) and the nearest request timeout.
    Clock::time_point wake = open && more ? scheduled(next) : Clock::time_point::max();
    for (const Conn& c : conns_) {
      if (c.busy) wake = std::min(wake, c.deadline);
    }
    const int n =
        Wait(events, wake == Clock::time_point::max() ? Clock::duration(-1)
                                                      : std::max(wake - now, Clock::duration(0)));
    if (n < 0) return Internal(std::string("epoll_wait: ") + std::strerror(errno));
    for (int e = 0; e < n; ++e) {
      Conn* c = static_cast<Conn*>(events[e].data.ptr);
      if (c->fd < 0) continue;  // closed by an earlier event of this round
      if (c->connecting) {
        if (events[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) Connected(*c);
        continue;
      }
      if ((events[e].events & EPOLLOUT) && c->busy && c->sent < c->message->size()) Write(*c);
      if (c->fd >= 0 && (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) Read(*c);
    }
    now = Clock::now();
    for (Conn& c : conns_) {
      if (c.busy && c.deadline <= now) {
        Close(c);
        Finish(c, "transport_Read");  // httplib's name for a read timeout, as before
      }
    }
  }
  *elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return Status::Ok();
}

// The pre-built HTTP/1.1 message of every body.
std::vector<std::string> Messages(const Target& t, const std::string& path,
                                  const std::vector<std::string>& bodies) {
  std::vector<std::string> out;
  for (const std::string& body : bodies) {
    out.push_back(
        "POST " + path + " HTTP/1.1\r\nHost: " + t.host + ":" + std::to_string(t.port) +
        "\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  return out;
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

Status Loadtest(LoadCmd c) {
  ASSIGN_OR_RETURN(Target t, ParseLoopbackUrl(c.url));
  if (c.mode != "open" && c.mode != "closed")
    return InvalidArgument("--mode must be open or closed");
  if (c.candidates < 1) return InvalidArgument("--candidates must be at least 1");
  if (c.mode == "open" && !(c.rate > 0)) return InvalidArgument("--rate must be positive");
  if (c.clients < 1 || c.connections < 1)
    return InvalidArgument("--clients and --connections must be >= 1");
  if (c.timeout_ms < 1) return InvalidArgument("--timeout-ms must be >= 1");
  if (c.duration_s <= 0 && c.requests <= 0) c.duration_s = 10;
  std::string path;
  ASSIGN_OR_RETURN(auto bodies, MakeBodies(c, t, &path));

  Results results;
  double elapsed = 0;
  {
    Sender sender(t, c, Messages(t, path, bodies));
    RETURN_IF_ERROR(sender.Run(&results, &elapsed));
  }
  const bool open = c.mode == "open";
  const int n = open ? c.connections : c.clients;

  int64_t errors = 0;
  for (const auto& [k, v] : results.errors) errors += v;
  const int64_t total = results.ok + errors;
  const double qps = static_cast<double>(total) / elapsed;
  const double cps = static_cast<double>(results.ok * c.candidates) / elapsed;
  auto& lat = results.latency_ms;
  const double p50 = Percentile(lat, 0.5), p90 = Percentile(lat, 0.9), p99 = Percentile(lat, 0.99);
  const double mx = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  if (c.json_out) {
    json j = {{"url", c.url},
              {"endpoint", c.endpoint},
              {"mode", c.mode},
              {"concurrency", n},
              {"target_rate", open ? c.rate : 0.0},
              {"candidates", c.candidates},
              {"duration_s", elapsed},
              {"requests", total},
              {"ok", results.ok},
              {"errors", errors},
              {"errors_by_kind", results.errors},
              {"resent", results.resent},
              {"qps", qps},
              {"candidates_per_s", cps},
              {"latency_ms", {{"p50", p50}, {"p90", p90}, {"p99", p99}, {"max", mx}}}};
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "loadtest " << c.endpoint << " " << c.url << ": " << c.mode << " loop, "
            << (open ? "up to " + std::to_string(c.connections) + " connections at " +
                           std::to_string(static_cast<int64_t>(c.rate)) + " req/s"
                     : std::to_string(c.clients) + " clients")
            << ", " << c.candidates << " candidates, " << elapsed << " s\n";
  std::cout << "requests " << total << " (ok " << results.ok << ", errors " << errors
            << "); achieved " << qps << " req/s, " << cps << " candidates/s\n";
  std::cout << std::setprecision(3) << "latency ms: p50 " << p50 << "  p90 " << p90 << "  p99 "
            << p99 << "  max " << mx << "\n";
  for (const auto& [k, v] : results.errors) std::cout << "errors " << k << ": " << v << "\n";
  if (results.resent > 0) {
    std::cout << "resent on a fresh connection (the server had closed the idle one): "
              << results.resent << "\n";
  }
  return Status::Ok();
}

}  // namespace

void RegisterLoadtest(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<LoadCmd>();
  CLI::App* cmd = app.add_subcommand(
      "loadtest", "Load a local clickrt serve (open or closed loop); report QPS and latency");
  cmd->add_option("--url", c->url, "Server base URL (loopback only)")->capture_default_str();
  cmd->add_option("--mode", c->mode, "open (fixed --rate) or closed (--clients)")
      ->capture_default_str();
  cmd->add_option("--rate", c->rate, "Open loop: requests per second")->capture_default_str();
  cmd->add_option("--clients", c->clients, "Closed loop: concurrent clients")
      ->capture_default_str();
  cmd->add_option("--connections", c->connections, "Open loop: at most this many connections")
      ->capture_default_str();
  cmd->add_option("--duration", c->duration_s, "Seconds to run (default 10 when --requests is 0)");
  cmd->add_option("--requests", c->requests, "Stop after this many requests");
  cmd->add_option("--endpoint", c->endpoint, "rank or infer")->capture_default_str();
  cmd->add_option("--model", c->model, "Model name (required for infer)");
  cmd->add_option("--candidates", c->candidates, "Candidates (rows) per request")
      ->capture_default_str();
  cmd->add_option("--features", c->features, "Take user / item ids from this feature file's keys");
  cmd->add_option("--users", c->users, "Without --features: user ids u0..u<N-1>")
      ->capture_default_str();
  cmd->add_option("--items", c->items, "Without --features: ad ids ad0..ad<N-1>")
      ->capture_default_str();
  cmd->add_option("--id-range", c->id_range, "infer: integer inputs uniform in [0, N)")
      ->capture_default_str();
  cmd->add_option("--timeout-ms", c->timeout_ms, "Per-request timeout")->capture_default_str();
  cmd->add_option("--seed", c->seed, "Random seed of the request bodies")->capture_default_str();
  cmd->add_flag("--json", c->json_out, "One JSON line instead of text");
  cmd->callback([c, exit_code] {
    Status s = Loadtest(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
