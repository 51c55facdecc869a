// File: runtime/serving/serve_loop.h
// Rank 0's engine thread while serving: takes new and cancelled requests from the hub, runs
// micro-batch steps, delivers tokens, refreshes the metrics. On `stop` it drains: no new
// requests, in-flight ones run to completion, then it returns.
#pragma once

#include <atomic>

#include "absl/status/status.h"
#include "runtime/engine.h"
#include "runtime/serving/request_hub.h"
#include "runtime/serving/server_metrics.h"

namespace strata {

absl::Status RunServeLoop(Engine& engine, RequestHub& hub, ServerMetrics& metrics, const std::atomic<bool>& stop);

}  // namespace strata
