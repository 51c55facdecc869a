#include "parallel/planner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cache/kv_layout.h"
#include "runtime/base/status.h"

namespace strata {
namespace {

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

// What a contiguous layer range [a, b] costs when it is one stage.
struct RangeCost {
  int64_t kv_tok = 0, kv_seq = 0, capacity = 0, weights = 0;
  double flops = 0;       // per token, whole stage
  double move_cost = 0;   // mirrored bytes per token per rank, upward edges weighted
};

class Costs {
 public:
  Costs(const ModelSpec& s, const ParallelLayout& t, const PlannerOptions& o) : s_(s), t_(t), o_(o) {
    const int L = s.num_layers;
    range_.assign(L, std::vector<RangeCost>(L));
    for (int a = 0; a < L; ++a)
      for (int b = a; b < L; ++b) range_[a][b] = Compute(a, b);
  }
  const RangeCost& at(int a, int b) const { return range_[a][b]; }

  int64_t RowBytesPerRank(int producer) const {
    const KvLayout k = MakeKvLayout(s_, o_.kv_dtype, o_.block_size, t_, producer, producer);
    return k.banks[k.bank_of_layer[producer]].bytes_per_row;
  }

 private:
  RangeCost Compute(int a, int b) const {
    RangeCost c;
    const double h = s_.hidden_size;
    for (int l = a; l <= b; ++l) {
      c.flops += 2 * LayerMatmulParams(s_, l);
    }
    if (b == s_.num_layers - 1) c.flops += 2.0 * h * s_.vocab_size;
    // Weights from the tensors the loader reads for the range, as the layout shares them.
    c.weights = t_.WeightBytes(s_, a, b, 0, o_.weight_formats);
    // KV costs come from the cache layer, the one owner of bank accounting: the banks of a stage
    // are its homes and mirrors.
    const KvLayout k = MakeKvLayout(s_, o_.kv_dtype, o_.block_size, t_, a, b);
    c.kv_tok = k.bytes_per_token;
    c.kv_seq = k.bytes_per_sequence;
    c.capacity = ComputeKvCapacity(k, o_.kv_memory_bytes, o_.max_seqs).tokens;
    for (const KvBank& bank : k.banks) {
      const int p = bank.producer_layer;
      if (p < a || p > b)
        c.move_cost += static_cast<double>(bank.bytes_per_row) * (p > b ? s_.forward_passes + s_.backward_passes : 1);
    }
    return c;
  }

  const ModelSpec& s_;
  const ParallelLayout& t_;
  const PlannerOptions& o_;
  std::vector<std::vector<RangeCost>> range_;
};

// Minimizes over partitions of the layers into `P` stages with capacity >= min_cap and
// flops <= max_flops either the largest stage flops (objective 0) or the summed move cost
// (objective 1). Returns the cut starts (first layer of each stage) or an empty vector.
std::vector<int> Solve(const Costs& c, int L, int P, int64_t min_cap, double max_flops, int objective,
                       double* best) {
  std::vector<std::vector<double>> f(P + 1, std::vector<double>(L + 1, kInf));
  std::vector<std::vector<int>> from(P + 1, std::vector<int>(L + 1, -1));
  f[0][0] = 0;
  for (int k = 1; k <= P; ++k)
    for (int j = k; j <= L; ++j)
      for (int i = k - 1; i < j; ++i) {
        if (f[k - 1][i] == kInf) continue;
        const RangeCost& r = c.at(i, j - 1);
        if (r.capacity < min_cap || r.flops > max_flops) continue;
        const double v = objective == 0 ? std::max(f[k - 1][i], r.flops) : f[k - 1][i] + r.move_cost;
        if (v < f[k][j]) {
          f[k][j] = v;
          from[k][j] = i;
        }
      }
  *best = f[P][L];
  if (f[P][L] == kInf) return {};
  std::vector<int> starts(P);
  for (int k = P, j = L; k >= 1; --k) {
    starts[k - 1] = from[k][j];
    j = from[k][j];
  }
  return starts;
}

}  // namespace

absl::StatusOr<std::vector<std::pair<int, int>>> ParsePartition(const std::string& s) {
  std::vector<std::pair<int, int>> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    std::vector<std::string> ab = absl::StrSplit(part, '-');
    int a, b;
    if (ab.size() != 2 || !absl::SimpleAtoi(ab[0], &a) || !absl::SimpleAtoi(ab[1], &b))
      return absl::InvalidArgumentError(absl::StrCat("--partition: '", part, "' is not FIRST-LAST"));
    out.push_back({a, b});
  }
  return out;
}

int64_t ActivationReserveBytes(const ModelSpec& s, const ParallelLayout& layout, int max_batched_tokens,
                               int max_seqs) {
  const int64_t tokens = max_batched_tokens, seqs = max_seqs;
  const int64_t per_token = 8 * int64_t{s.hidden_size} + 3 * layout.mlp_columns(0).count;
  return 4 * (tokens * per_token + 2 * seqs * int64_t{s.vocab_size}) + (int64_t{256} << 20);
}

