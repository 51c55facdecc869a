// The in-process communicators: collectives against naive results, and tensor-parallel engines
// running as threads against the single-rank engine (a fast companion of the mpirun tests).
#include <gtest/gtest.h>

#include <thread>

#include "parallel/thread_comm.h"
#include "runtime/engine.h"
#include "parallel/staged_device_comm.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

template <class F>
void OnThreads(int n, F f) {
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r) ts.emplace_back(f, r);
  for (auto& t : ts) t.join();
}

// Rank 0 runs `lead` (the generation under test) and then shuts the job down; the other ranks
// serve as workers until it does.
template <class F>
void LeadOrWork(Engine& e, int rank, F lead) {
  if (rank == 0) {
    lead();
    ASSERT_TRUE(e.Shutdown().ok());
  } else {
    ASSERT_TRUE(e.RunWorker().ok());
  }
}

// Small F32 caches, one thread per rank: the options every engine of these tests shares.
EngineOptions SmallEngineOptions() {
  EngineOptions eo;
  eo.kv_dtype = "float32";
  eo.block_size = 4;
  eo.kv_memory_bytes = 16 << 20;
  eo.backend.threads = 1;
  return eo;
}

TEST(ThreadComm, CollectivesAndSplit) {
  auto comms = CreateThreadHostComms(4);
  OnThreads(4, [&](int r) {
    HostComm* h = comms[r].get();
    int v = r == 2 ? 42 : -1;
    ASSERT_TRUE(h->Broadcast(&v, sizeof(v), 2).ok());
    EXPECT_EQ(v, 42);
    auto d = CreateThreadDeviceComm(h);
    std::vector<float> x = {float(r), float(r * r), 1.f};
    ASSERT_TRUE(d->AllReduceSum(x.data(), x.size()).ok());
    EXPECT_EQ(x, (std::vector<float>{6.f, 14.f, 4.f}));
    std::vector<float> all(8);
    const float mine[2] = {float(r), float(10 + r)};
    ASSERT_TRUE(d->AllGather(mine, all.data(), 2).ok());
    EXPECT_EQ(all, (std::vector<float>{0, 10, 1, 11, 2, 12, 3, 13}));
    const int next = (r + 1) % 4, prev = (r + 3) % 4;
    int out = r * 100, in = -1;
    ASSERT_TRUE(d->Send(&out, sizeof(out), next).ok());
    ASSERT_TRUE(d->Recv(&in, sizeof(in), prev).ok());
    EXPECT_EQ(in, prev * 100);
    auto sub = h->Split(r / 2, r % 2);  // {0,1} and {2,3}
    EXPECT_EQ(sub->size(), 2);
    EXPECT_EQ(sub->rank(), r % 2);
    auto sd = CreateThreadDeviceComm(sub.get());
    float s = float(r);
    ASSERT_TRUE(sd->AllReduceSum(&s, 1).ok());
    EXPECT_EQ(s, r < 2 ? 1.f : 5.f);
  });
}

