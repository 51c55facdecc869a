// ParallelLayout against independent oracles, over seeded random models and layouts:
//   * each dimension's slices partition it, and every query head's KV head (head / group width,
//     the GQA rule) is among its slice's KV heads;
//   * `strata plan` (PlanPipeline) approves exactly the layouts the engine loads: every rank of a
//     thread job either starts or fails with the planner's own message;
//   * a started rank's loaded weights have exactly the bytes the layout sized, and the job
//     generates what one rank does.
#include "parallel/parallel_layout.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>

#include "parallel/planner.h"
#include "parallel/thread_comm.h"
#include "runtime/engine.h"
#include "runtime/model/config.h"
#include "runtime/model/model_writer.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

struct RandomCase {
  MakeModelOptions model;
  int tp = 1, pp = 1;
  std::string Describe() const {
    return absl::StrCat(model.family, " layers ", model.layers, " heads ", model.heads, " kv ", model.kv_heads,
                        " kv_layers ", model.kv_layers, " I ", model.intermediate, " V ", model.vocab, " tie ",
                        model.tie_embeddings, " ", model.dtype, " | tp ", tp, " pp ", pp);
  }
};

template <typename T>
T Pick(std::mt19937& rng, std::vector<T> v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

RandomCase Draw(std::mt19937& rng) {
  RandomCase c;
  MakeModelOptions& m = c.model;
  m.family = Pick<std::string>(rng, {"llama", "gpt_neox"});
  m.layers = Pick(rng, std::vector<int>{2, 3, 4});
  m.heads = Pick(rng, std::vector<int>{2, 3, 4, 6, 8});
  std::vector<int> divisors;
  for (int g = 1; g <= m.heads; ++g)
    if (m.heads % g == 0) divisors.push_back(g);
  m.kv_heads = Pick(rng, divisors);
  m.hidden = m.heads * 8;
  m.intermediate = Pick(rng, std::vector<int>{24, 32, 36, 48, 64});
  m.vocab = Pick(rng, std::vector<int>{61, 64, 100});
  m.max_position = 64;
  m.tie_embeddings = Pick(rng, std::vector<bool>{false, true});
  m.dtype = Pick<std::string>(rng, {"float32", "bfloat16"});
  if (m.family == "gpt_neox") {
    // Stock Pythia (fused QKV, every layer a producer) or MLKV over fewer KV layers.
    m.kv_layers = m.kv_heads == m.heads && Pick(rng, std::vector<bool>{false, true}) ? 0
                                                                                      : Pick(rng, std::vector<int>{1, 2});
  }
  m.seed = rng();
  c.tp = Pick(rng, std::vector<int>{1, 2, 3, 4});
  c.pp = Pick(rng, std::vector<int>{1, 2, 3});
  if (c.tp * c.pp > 6) c.pp = 1;  // keep the thread jobs small
  return c;
}

// The partition checks: every index of [0, n) in exactly one slice, in slice order.
void ExpectPartition(const std::vector<IndexRange>& slices, int64_t n, const std::string& what) {
  int64_t next = 0;
  for (const IndexRange& r : slices) {
    if (r.count == 0) continue;  // a slice past the end of the vocabulary
    EXPECT_EQ(r.first, next) << what;
    next = r.end();
  }
  EXPECT_EQ(next, n) << what;
}

TEST(ParallelLayout, SlicesPartitionEveryDimensionAndKeepTheGqaMapping) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int i = 0; i < 200; ++i) {
    const RandomCase c = Draw(rng);
    ModelSpec spec;
    spec.num_layers = c.model.layers;
    spec.num_heads = c.model.heads;
    spec.head_dim = 8;
    spec.hidden_size = c.model.hidden;
    spec.intermediate_size = c.model.intermediate;
    spec.vocab_size = c.model.vocab;
    spec.layers.assign(spec.num_layers, LayerSpec{});
    for (LayerSpec& l : spec.layers) l.num_kv_heads = c.model.kv_heads;
    auto layout = ParallelLayout::Create(spec, c.tp, c.pp);
    const bool splittable = spec.num_heads % c.tp == 0 && spec.intermediate_size % c.tp == 0 &&
                            (c.model.kv_heads % c.tp == 0 || c.tp % c.model.kv_heads == 0) && c.pp <= spec.num_layers;
    ASSERT_EQ(layout.ok(), splittable) << c.Describe() << ": " << layout.status();
    if (!layout.ok()) continue;
    ++checked;
    std::vector<IndexRange> heads, cols, vocab;
    for (int s = 0; s < c.tp; ++s) {
      heads.push_back(layout->query_heads(s));
      cols.push_back(layout->mlp_columns(s));
      vocab.push_back(layout->vocab_rows(s));
      const IndexRange kv = layout->kv_heads(c.model.kv_heads, s);
      EXPECT_EQ(kv.count, layout->kv_heads_per_slice(c.model.kv_heads));
      const int group = spec.num_heads / c.model.kv_heads;  // query heads per KV head
      for (int64_t q = heads.back().first; q < heads.back().end(); ++q)
        EXPECT_TRUE(q / group >= kv.first && q / group < kv.end()) << c.Describe() << " slice " << s << " head " << q;
      EXPECT_LE(kv.end(), c.model.kv_heads);
      EXPECT_EQ(vocab.back().count > 0 ? layout->vocab_rows_padded() >= vocab.back().count : true, true);
    }
    ExpectPartition(heads, spec.num_heads, "query heads " + c.Describe());
    ExpectPartition(cols, spec.intermediate_size, "MLP columns " + c.Describe());
    ExpectPartition(vocab, spec.vocab_size, "vocabulary rows " + c.Describe());
    // Ranks: a bijection onto (stage, slice), and the control tree reaches every rank once.
    std::map<int, int> reached;
    std::vector<int> frontier = {0};
    while (!frontier.empty()) {
      const int r = frontier.back();
      frontier.pop_back();
      ++reached[r];
      for (int child : layout->control_children(r)) {
        EXPECT_EQ(layout->control_parent(child), r);
        frontier.push_back(child);
      }
    }
    EXPECT_EQ(static_cast<int>(reached.size()), c.tp * c.pp) << c.Describe();
    for (int r = 0; r < c.tp * c.pp; ++r) {
      EXPECT_EQ(reached[r], 1);
      EXPECT_EQ(layout->rank_of(layout->stage_of(r), layout->slice_of(r)), r);
    }
  }
  EXPECT_GT(checked, 50);
}

