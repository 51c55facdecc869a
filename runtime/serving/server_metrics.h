// File: runtime/serving/server_metrics.h
// The Prometheus metrics of `strata serve` (prometheus-cpp), under `strata_` names: vLLM's where
// the concept exists (requests running and waiting, token counters, TTFT / inter-token /
// end-to-end histograms with vLLM's buckets, preemptions, KV usage), and Strata's own: per-stage
// KV usage and capacity, KV bytes per token, bytes per transfer edge, per-stage step time and
// the pipeline bubble ratio. Other ranks' figures arrive through the step protocol (RankStats).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "runtime/engine.h"
#include "runtime/serving/request_hub.h"

namespace strata {

class ServerMetrics {
 public:
  ServerMetrics(const Engine& engine, const std::string& model_name);

  // HTTP threads.
  void OnRequest(const std::string& endpoint, int64_t prompt_tokens);
  void OnHttpError(int status);
  // Engine thread.
  void OnDelivery(const StreamEvent& ev, std::chrono::steady_clock::time_point submitted,
                  std::chrono::steady_clock::time_point last_token, bool first_token);
  void Update(const Engine& engine);
  void SetReady(bool ready);

  std::string Serialize() const;  // the text exposition format

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Labels base_;
  prometheus::Gauge *running_, *waiting_, *kv_usage_, *bubble_, *ready_, *ranks_reporting_;
  prometheus::Counter *prompt_tokens_, *generation_tokens_, *preemptions_;
  prometheus::Counter *prefix_queries_, *prefix_hits_;
  prometheus::Family<prometheus::Gauge>* stage_blocks_cached_;
  prometheus::Family<prometheus::Gauge>* stage_blocks_free_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* success_;
  prometheus::Family<prometheus::Counter>* http_errors_;
  prometheus::Family<prometheus::Counter>* edge_bytes_;
  prometheus::Family<prometheus::Gauge>* stage_usage_;
  prometheus::Family<prometheus::Gauge>* stage_step_;
  prometheus::Histogram *ttft_, *itl_, *e2e_;
  int64_t last_preemptions_ = 0;
  PrefixCacheStats last_prefix_;
  struct RankSeen {
    double busy = 0, wall = 0;
    int64_t steps = 0;
    std::map<std::pair<int, int>, int64_t> edges;
  };
  std::map<int, RankSeen> seen_;
  std::vector<int64_t> stage_capacity_;
  int block_size_ = 1;
};

}  // namespace strata