// The staging wrapper a device backend puts around a host data plane: every collective through
// it gives what the host path gives. (With the CPU backend the copies are memcpy; the CUDA
// whole-model test runs the same code with device memory.)
TEST(ThreadComm, StagedDataPlaneMatchesTheHostPath) {
  auto comms = CreateThreadHostComms(3);
  OnThreads(3, [&](int r) {
    auto host_path = CreateThreadDeviceComm(comms[r].get());
    auto backend = std::move(CreateBackend({})).value();
    StagedDeviceComm staged(host_path.get(), backend.get());
    EXPECT_FALSE(staged.takes_host_memory());
    EXPECT_EQ(staged.rank(), r);
    DeviceBuffer x = std::move(backend->Allocate(4 * sizeof(float))).value();
    const std::vector<float> mine = {float(r), 1.f, float(r * r), -2.f};
    backend->CopyToDevice(x.get(), mine.data(), 16);
    ASSERT_TRUE(staged.AllReduceSum(x.f32(), 4).ok());
    std::vector<float> sum(4);
    backend->CopyToHost(sum.data(), x.get(), 16);
    EXPECT_EQ(sum, (std::vector<float>{3.f, 3.f, 5.f, -6.f}));
    DeviceBuffer all = std::move(backend->Allocate(6 * sizeof(float))).value();
    const std::vector<float> two = {float(r), float(10 + r)};
    backend->CopyToDevice(x.get(), two.data(), 8);
    ASSERT_TRUE(staged.AllGather(x.f32(), all.f32(), 2).ok());
    std::vector<float> gathered(6);
    backend->CopyToHost(gathered.data(), all.get(), 24);
    EXPECT_EQ(gathered, (std::vector<float>{0, 10, 1, 11, 2, 12}));
    // A ring of sends of different sizes: rank r sends r + 1 ints.
    std::vector<int> out(r + 1, 100 + r), in((r + 2) % 3 + 1, -1);
    DeviceBuffer dout = std::move(backend->Allocate(out.size() * 4)).value();
    DeviceBuffer din = std::move(backend->Allocate(in.size() * 4)).value();
    backend->CopyToDevice(dout.get(), out.data(), out.size() * 4);
    ASSERT_TRUE(staged.Send(dout.get(), out.size() * 4, (r + 1) % 3).ok());
    ASSERT_TRUE(staged.Recv(din.get(), in.size() * 4, (r + 2) % 3).ok());
    backend->CopyToHost(in.data(), din.get(), in.size() * 4);
    EXPECT_EQ(in, std::vector<int>(in.size(), 100 + (r + 2) % 3));
    // A host-addressable backend needs no wrapper.
    std::unique_ptr<DeviceComm> holder;
    EXPECT_EQ(DataPlaneFor(host_path.get(), backend.get(), &holder), host_path.get());
    EXPECT_EQ(holder, nullptr);
  });
}

TEST(ThreadComm, TensorParallelEnginesMatchSingleRank) {
  for (const auto& s : AllSchemes()) {
    if (s.name != "MlkvUneven" && s.name != "LckvSmallIterations" && s.name != "YocoSlidingWindow" &&
        s.name != "PythiaFused" && s.name != "MQA")
      continue;
    const std::string dir = MakeModel("threads-" + s.name, s.options);
    GenerationRequest r;
    r.prompt = {5, 17, 3, 250, 9, 42, 7, 1, 99, 12, 33};
    r.max_tokens = 5;
    r.ignore_eos = true;
    const EngineOptions eo = SmallEngineOptions();
    auto single = Engine::Create(dir, eo);
    ASSERT_TRUE(single.ok());
    auto ref = (*single)->Generate({r});
    ASSERT_TRUE(ref.ok());
    for (int tp : {2, 4}) {
      auto comms = CreateThreadHostComms(tp);
      std::vector<GenerationResult> got;
      OnThreads(tp, [&](int rank) {
        auto dev = CreateThreadDeviceComm(comms[rank].get());
        EngineOptions o = eo;
        o.tp = tp;
        auto e = Engine::Create(dir, o, {comms[rank].get(), dev.get()});
        ASSERT_TRUE(e.ok()) << e.status();
        LeadOrWork(**e, rank, [&] {
          auto out = (*e)->Generate({r});
          ASSERT_TRUE(out.ok());
          got = *out;
        });
      });
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].tokens, (*ref)[0].tokens) << s.name << " tp " << tp;
      for (size_t i = 0; i < got[0].logprobs.size(); ++i)
        EXPECT_NEAR(got[0].logprobs[i], (*ref)[0].logprobs[i], 1e-4) << s.name << " tp " << tp;
    }
  }
}