// Tensor parallelism splits a quantized matrix only on whole blocks: a slice that cuts one would
// have to be held dequantized, several times the bytes the user chose the file for.
namespace {
absl::Status CheckWholeBlocks(const ModelSpec& spec, const ParallelLayout& layout, const WeightFormats& formats) {
  for (int slice = 0; slice < layout.tp(); ++slice)
    for (const WeightSlice& w : layout.SliceWeights(spec, 0, spec.num_layers - 1, slice))
      if (std::string cut = formats.BlockCut(w); !cut.empty())
        return absl::InvalidArgumentError(absl::StrCat(
            "--tp ", layout.tp(), " splits quantized weights inside their blocks (", cut,
            "); choose a tp whose slices are whole blocks, or load them as floats with --dequantize"));
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<PipelinePlan> PlanPipeline(const ModelSpec& spec, const Topology& topo, const PlannerOptions& o) {
  const int L = spec.num_layers, P = topo.pp;
  // The layout's checks are the loader's: a plan exists exactly for the layouts that load.
  ASSIGN_OR_RETURN(const ParallelLayout unstaged, ParallelLayout::Create(spec, topo.tp, topo.pp));
  if (o.block_size < 1 || o.max_seqs < 1 || o.max_batched_tokens < 1 || o.kv_memory_bytes < 0)
    return absl::InvalidArgumentError("block size, max sequences and KV memory must be positive");
  RETURN_IF_ERROR(CheckWholeBlocks(spec, unstaged, o.weight_formats));

  const Costs costs(spec, unstaged, o);
  std::vector<int> starts;
  PipelinePlan plan;
  if (!o.forced_partition.empty()) {
    std::vector<LayerSpan> spans;
    for (const auto& [a, b] : o.forced_partition) spans.push_back({a, b});
    ASSIGN_OR_RETURN(plan.layout, unstaged.WithStages(spans));  // checks the ranges
    for (const LayerSpan& r : spans) starts.push_back(r.first);
    plan.partition_reason = "forced by --partition";
  } else {
    // 1. The largest smallest-capacity that a partition reaches (binary search over the
    //    distinct capacities of ranges; feasibility is monotone).
    std::vector<int64_t> caps;
    for (int a = 0; a < L; ++a)
      for (int b = a; b < L; ++b) caps.push_back(costs.at(a, b).capacity);
    std::sort(caps.begin(), caps.end());
    caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
    double flops_best = kInf;
    int lo = 0, hi = static_cast<int>(caps.size()) - 1, found = -1;
    while (lo <= hi) {
      const int mid = (lo + hi) / 2;
      double v;
      if (!Solve(costs, L, P, caps[mid], kInf, 0, &v).empty()) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    STRATA_CHECK(found >= 0);  // the smallest capacity is always reachable
    const int64_t min_cap = caps[found];
    // 2. The smallest largest-stage compute at that capacity; 3. the least moved bytes.
    Solve(costs, L, P, min_cap, kInf, 0, &flops_best);
    double moved;
    starts = Solve(costs, L, P, min_cap, flops_best * (1 + 1e-12), 1, &moved);
    STRATA_CHECK(!starts.empty());
    plan.partition_reason = absl::StrCat(
        "maximizes the smallest stage KV capacity (", min_cap == kUnbounded ? std::string("unbounded") : absl::StrCat(min_cap),
        " tokens), then balances compute (largest stage ", absl::StrFormat("%.3f", flops_best / 1e9),
        " GFLOP/token), then moves the fewest KV bytes between stages");
  }

  if (!plan.layout.has_stages()) {
    std::vector<LayerSpan> spans;
    for (int s = 0; s < P; ++s) spans.push_back({starts[s], s + 1 < P ? starts[s + 1] - 1 : L - 1});
    ASSIGN_OR_RETURN(plan.layout, unstaged.WithStages(spans));
  }
  for (int s = 0; s < P; ++s) {
    StagePlan st;
    const LayerSpan& layers = plan.layout.stage_layers(s);
    const RangeCost& r = costs.at(layers.first, layers.last);
    st.weight_bytes_per_rank = r.weights;
    st.kv_bytes_per_token_per_rank = r.kv_tok;
    st.kv_bytes_per_sequence_per_rank = r.kv_seq;
    st.kv_capacity_tokens = r.capacity;
    st.gflops_per_token = r.flops / 1e9;
    plan.stages.push_back(st);
  }
  for (int s = 0; s < P; ++s) {
    StagePlan& st = plan.stages[s];
    std::set<int> banks;
    for (int l = plan.layout.stage_layers(s).first; l <= plan.layout.stage_layers(s).last; ++l)
      banks.insert(spec.layers[l].kv_source);
    for (int p : banks) {
      const int home = plan.layout.stage_of_layer(p);  // a group lives on its producer's stage
      if (home == s) {
        st.homes.push_back(p);
        continue;
      }
      st.mirrors.push_back(p);
      TransferEdge e;
      e.producer_layer = p;
      e.from_stage = home;
      e.to_stage = s;
      e.upward = home > s;
      e.bytes_per_token_per_rank = costs.RowBytesPerRank(p);
      e.bytes_per_token = e.bytes_per_token_per_rank * topo.tp;
      plan.edges.push_back(e);
    }
  }
  std::sort(plan.edges.begin(), plan.edges.end(), [](const TransferEdge& x, const TransferEdge& y) {
    return std::tie(x.producer_layer, x.to_stage) < std::tie(y.producer_layer, y.to_stage);
  });
  plan.activation_bytes_per_rank = ActivationReserveBytes(spec, plan.layout, o.max_batched_tokens, o.max_seqs);
  plan.kv_capacity_tokens = kUnbounded;
  for (const StagePlan& st : plan.stages) plan.kv_capacity_tokens = std::min(plan.kv_capacity_tokens, st.kv_capacity_tokens);
  return plan;
}

}  // namespace strata
