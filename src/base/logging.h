// Minimal leveled logging to stderr. CLICKRT_LOG_LEVEL=debug|info|warn|error sets the threshold.
#pragma once

#include <sstream>
#include <string>

namespace clickrt {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
void LogLine(LogLevel level, const char* file, int line, const std::string& message);

}  // namespace clickrt

#define CLICKRT_LOG(level, expr)                                                         \
  do {                                                                                   \
    if (::clickrt::LogLevel::level >= ::clickrt::CurrentLogLevel()) {                   \
      std::ostringstream _clickrt_os;                                                    \
      _clickrt_os << expr;                                                               \
      ::clickrt::LogLine(::clickrt::LogLevel::level, __FILE__, __LINE__, _clickrt_os.str()); \
    }                                                                                    \
  } while (0)
