#include "runtime/base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using json = nlohmann::json;

std::string Timestamp(spdlog::log_clock::time_point t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  const std::time_t tt = spdlog::log_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return absl::StrCat(buf, ".", ms < 10 ? "00" : ms < 100 ? "0" : "", ms, "Z");
}

// A message that is a JSON object: its fields.
json FieldsOf(const spdlog::string_view_t& msg) {
  if (msg.size() < 2 || msg.data()[0] != '{') return json();
  json j = json::parse(msg.begin(), msg.end(), nullptr, false);
  return j.is_object() ? j : json();
}

// {"time":..., "level":..., "rank":..., "msg":...} or the structured message's own fields.
class JsonFormatter : public spdlog::formatter {
 public:
  explicit JsonFormatter(int rank) : rank_(rank) {}
  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& dest) override {
    json line = FieldsOf(m.payload);
    if (line.is_null()) line = {{"msg", std::string(m.payload.data(), m.payload.size())}};
    line["time"] = Timestamp(m.time);
    line["level"] = std::string(spdlog::level::to_string_view(m.level).data());
    line["rank"] = rank_;
    const std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(rank_); }

 private:
  int rank_;
};

// "2026-12-01T23:40:00.123Z rank 0 info  message", structured messages as key=value pairs.
class TextFormatter : public spdlog::formatter {
 public:
  explicit TextFormatter(int rank) : rank_(rank) {}
  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& dest) override {
    std::string msg(m.payload.data(), m.payload.size());
    if (json f = FieldsOf(m.payload); !f.is_null()) {
      msg.clear();
      for (const auto& [k, v] : f.items())
        absl::StrAppend(&msg, msg.empty() ? "" : " ", k, "=", v.is_string() ? v.get<std::string>() : v.dump());
    }
    const std::string text = absl::StrCat(Timestamp(m.time), " rank ", rank_, " ",
                                          std::string(spdlog::level::to_string_view(m.level).data()), " ", msg, "\n");
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(rank_); }

 private:
  int rank_;
};

}  // namespace

absl::Status InitLogging(const LogOptions& o) {
  const spdlog::level::level_enum level = spdlog::level::from_str(o.level);
  if (level == spdlog::level::off && o.level != "off")
    return absl::InvalidArgumentError(absl::StrCat("--log-level '", o.level,
                                                   "': one of trace, debug, info, warn, error, critical, off"));
  if (o.format != "text" && o.format != "json")
    return absl::InvalidArgumentError(absl::StrCat("--log-format '", o.format, "': text or json"));
  auto logger = std::make_shared<spdlog::logger>("strata", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (o.format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>(o.rank));
  } else {
    logger->set_formatter(std::make_unique<TextFormatter>(o.rank));
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);  // every line reaches the collector as it happens
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

void LogFields(const nlohmann::json& fields) {
  spdlog::info("{}", fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace strata
