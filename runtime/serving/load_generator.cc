#include "runtime/serving/load_generator.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "runtime/serving/http_server.h"

namespace strata {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct OneResult {
  bool ok = false;
  std::string error;
  double ttft = 0, e2e = 0;
  std::vector<double> itl;
  int64_t prompt_tokens = 0, output_tokens = 0;
};

httplib::Headers Headers(const LoadOptions& o) {
  httplib::Headers h;
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  return h;
}

OneResult RunOne(const LoadOptions& o, const std::string& model, const std::vector<int>& prompt) {
  OneResult r;
  httplib::Client c(o.url);
  c.set_read_timeout(600, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = Headers(o);
  req.set_header("Content-Type", "application/json");
  json body = {{"model", model}, {"prompt", prompt}, {"max_tokens", o.output_len}, {"temperature", 0},
               {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  if (o.ignore_eos) body["ignore_eos"] = true;
  req.body = body.dump();
  const auto t0 = Clock::now();
  auto last = t0;
  bool first = true;
  std::string buf;
  int status = 0;
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    for (size_t at; (at = buf.find("\n\n")) != std::string::npos;) {
      const std::string event = buf.substr(0, at);
      buf.erase(0, at + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) r.error = j["error"].value("message", "error event");
      if (j.contains("usage") && j["usage"].is_object()) {
        r.prompt_tokens = j["usage"].value("prompt_tokens", 0);
        r.output_tokens = j["usage"].value("completion_tokens", 0);
      }
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& ch = j["choices"][0];
      const std::string text = ch.contains("text") ? ch.value("text", "") : ch["delta"].value("content", "");
      if (text.empty()) continue;
      const auto now = Clock::now();
      if (first) {
        r.ttft = std::chrono::duration<double>(now - t0).count();
        first = false;
      } else {
        r.itl.push_back(std::chrono::duration<double>(now - last).count());
      }
      last = now;
    }
    return true;
  };
  auto res = c.send(req);
  r.e2e = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!res) {
    r.error = absl::StrCat("HTTP client: ", httplib::to_string(res.error()));
  } else if (status != 200) {
    r.error = absl::StrCat("HTTP ", status, ": ", buf.substr(0, 300));
  }
  r.ok = r.error.empty();
  return r;
}

}  // namespace

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

json LoadResult::ToJson(const LoadOptions& o) const {
  auto stats = [](const std::vector<double>& v) {
    double mean = 0;
    for (double x : v) mean += x;
    mean = v.empty() ? 0 : mean / static_cast<double>(v.size());
    return json{{"mean", mean * 1e3}, {"p50", Percentile(v, 50) * 1e3}, {"p90", Percentile(v, 90) * 1e3},
                {"p99", Percentile(v, 99) * 1e3}};
  };
  return {{"config",
           {{"url", o.url}, {"model", model}, {"concurrency", o.concurrency}, {"rate", o.rate},
            {"num_prompts", o.num_prompts}, {"prompt_len", o.prompt_len}, {"output_len", o.output_len},
            {"vocab", o.vocab}, {"ignore_eos", o.ignore_eos}, {"seed", o.seed},
            {"shared_prefix_len", o.shared_prefix_len}, {"num_prefixes", o.num_prefixes}}},
          {"completed", completed},
          {"errors", errors},
          {"error_samples", error_samples},
          {"duration_s", duration_s},
          {"request_throughput", duration_s > 0 ? completed / duration_s : 0},
          {"output_tokens_per_s", duration_s > 0 ? static_cast<double>(output_tokens) / duration_s : 0},
          {"total_tokens_per_s", duration_s > 0 ? static_cast<double>(prompt_tokens + output_tokens) / duration_s : 0},
          {"prompt_tokens", prompt_tokens},
          {"output_tokens", output_tokens},
          {"ttft_ms", stats(ttft_s)},
          {"itl_ms", stats(itl_s)},
          {"e2e_ms", stats(e2e_s)}};
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& opts) {
  RaiseDescriptorLimit();  // one connection per concurrent client
  LoadOptions o = opts;
  if (o.num_prompts < 1 || o.concurrency < 1 || o.prompt_len < 1 || o.output_len < 1 || o.vocab < 1 || o.rate < 0 ||
      o.shared_prefix_len < 0 || o.num_prefixes < 1)
    return absl::InvalidArgumentError("bench serve: --num-prompts, --concurrency, --prompt-len, --output-len, "
                                      "--vocab and --num-prefixes must be positive, --rate and "
                                      "--shared-prefix-len non-negative");
  if (o.model.empty()) {  // ask the server
    httplib::Client c(o.url);
    auto res = c.Get("/v1/models", Headers(o));
    if (!res || res->status != 200)
      return absl::UnavailableError(absl::StrCat("bench serve: GET ", o.url, "/v1/models failed",
                                                 res ? absl::StrCat(" (HTTP ", res->status, ")") : ""));
    json j = json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.contains("data") || j["data"].empty())
      return absl::UnavailableError("bench serve: /v1/models lists no model");
    o.model = j["data"][0].value("id", "");
  }
  // Seeded prompts and arrival times, so a run can be repeated.
  std::mt19937_64 rng(o.seed);
  auto token = [&] { return static_cast<int>(rng() % static_cast<uint64_t>(o.vocab)); };
  std::vector<std::vector<int>> prefixes(o.shared_prefix_len > 0 ? o.num_prefixes : 0);
  for (auto& p : prefixes)
    for (int i = 0; i < o.shared_prefix_len; ++i) p.push_back(token());
  std::vector<std::vector<int>> prompts(o.num_prompts);
  for (auto& p : prompts) {
    if (!prefixes.empty()) p = prefixes[rng() % prefixes.size()];
    for (int i = 0; i < o.prompt_len; ++i) p.push_back(token());
  }
  std::vector<double> arrival(o.num_prompts, 0.0);
  if (o.rate > 0) {
    std::exponential_distribution<double> gap(o.rate);
    double t = 0;
    for (double& a : arrival) {
      a = t;
      t += gap(rng);
    }
  }
  LoadResult out;
  out.model = o.model;
  std::mutex mu;
  std::atomic<int> next{0};
  const auto start = Clock::now();
  auto worker = [&] {
    for (int i; (i = next.fetch_add(1)) < o.num_prompts;) {
      if (o.rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(arrival[i]));
      OneResult r = RunOne(o, o.model, prompts[i]);
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok) {
        ++out.errors;
        if (out.error_samples.size() < 5) out.error_samples.push_back(r.error);
        continue;
      }
      ++out.completed;
      out.prompt_tokens += r.prompt_tokens;
      out.output_tokens += r.output_tokens;
      out.ttft_s.push_back(r.ttft);
      out.e2e_s.push_back(r.e2e);
      out.itl_s.insert(out.itl_s.end(), r.itl.begin(), r.itl.end());
    }
  };
  // Closed loop: `concurrency` workers. Open loop: as many workers as could be busy at once
  // (capped by --concurrency), each sleeping until its request's arrival time.
  std::vector<std::thread> ts;
  for (int w = 0; w < std::min(o.concurrency, o.num_prompts); ++w) ts.emplace_back(worker);
  for (auto& t : ts) t.join();
  out.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

}  // namespace strata
