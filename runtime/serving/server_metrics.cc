#include "runtime/serving/server_metrics.h"

#include <sstream>

#include "prometheus/text_serializer.h"

namespace strata {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// vLLM's buckets, so dashboards built for vLLM read these unchanged.
const Histogram::BucketBoundaries kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                                  0.5,   0.75,  1.0,  2.5,  5.0,  7.5,  10.0, 20.0, 40.0,
                                                  80.0,  160.0, 640.0, 2560.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                                                 0.5,  0.75,  1.0,  2.5,   5.0, 7.5,  10.0, 20.0, 40.0, 80.0};
const Histogram::BucketBoundaries kE2eBuckets = {0.3, 0.5,  0.8,  1.0,  1.5,  2.0,  2.5,   5.0,   10.0,  15.0,
                                                 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

ServerMetrics::ServerMetrics(const Engine& engine, const std::string& model_name)
    : registry_(std::make_shared<prometheus::Registry>()), base_{{"model_name", model_name}} {
  auto& r = *registry_;
  running_ = &BuildGauge().Name("strata_num_requests_running").Help("Requests in the running batch.").Register(r).Add(base_);
  waiting_ = &BuildGauge().Name("strata_num_requests_waiting").Help("Requests waiting to be scheduled.").Register(r).Add(base_);
  kv_usage_ = &BuildGauge().Name("strata_kv_cache_usage_perc").Help("Fraction of KV blocks in use (1 = full).").Register(r).Add(base_);
  bubble_ = &BuildGauge().Name("strata_pipeline_bubble_ratio").Help("Fraction of time pipeline stages sat idle since the last report.").Register(r).Add(base_);
  ready_ = &BuildGauge().Name("strata_ready").Help("1 once every rank has loaded its weights and joined.").Register(r).Add(base_);
  ranks_reporting_ = &BuildGauge().Name("strata_ranks_reporting").Help("Ranks whose statistics reached rank 0 in the last 10 seconds of work.").Register(r).Add(base_);
  BuildGauge().Name("strata_world_size").Help("Ranks in the job.").Register(r).Add(base_).Set(engine.plan().layout.world_size());
  prompt_tokens_ = &BuildCounter().Name("strata_prompt_tokens_total").Help("Prompt tokens received.").Register(r).Add(base_);
  generation_tokens_ = &BuildCounter().Name("strata_generation_tokens_total").Help("Tokens generated.").Register(r).Add(base_);
  preemptions_ = &BuildCounter().Name("strata_num_preemptions_total").Help("Sequences preempted (recomputed later) for lack of KV blocks.").Register(r).Add(base_);
  prefix_queries_ = &BuildCounter().Name("strata_prefix_cache_queries_total").Help("Prompt tokens looked up in the prefix cache at admission (vLLM's prefix_cache_queries).").Register(r).Add(base_);
  prefix_hits_ = &BuildCounter().Name("strata_prefix_cache_hits_total").Help("Prompt tokens found in the prefix cache (their prefill skipped).").Register(r).Add(base_);
  stage_blocks_cached_ = &BuildGauge().Name("strata_stage_kv_blocks_cached").Help("KV blocks holding a cached prefix, per pipeline stage (held or evictable).").Register(r);
  stage_blocks_free_ = &BuildGauge().Name("strata_stage_kv_blocks_free").Help("KV blocks a new sequence can take, per pipeline stage (never used, or cached and unheld).").Register(r);
  requests_ = &BuildCounter().Name("strata_requests_total").Help("HTTP generation requests accepted, by endpoint.").Register(r);
  success_ = &BuildCounter().Name("strata_request_success_total").Help("Finished requests, by finish reason.").Register(r);
  http_errors_ = &BuildCounter().Name("strata_http_errors_total").Help("Requests answered with an error status.").Register(r);
  edge_bytes_ = &BuildCounter().Name("strata_kv_transfer_bytes_total").Help("KV bytes sent over each transfer edge (producer layer to stage), all ranks.").Register(r);
  stage_usage_ = &BuildGauge().Name("strata_stage_kv_usage_tokens").Help("KV tokens in use per pipeline stage.").Register(r);
  stage_step_ = &BuildGauge().Name("strata_stage_step_seconds").Help("Mean time of a stage's part of a step since the last report.").Register(r);
  ttft_ = &BuildHistogram().Name("strata_time_to_first_token_seconds").Help("Time to first token.").Register(r).Add(base_, kTtftBuckets);
  itl_ = &BuildHistogram().Name("strata_time_per_output_token_seconds").Help("Inter-token latency.").Register(r).Add(base_, kItlBuckets);
  e2e_ = &BuildHistogram().Name("strata_e2e_request_latency_seconds").Help("End-to-end request latency.").Register(r).Add(base_, kE2eBuckets);

  // Static facts of the plan: per-stage capacity and KV bytes per token.
  auto& capacity = BuildGauge().Name("strata_stage_kv_capacity_tokens").Help("KV capacity per pipeline stage, in tokens.").Register(r);
  auto& bytes = BuildGauge().Name("strata_kv_bytes_per_token").Help("KV bytes per token per rank of each stage.").Register(r);
  const PipelinePlan& plan = engine.plan();
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    prometheus::Labels l = base_;
    l["stage"] = std::to_string(s);
    capacity.Add(l).Set(static_cast<double>(plan.stages[s].kv_capacity_tokens));
    // Present (at 0, no step yet) from the start, not only after the first rank report: a
    // short job can finish before any report arrives.
    stage_step_->Add(l).Set(0);
    bytes.Add(l).Set(static_cast<double>(plan.stages[s].kv_bytes_per_token_per_rank));
    stage_capacity_.push_back(plan.stages[s].kv_capacity_tokens);
  }
  block_size_ = engine.kv_layout().block_size;
}