// Bytes each transfer edge moves equal the plan's bytes per token times the tokens that went
// through the model (prompt + generated - 1: the last token is never fed back).
TEST(ThreadComm, EdgeBytesEqualThePlan) {
  for (const auto& s : AllSchemes()) {
    if (s.name != "MlkvUneven" && s.name != "LckvW2" && s.name != "YocoSlidingWindow" && s.name != "Cla") continue;
    const std::string dir = MakeModel("edges-" + s.name, s.options);
    GenerationRequest r;
    r.prompt = {5, 17, 3, 250, 9};
    r.max_tokens = 4;
    r.ignore_eos = true;
    const int64_t tokens = 5 + 4 - 1;
    for (auto [tp, pp] : std::vector<std::pair<int, int>>{{1, 2}, {1, 3}, {2, 2}}) {
      const int n = tp * pp;
      auto comms = CreateThreadHostComms(n);
      std::vector<std::map<std::pair<int, int>, int64_t>> sent(n);
      PipelinePlan plan;
      OnThreads(n, [&](int rank) {
        const Topology topo{tp, pp};
        auto group = comms[rank]->Split(topo.stage_of(rank), topo.slice_of(rank));
        auto tpc = CreateThreadDeviceComm(group.get());
        auto world = CreateThreadDeviceComm(comms[rank].get());
        EngineOptions o;
        o.kv_dtype = "bfloat16";
        o.block_size = 4;
        o.kv_memory_bytes = 16 << 20;
        o.backend.threads = 1;
        o.tp = tp;
        o.pp = pp;
        auto e = Engine::Create(dir, o, {comms[rank].get(), tpc.get(), world.get()});
        ASSERT_TRUE(e.ok()) << e.status();
        LeadOrWork(**e, rank, [&] {
          ASSERT_TRUE((*e)->Generate({r}).ok());
          plan = (*e)->plan();
        });
        sent[rank] = (*e)->edge_bytes_sent();
      });
      // On two stages these groups straddle every cut the planner can choose, so rows must move
      // (on three, LCKV w=2 gets a cut-free plan: [0] [1-6] [7]).
      if (pp == 2 && (s.name == "MlkvUneven" || s.name == "LckvW2")) {
        EXPECT_FALSE(plan.edges.empty()) << s.name << " tp " << tp << " pp " << pp;
      }
      std::map<std::pair<int, int>, int64_t> expected;
      for (const TransferEdge& e : plan.edges) expected[{e.producer_layer, e.to_stage}] = e.bytes_per_token_per_rank * tokens;
      for (int rank = 0; rank < n; ++rank) {
        std::map<std::pair<int, int>, int64_t> mine;
        for (const TransferEdge& e : plan.edges)
          if (e.from_stage == plan.layout.stage_of(rank)) mine[{e.producer_layer, e.to_stage}] = expected[{e.producer_layer, e.to_stage}];
        EXPECT_EQ(sent[rank], mine) << s.name << " tp " << tp << " pp " << pp << " rank " << rank;
      }
    }
  }
}

// A forced partition (--partition, for comparing plans) is the layout the engine runs, and
// an even split that cuts MLKV groups still generates what one rank does.
TEST(ThreadComm, ForcedPartitionMatchesSingleRank) {
  MakeModelOptions options;
  for (const auto& s : AllSchemes())
    if (s.name == "MlkvUneven") options = s.options;  // 12 layers, producers 0, 2, 4, 7, 9
  const std::string dir = MakeModel("forced-partition", options);
  GenerationRequest r;
  r.prompt = {5, 17, 3, 250, 9, 42};
  r.max_tokens = 4;
  r.ignore_eos = true;
  const EngineOptions eo = SmallEngineOptions();
  auto single = Engine::Create(dir, eo);
  ASSERT_TRUE(single.ok()) << single.status();
  auto ref = (*single)->Generate({r});
  ASSERT_TRUE(ref.ok());
  auto comms = CreateThreadHostComms(2);
  std::vector<GenerationResult> got;
  PipelinePlan plan;
  OnThreads(2, [&](int rank) {
    auto world = CreateThreadDeviceComm(comms[rank].get());
    EngineOptions o = eo;
    o.pp = 2;
    o.partition = "0-2,3-11";  // cuts the group of producer 2 (layers 2-3)
    auto e = Engine::Create(dir, o, {comms[rank].get(), nullptr, world.get()});
    ASSERT_TRUE(e.ok()) << e.status();
    LeadOrWork(**e, rank, [&] {
      auto out = (*e)->Generate({r});
      ASSERT_TRUE(out.ok());
      got = *out;
      plan = (*e)->plan();
    });
  });
  ASSERT_EQ(plan.stages.size(), 2u);
  EXPECT_EQ(plan.layout.stage_layers(0).last, 2);
  EXPECT_EQ(plan.layout.stage_layers(1).first, 3);
  EXPECT_FALSE(plan.edges.empty());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].tokens, (*ref)[0].tokens);

  EngineOptions bad = eo;
  bad.partition = "0-3,x";
  auto e = Engine::Create(dir, bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("--partition: 'x'"), std::string::npos) << e.status();
}