// The slice lists of all ranks of a random model and layout, against the checkpoint's tensors:
// every element of every expected tensor is read, by as many ranks as the role's split says (all
// slices for a whole tensor, the slices sharing a replicated KV head, else one; the tied
// embedding by the first and the last stage), each block inside its tensor; and per buffer the
// parts have the buffer's width and add up to its rows.
TEST(ParallelLayout, SliceWeightsReadEveryCheckpointElementAsTheSplitSays) {
  std::mt19937 rng(5);
  int checked = 0;
  for (int i = 0; i < 150; ++i) {
    RandomCase c = Draw(rng);
    auto spec = ParseModelConfig(RandomModelConfigJson(c.model), "random");
    ASSERT_TRUE(spec.ok()) << c.Describe() << ": " << spec.status();
    auto unstaged = ParallelLayout::Create(*spec, c.tp, c.pp);
    if (!unstaged.ok()) continue;
    std::vector<LayerSpan> stages;
    for (int st = 0; st < c.pp; ++st)
      stages.push_back({st * spec->num_layers / c.pp, (st + 1) * spec->num_layers / c.pp - 1});
    auto layout = unstaged->WithStages(stages);
    ASSERT_TRUE(layout.ok()) << layout.status();
    ++checked;
    std::map<std::string, TensorDecl> decls;
    std::map<std::string, std::vector<int>> reads;  // per element
    for (const TensorDecl& t : ExpectedTensors(*spec)) {
      decls[t.name] = t;
      reads[t.name].assign(static_cast<size_t>(t.shape[0] * (t.matrix() ? t.shape[1] : 1)), 0);
    }
    for (int rank = 0; rank < layout->world_size(); ++rank) {
      const LayerSpan span = layout->stage_layers(layout->stage_of(rank));
      for (const WeightSlice& w : layout->SliceWeights(*spec, span.first, span.last, layout->slice_of(rank))) {
        int64_t rows = 0;
        for (const SlicePart& p : w.parts) {
          ASSERT_TRUE(decls.count(p.tensor)) << c.Describe() << ": " << p.tensor << " is no expected tensor";
          const TensorDecl& t = decls[p.tensor];
          const int64_t cols = t.matrix() ? t.shape[1] : 1;
          ASSERT_EQ(p.tensor_shape, t.shape) << p.tensor;
          ASSERT_EQ(p.cols.count, w.cols) << p.tensor;
          ASSERT_TRUE(p.rows.first >= 0 && p.rows.end() <= t.shape[0] && p.cols.first >= 0 && p.cols.end() <= cols)
              << c.Describe() << ": " << p.tensor;
          for (int64_t r = p.rows.first; r < p.rows.end(); ++r)
            for (int64_t k = p.cols.first; k < p.cols.end(); ++k) ++reads[p.tensor][r * cols + k];
          rows += p.rows.count;
        }
        EXPECT_EQ(rows, w.rows) << c.Describe();
        EXPECT_EQ(w.matrix, decls[w.parts[0].tensor].matrix());
      }
    }
    for (const auto& [name, counts] : reads) {
      const TensorDecl& t = decls[name];
      const int64_t cols = t.matrix() ? t.shape[1] : 1;
      for (size_t e = 0; e < counts.size(); ++e) {
        int want = 1;
        const int g = t.layer >= 0 ? spec->layers[t.layer].num_kv_heads : 1;
        const bool kv_rows = t.role->split == TpSplit::kKvRows ||
                             (t.role->split == TpSplit::kNeoxQkvRows && (static_cast<int64_t>(e) / cols / spec->head_dim) % 3 != 0);
        if (t.role->split == TpSplit::kWhole) want = c.tp;
        if (kv_rows && g < c.tp) want = c.tp / g;
        if (t.role->slot == WeightSlot::kEmbed && spec->tie_word_embeddings && c.pp > 1) want = 2;
        if (counts[e] != want) {
          ADD_FAILURE() << c.Describe() << ": element " << e << " of " << name << " read " << counts[e]
                        << " times, not " << want;
          break;
        }
      }
    }
  }
  EXPECT_GT(checked, 50);
}