void ServerMetrics::OnRequest(const std::string& endpoint, int64_t prompt_tokens) {
  prometheus::Labels l = base_;
  l["endpoint"] = endpoint;
  requests_->Add(l).Increment();
  prompt_tokens_->Increment(static_cast<double>(prompt_tokens));
}

void ServerMetrics::OnHttpError(int status) {
  prometheus::Labels l = base_;
  l["status"] = std::to_string(status);
  http_errors_->Add(l).Increment();
}

void ServerMetrics::OnDelivery(const StreamEvent& ev, std::chrono::steady_clock::time_point submitted,
                               std::chrono::steady_clock::time_point last_token, bool first_token) {
  const auto now = std::chrono::steady_clock::now();
  if (ev.token >= 0) {
    generation_tokens_->Increment();
    if (first_token) ttft_->Observe(Seconds(now - submitted));
    else itl_->Observe(Seconds(now - last_token));
  }
  if (ev.finished) {
    e2e_->Observe(Seconds(now - submitted));
    prometheus::Labels l = base_;
    l["finished_reason"] = ev.finish_reason;
    success_->Add(l).Increment();
  }
}

void ServerMetrics::SetReady(bool ready) { ready_->Set(ready ? 1 : 0); }

void ServerMetrics::Update(const Engine& engine) {
  const Scheduler& s = engine.scheduler();
  running_->Set(s.num_running());
  waiting_->Set(s.num_waiting());
  kv_usage_->Set(s.num_blocks() > 0 ? static_cast<double>(s.blocks_used()) / s.num_blocks() : 0);
  preemptions_->Increment(static_cast<double>(s.num_preemptions() - last_preemptions_));
  last_preemptions_ = s.num_preemptions();
  // One block id covers a sequence on every stage: usage in tokens is the same on each.
  for (size_t st = 0; st < stage_capacity_.size(); ++st) {
    prometheus::Labels l = base_;
    l["stage"] = std::to_string(st);
    stage_usage_->Add(l).Set(static_cast<double>(s.blocks_used() * block_size_));
    stage_blocks_cached_->Add(l).Set(static_cast<double>(s.blocks_cached()));
    stage_blocks_free_->Add(l).Set(static_cast<double>(s.blocks_free()));
  }
  const PrefixCacheStats& pc = s.prefix_cache();
  prefix_queries_->Increment(static_cast<double>(pc.queries - last_prefix_.queries));
  prefix_hits_->Increment(static_cast<double>(pc.hits - last_prefix_.hits));
  last_prefix_ = pc;
  // Rank reports: deltas since the previous one give step time, busy ratio and edge bytes.
  std::map<int, std::pair<double, int>> busy_ratio;  // stage -> (sum of ratios, ranks)
  int reporting = 0;
  for (const auto& [rank, r] : engine.rank_stats()) {
    RankSeen& prev = seen_[rank];
    const double dwall = r.wall_seconds - prev.wall, dbusy = r.busy_seconds - prev.busy;
    const int64_t dsteps = r.steps - prev.steps;
    if (dwall > 0) {
      auto& b = busy_ratio[r.stage];
      b.first += std::min(1.0, dbusy / dwall);
      b.second += 1;
      ++reporting;
    }
    if (dsteps > 0 && r.slice == 0) {
      prometheus::Labels l = base_;
      l["stage"] = std::to_string(r.stage);
      stage_step_->Add(l).Set(dbusy / static_cast<double>(dsteps));
    }
    for (const auto& [edge, total] : r.edge_bytes) {
      prometheus::Labels l = base_;
      l["producer_layer"] = std::to_string(edge.first);
      l["to_stage"] = std::to_string(edge.second);
      edge_bytes_->Add(l).Increment(static_cast<double>(total - prev.edges[edge]));
    }
    if (dwall > 0) prev = RankSeen{r.busy_seconds, r.wall_seconds, r.steps, r.edge_bytes};
  }
  if (reporting > 0) ranks_reporting_->Set(reporting);
  if (!busy_ratio.empty()) {
    double sum = 0;
    for (const auto& [stage, b] : busy_ratio) sum += b.first / b.second;
    bubble_->Set(1.0 - sum / static_cast<double>(busy_ratio.size()));
  }
}

std::string ServerMetrics::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace strata
