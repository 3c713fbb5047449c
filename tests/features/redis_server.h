// A real redis-server on a free loopback port, started and stopped by a test.
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace clickrt::features::testing {

inline constexpr const char* kRedisServer = "/usr/bin/redis-server";

inline bool RedisServerInstalled() { return access(kRedisServer, X_OK) == 0; }

// A port the kernel just handed out, so very likely free.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Ports are picked at random by the kernel and released before redis-server binds them, so a
// process beside the test may take one first; Start() therefore checks that the server answering
// is its own child (INFO's process_id), and the first Start() tries a few ports.
class RedisServer {
 public:
  RedisServer() = default;
  ~RedisServer() { Stop(); }

  // Starts redis-server and waits until it answers (up to 5 s). The first call picks a free
  // port; later calls (a restart) reuse it.
  bool Start() {
    if (port_ != 0) return StartOn(port_);
    for (int attempt = 0; attempt < 5; ++attempt) {
      int port = FreePort();
      if (StartOn(port)) {
        port_ = port;
        return true;
      }
    }
    return false;
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }
  int port() const { return port_; }

 private:
  bool StartOn(int port) {
    pid_ = fork();
    if (pid_ == 0) {
      // The server must not outlive a crashed test, nor hold the test's output pipes open.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
      std::string p = std::to_string(port);
      execl(kRedisServer, kRedisServer, "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", "/tmp", static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::string own = "process_id:" + std::to_string(pid_) + "\r\n";
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {  // exited: the port was taken
        pid_ = -1;
        return false;
      }
      redisContext* c = redisConnect("127.0.0.1", port);
      bool ours = false;
      if (c != nullptr && c->err == 0) {
        auto* reply = static_cast<redisReply*>(redisCommand(c, "INFO server"));
        ours = reply != nullptr && reply->type == REDIS_REPLY_STRING &&
               std::string(reply->str, reply->len).find(own) != std::string::npos;
        if (reply != nullptr) freeReplyObject(reply);
      }
      if (c != nullptr) redisFree(c);
      if (ours) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Stop();
    return false;
  }

  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace clickrt::features::testing