// Pipeline stages overlap: with P stages, P micro-batches are in flight at once, and a batch of
// sequences of different lengths (greedy and seeded sampling, sharing schemes whose groups cross
// stage boundaries) gives exactly the single-rank results. Every rank reports its statistics.
TEST(ThreadComm, PipelineKeepsMicroBatchesInFlight) {
  std::vector<GenerationRequest> reqs;
  for (int len : {1, 9, 4, 14, 2, 7}) {
    GenerationRequest r;
    for (int i = 0; i < len; ++i) r.prompt.push_back((i * 31 + len * 7) % 280);
    r.max_tokens = 4 + len % 3;
    r.ignore_eos = true;
    if (len % 2) {
      r.sampling.temperature = 0.7f;
      r.sampling.seed = 7 + len;
    }
    reqs.push_back(r);
  }
  for (const auto& s : AllSchemes()) {
    if (s.name != "MlkvUneven" && s.name != "LckvSmallIterations" && s.name != "MHA") continue;
    const std::string dir = MakeModel("pipeline-" + s.name, s.options);
    const EngineOptions eo = SmallEngineOptions();
    auto single = Engine::Create(dir, eo);
    ASSERT_TRUE(single.ok());
    auto ref = (*single)->Generate(reqs);
    ASSERT_TRUE(ref.ok());
    for (int pp : {2, 3}) {
      auto comms = CreateThreadHostComms(pp);
      std::vector<GenerationResult> got;
      EngineStats stats;
      std::vector<RankStats> ranks;
      OnThreads(pp, [&](int rank) {
        auto world = CreateThreadDeviceComm(comms[rank].get());
        EngineOptions o = eo;
        o.pp = pp;
        auto e = Engine::Create(dir, o, {comms[rank].get(), nullptr, world.get()});
        ASSERT_TRUE(e.ok()) << e.status();
        LeadOrWork(**e, rank, [&] {
          auto out = (*e)->Generate(reqs);
          auto rs = (*e)->CollectRankStats();
          ASSERT_TRUE(out.ok()) << out.status();
          ASSERT_TRUE(rs.ok()) << rs.status();
          got = *out;
          stats = (*e)->stats();
          ranks = *rs;
        });
      });
      ASSERT_EQ(got.size(), reqs.size());
      EXPECT_EQ(stats.max_in_flight, pp) << s.name << " pp " << pp;
      ASSERT_EQ(ranks.size(), static_cast<size_t>(pp));
      for (const RankStats& r : ranks) {
        EXPECT_EQ(r.stage, r.rank);
        EXPECT_GT(r.steps, 0);
        EXPECT_GT(r.busy_seconds, 0);
        EXPECT_LE(r.busy_seconds, r.wall_seconds);
      }
      for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_EQ(got[i].tokens, (*ref)[i].tokens) << s.name << " pp " << pp << " request " << i;
        ASSERT_EQ(got[i].logprobs.size(), (*ref)[i].logprobs.size());
        for (size_t k = 0; k < got[i].logprobs.size(); ++k)
          EXPECT_NEAR(got[i].logprobs[k], (*ref)[i].logprobs[k], 1e-4) << s.name << " pp " << pp;
      }
    }
  }
}

}  // namespace
}  // namespace strata::testing