template <class F>
void OnThreads(int n, F f) {
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r) ts.emplace_back(f, r);
  for (auto& t : ts) t.join();
}

TEST(ParallelLayout, PlanApprovesExactlyWhatLoadsAndSizesWhatIsLoaded) {
  std::mt19937 rng(11);
  GenerationRequest req;
  req.prompt = {3, 1, 4, 1, 5};
  req.max_tokens = 2;
  req.ignore_eos = true;
  int loaded = 0, refused = 0;
  for (int i = 0; i < 40; ++i) {
    const RandomCase c = Draw(rng);
    const std::string dir = MakeModel("layout-" + std::to_string(i), c.model, c.model.dtype);
    auto spec = LoadModelConfig(dir);
    ASSERT_TRUE(spec.ok()) << c.Describe() << ": " << spec.status();
    EngineOptions o;
    o.kv_dtype = "float32";
    o.block_size = 4;
    o.kv_memory_bytes = 4 << 20;
    o.max_seqs = 4;
    o.backend.threads = 1;
    o.tp = c.tp;
    o.pp = c.pp;
    PlannerOptions po;
    po.kv_memory_bytes = o.kv_memory_bytes;
    po.kv_dtype = DType::kF32;
    po.block_size = o.block_size;
    po.max_seqs = o.max_seqs;
    po.weight_formats.matrices = WeightFormat::Plain(spec->torch_dtype);  // the CPU backend keeps the checkpoint's matrices
    const auto plan = PlanPipeline(*spec, Topology{c.tp, c.pp}, po);

    const int n = c.tp * c.pp;
    auto hosts = CreateThreadHostComms(n);
    std::vector<absl::Status> started(n);
    std::vector<int64_t> weight_bytes(n, -1), sized(n, -2);
    std::vector<int> tokens;
    OnThreads(n, [&](int rank) {
      const Topology topo{c.tp, c.pp};
      auto group = hosts[rank]->Split(topo.stage_of(rank), topo.slice_of(rank));
      auto tp_plane = CreateThreadDeviceComm(group.get());
      auto world_plane = CreateThreadDeviceComm(hosts[rank].get());
      auto e = Engine::Create(dir, o, {hosts[rank].get(), tp_plane.get(), world_plane.get()});
      started[rank] = e.status();
      if (!e.ok()) return;
      const ParallelLayout& layout = (*e)->plan().layout;
      const LayerSpan span = layout.stage_layers(layout.stage_of(rank));
      weight_bytes[rank] = (*e)->weight_bytes();
      sized[rank] = layout.WeightBytes((*e)->spec(), span.first, span.last, layout.slice_of(rank), (*e)->weight_formats());
      if (rank == 0) {
        auto out = (*e)->Generate({req});
        EXPECT_TRUE(out.ok()) << out.status();
        if (out.ok()) tokens = (*out)[0].tokens;
        EXPECT_TRUE((*e)->Shutdown().ok());
      } else {
        EXPECT_TRUE((*e)->RunWorker().ok());
      }
    });
    for (int r = 0; r < n; ++r) {
      ASSERT_EQ(started[r].ok(), plan.ok()) << c.Describe() << " rank " << r << ": engine " << started[r]
                                            << ", plan " << plan.status();
      if (!plan.ok()) {
        EXPECT_EQ(started[r].message(), plan.status().message()) << c.Describe();
      }
    }
    if (!plan.ok()) {
      ++refused;
      continue;
    }
    ++loaded;
    for (int r = 0; r < n; ++r) EXPECT_EQ(weight_bytes[r], sized[r]) << c.Describe() << " rank " << r;
    // Slice 0 of each stage is what the plan reports per rank.
    for (int s = 0; s < c.pp; ++s)
      EXPECT_EQ(weight_bytes[plan->layout.rank_of(s, 0)], plan->stages[s].weight_bytes_per_rank) << c.Describe();
    for (int r = 0; r < n; ++r)  // and the engine ran the plan `strata plan` shows
      EXPECT_LE(weight_bytes[r], plan->stages[plan->layout.stage_of(r)].weight_bytes_per_rank);
    EngineOptions one = o;
    one.tp = one.pp = 1;
    auto single = Engine::Create(dir, one);
    ASSERT_TRUE(single.ok()) << single.status();
    auto ref = (*single)->Generate({req});
    ASSERT_TRUE(ref.ok());
    EXPECT_EQ(tokens, (*ref)[0].tokens) << c.Describe();
  }
  // The draw covers both outcomes.
  EXPECT_GT(loaded, 5);
  EXPECT_GT(refused, 5);
}

}  // namespace
}  // namespace strata::testing
