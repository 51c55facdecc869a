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
  Costs(const ModelSpec& s, const Topology& t, const PlannerOptions& o) : s_(s), t_(t), o_(o) {
    const int L = s.num_layers;
    range_.assign(L, std::vector<RangeCost>(L));
    for (int a = 0; a < L; ++a)
      for (int b = a; b < L; ++b) range_[a][b] = Compute(a, b);
  }
  const RangeCost& at(int a, int b) const { return range_[a][b]; }

  int64_t RowBytesPerRank(int producer) const {
    const KvLayout k = MakeKvLayout(s_, o_.kv_dtype, o_.block_size, producer, producer, t_.tp);
    return k.banks[k.bank_of_layer[producer]].bytes_per_row;
  }

 private:
  RangeCost Compute(int a, int b) const {
    RangeCost c;
    const int64_t h = s_.hidden_size, qd = int64_t{s_.num_heads} * s_.head_dim, I = s_.intermediate_size;
    const int64_t ws = static_cast<int64_t>(DTypeSize(o_.weight_dtype));
    const int T = t_.tp;
    const int64_t norm_params = s_.norm == NormKind::kLayerNorm ? 2 * h : h;  // scale (+ shift)
    for (int l = a; l <= b; ++l) {
      const LayerSpec& ls = s_.layers[l];
      const int64_t kvd_rank = int64_t{KvHeadsPerRank(ls.num_kv_heads, T)} * s_.head_dim;
      const int64_t mlp = (s_.activation == Activation::kSwiGlu ? 3 : 2) * h * I;
      double params = static_cast<double>(h * qd * 2 + mlp);  // q, o, MLP
      int64_t rank_params = (h * qd * 2 + mlp) / T;
      if (ls.is_producer) {
        params += 2.0 * h * ls.num_kv_heads * s_.head_dim;
        rank_params += 2 * h * kvd_rank;
      }
      // Biases: column-parallel ones split with their weights, row-parallel ones (o, down) whole.
      if (s_.attention_bias) rank_params += qd / T + h + (ls.is_producer ? 2 * kvd_rank : 0);
      if (s_.mlp_bias) rank_params += (s_.activation == Activation::kSwiGlu ? 2 : 1) * I / T + h;
      c.flops += 2 * params;
      c.weights += (rank_params + 2 * norm_params) * ws;  // + the two norms (replicated)
    }
    const int64_t vocab_rank = (int64_t{s_.vocab_size} + T - 1) / T;  // vocab-parallel embedding and head
    if (a == 0) c.weights += vocab_rank * h * ws;
    if (b == s_.num_layers - 1) {
      c.flops += 2.0 * h * s_.vocab_size;
      c.weights += norm_params * ws;  // final norm
      if (!s_.tie_word_embeddings || a != 0) c.weights += vocab_rank * h * ws;
    }
    // KV costs come from the cache layer, the one owner of bank accounting: the banks of a stage
    // are its homes and mirrors.
    const KvLayout k = MakeKvLayout(s_, o_.kv_dtype, o_.block_size, a, b, t_.tp);
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
  const Topology& t_;
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

absl::StatusOr<PipelinePlan> PlanPipeline(const ModelSpec& spec, const Topology& topo, const PlannerOptions& o) {
  const int L = spec.num_layers, P = topo.pp, T = topo.tp;
  if (T < 1 || P < 1) return absl::InvalidArgumentError("--tp and --pp must be at least 1");
  if (P > L) return absl::InvalidArgumentError(absl::StrCat("--pp ", P, " exceeds the ", L, " layers of the model"));
  if (spec.num_heads % T != 0)
    return absl::InvalidArgumentError(absl::StrCat("--tp ", T, " does not divide the ", spec.num_heads, " attention heads"));
  for (int p : spec.Producers()) {
    const int g = spec.layers[p].num_kv_heads;
    if (g % T != 0 && T % g != 0)
      return absl::InvalidArgumentError(absl::StrCat("--tp ", T, ": layer ", p, " has ", g,
                                                     " KV heads, which neither divide nor are divided by the TP degree"));
  }
  if (o.block_size < 1 || o.max_seqs < 1 || o.kv_memory_bytes < 0)
    return absl::InvalidArgumentError("block size, max sequences and KV memory must be positive");

  const Costs costs(spec, topo, o);
  std::vector<int> starts;
  PipelinePlan plan;
  plan.topology = topo;
  if (!o.forced_partition.empty()) {
    if (static_cast<int>(o.forced_partition.size()) != P)
      return absl::InvalidArgumentError(absl::StrCat("--partition has ", o.forced_partition.size(),
                                                     " ranges for ", P, " stages"));
    int next = 0;
    for (const auto& [a, b] : o.forced_partition) {
      if (a != next || b < a || b >= L)
        return absl::InvalidArgumentError(absl::StrCat("--partition: range ", a, "-", b,
                                                       " must start at layer ", next, " and end by layer ", L - 1));
      starts.push_back(a);
      next = b + 1;
    }
    if (next != L) return absl::InvalidArgumentError(absl::StrCat("--partition ends at layer ", next - 1, ", not ", L - 1));
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

  plan.stage_of_layer.assign(L, 0);
  for (int s = 0; s < P; ++s) {
    StagePlan st;
    st.first_layer = starts[s];
    st.last_layer = s + 1 < P ? starts[s + 1] - 1 : L - 1;
    for (int l = st.first_layer; l <= st.last_layer; ++l) plan.stage_of_layer[l] = s;
    const RangeCost& r = costs.at(st.first_layer, st.last_layer);
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
    for (int l = st.first_layer; l <= st.last_layer; ++l) banks.insert(spec.layers[l].kv_source);
    for (int p : banks) {
      const int home = plan.stage_of_layer[p];  // a group lives on its producer's stage
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
      e.bytes_per_token = e.bytes_per_token_per_rank * T;
      plan.edges.push_back(e);
    }
  }
  std::sort(plan.edges.begin(), plan.edges.end(), [](const TransferEdge& x, const TransferEdge& y) {
    return std::tie(x.producer_layer, x.to_stage) < std::tie(y.producer_layer, y.to_stage);
  });
  plan.kv_capacity_tokens = kUnbounded;
  for (const StagePlan& st : plan.stages) plan.kv_capacity_tokens = std::min(plan.kv_capacity_tokens, st.kv_capacity_tokens);
  return plan;
}

}  // namespace strata
