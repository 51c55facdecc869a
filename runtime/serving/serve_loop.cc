#include "runtime/serving/serve_loop.h"

#include <chrono>

#include "runtime/base/status.h"

namespace strata {

absl::Status RunServeLoop(Engine& engine, RequestHub& hub, ServerMetrics& metrics, const std::atomic<bool>& stop) {
  using namespace std::chrono_literals;
  std::vector<std::pair<RequestId, GenerationRequest>> adds;
  std::vector<RequestId> cancels;
  auto last_metrics = std::chrono::steady_clock::now();
  for (;;) {
    if (stop && !hub.draining()) hub.StartDraining();
    hub.TakeWork(&adds, &cancels, engine.HasWork() ? 0ms : 20ms);
    for (auto& [id, r] : adds) {
      absl::Status st = engine.AddRequest(id, std::move(r));
      if (!st.ok()) hub.Fail(id, std::string(st.message()));
    }
    for (RequestId id : cancels) engine.AbortRequest(id);
    if (engine.HasWork()) {
      ASSIGN_OR_RETURN(std::vector<RequestOutput> outs, engine.Step());
      for (const RequestOutput& o : outs) hub.Deliver(o);
    } else if (hub.draining() && hub.unfinished() == 0) {
      metrics.Update(engine);
      return absl::OkStatus();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_metrics > 100ms || !engine.HasWork()) {
      metrics.Update(engine);
      last_metrics = now;
    }
  }
}

}  // namespace strata
