// File: runtime/base/log.h
// Logging for every Strata process, through spdlog: levels (--log-level), a rank prefix on every
// line, and one JSON object per line with --log-format json (for log collectors). Call sites use
// spdlog directly (spdlog::info("... {}", x)); a message that is itself a JSON object (see
// LogFields) becomes the fields of its line in JSON mode and key=value pairs in text mode.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace strata {

struct LogOptions {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text or json
  int rank = 0;                 // the process's world rank (0 outside a distributed job)
};

// Sets up the default logger (stderr). Refuses an unknown level or format.
absl::Status InitLogging(const LogOptions& options);

// Logs `fields` at info level as one structured line (e.g. the per-request line).
void LogFields(const nlohmann::json& fields);

}  // namespace strata
