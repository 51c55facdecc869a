// The engine's paged, incremental prefill and decode against the naive oracle (tests/naive_model.h)
// for every sharing scheme, F32, BF16 and F16 checkpoints: tokens identical (up to exact ties) and
// logprobs within 1e-4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/cpu/cpu_isa.h"
#include "runtime/engine.h"
#include "tests/naive_model.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

constexpr double kLogprobTol = 1e-4;

double LogSoftmaxAt(const std::vector<double>& logits, int token) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (double v : logits) s += std::exp(v - mx);
  return logits[token] - mx - std::log(s);
}

// Checks a greedy engine continuation against oracle logits at each step (teacher-forced on the
// engine's own tokens, so one near-tie cannot derail the rest of the comparison).
void ExpectMatchesOracle(NaiveModel& oracle, const std::vector<int>& prompt, const GenerationResult& got,
                         const std::string& what) {
  std::vector<double> logits;
  if (oracle.has_upward_edges()) logits = oracle.Prefill(prompt);
  std::vector<int> seq = prompt;
  for (size_t k = 0; k < got.tokens.size(); ++k) {
    if (!oracle.has_upward_edges()) logits = oracle.FullForward(seq);  // no cache at all
    const int tok = got.tokens[k];
    const int best = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const double lp = LogSoftmaxAt(logits, tok);
    if (tok != best) {  // only an exact tie (within tolerance) may pick another token
      EXPECT_LT(LogSoftmaxAt(logits, best) - lp, kLogprobTol)
          << what << " step " << k << ": engine chose " << tok << ", oracle argmax " << best;
    }
    EXPECT_NEAR(got.logprobs[k], lp, kLogprobTol) << what << " step " << k;
    seq.push_back(tok);
    if (oracle.has_upward_edges() && k + 1 < got.tokens.size()) logits = oracle.Decode(tok);
  }
}

struct Param {
  SchemeCase scheme;
  std::string dtype;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.scheme.name << "/" << p.dtype; }

class EngineVsNaive : public ::testing::TestWithParam<Param> {};

TEST_P(EngineVsNaive, GreedyDecodeMatchesOracle) {
  const Param& p = GetParam();
  const std::string dir = MakeModel(p.scheme.name + "-" + p.dtype, p.scheme.options, p.dtype);
  EngineOptions eo;
  eo.kv_dtype = "float32";  // exact comparison; a BF16 cache has its own test
  eo.kv_memory_bytes = 64 << 20;
  eo.block_size = 4;  // many block boundaries in short sequences
  eo.max_seqs = 8;
  auto engine = Engine::Create(dir, eo);
  ASSERT_TRUE(engine.ok()) << engine.status();
  NaiveModel oracle(dir);

  // Prompt lengths: 1, shorter than m+b (token-by-token for LCKV), longer (iterative for LCKV,
  // crossing the sliding windows and several blocks).
  for (int len : {1, 5, 13}) {
    GenerationRequest r;
    for (int i = 0; i < len; ++i) r.prompt.push_back((i * 37 + len * 11) % 290);
    r.max_tokens = 7;
    r.ignore_eos = true;
    auto out = (*engine)->Generate({r});
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ((*out)[0].tokens.size(), 7u);
    ExpectMatchesOracle(oracle, r.prompt, (*out)[0], p.scheme.name + " prompt " + std::to_string(len));
  }
}

std::vector<Param> Params() {
  std::vector<Param> out;
  for (const auto& s : AllSchemes())
    for (const char* d : {"float32", "bfloat16", "float16"}) out.push_back({s, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, EngineVsNaive, ::testing::ValuesIn(Params()),
                         [](const auto& info) { return info.param.scheme.name + "_" + info.param.dtype; });

// The thread pool splits work by output columns and attention heads, never along a sum, so on the
// vector paths the thread count cannot change a single bit of the result. The portable path's
// OpenBLAS blocks a column range differently by its width: same tokens, and logprobs that may
// differ by twice the oracle tolerance (each run is within it of the oracle).
TEST(ThreadCount, OneTwoAndThreeThreadsGiveIdenticalResults) {
  for (const std::string quantization : {"", "q8_0", "q4_1"}) {  // also the packed 8-bit-activation path
    // Packed products split weight rows between threads too: bit-identical on every path.
    const double tol = DetectCpuIsa() == CpuIsa::kPortable && quantization.empty() ? 2 * kLogprobTol : 0.0;
    for (const auto& s : AllSchemes()) {
      if (s.name != "GQA" && s.name != "PythiaFused" && s.name != "LckvSmallIterations" && s.name != "MlkvUneven") continue;
      const std::string dir = MakeModel(s.name + "-bfloat16", s.options, "bfloat16");
      const std::string what = s.name + (quantization.empty() ? "" : " " + quantization);
      std::vector<GenerationResult> runs;
      for (int threads : {1, 2, 3}) {
        EngineOptions eo;
        eo.backend.threads = threads;
        eo.kv_memory_bytes = 64 << 20;
        eo.max_seqs = 8;
        eo.quantization = quantization;
        auto engine = Engine::Create(dir, eo);
        ASSERT_TRUE(engine.ok()) << engine.status();
        std::vector<GenerationRequest> batch(3);
        for (size_t b = 0; b < batch.size(); ++b) {
          for (int i = 0; i < 9 + 4 * static_cast<int>(b); ++i) batch[b].prompt.push_back((i * 31 + 7 * b) % 290);
          batch[b].max_tokens = 6;
          batch[b].ignore_eos = true;
        }
        auto out = (*engine)->Generate(batch);
        ASSERT_TRUE(out.ok()) << out.status();
        runs.insert(runs.end(), out->begin(), out->end());
      }
      for (size_t i = 3; i < runs.size(); ++i) {
        EXPECT_EQ(runs[i].tokens, runs[i % 3].tokens) << what << " sequence " << i % 3 << ", run " << i / 3;
        ASSERT_EQ(runs[i].logprobs.size(), runs[i % 3].logprobs.size());
        for (size_t k = 0; k < runs[i].logprobs.size(); ++k)
          EXPECT_NEAR(runs[i].logprobs[k], runs[i % 3].logprobs[k], tol)
              << what << " sequence " << i % 3 << ", run " << i / 3 << ", token " << k;
      }
    }
  }
}

// Under STRATA_CPU_ISA (the ForcedCpuIsa ctest runs) the forced path is the one running, or the
// run says plainly that this CPU cannot run it.
TEST(ThreadCount, ForcedInstructionSetIsTheOneRunning) {
  const char* forced = std::getenv("STRATA_CPU_ISA");
  if (forced == nullptr || *forced == '\0') GTEST_SKIP() << "no STRATA_CPU_ISA: the widest set runs";
  bool supported = false;
  for (CpuIsa isa : SupportedCpuIsas()) supported |= std::string(CpuIsaName(isa)) == forced;
  if (!supported) GTEST_SKIP() << "this CPU cannot run " << forced << ": the forced run tested the widest set";
  EXPECT_STREQ(CpuIsaName(DetectCpuIsa()), forced);
}

// The oracle's own consistency: for models without upward edges, the no-cache forward equals
// its token-by-token incremental path.
TEST(NaiveOracle, FullForwardEqualsIncremental) {
  for (const auto& s : AllSchemes()) {
    const std::string dir = MakeModel("oracle-" + s.name, s.options);
    NaiveModel m(dir);
    if (m.has_upward_edges()) continue;
    std::vector<int> toks = {3, 1, 4, 1, 5, 9, 2, 6};
    std::vector<double> full = m.FullForward(toks);
    m.Reset();
    std::vector<double> inc = m.Prefill({toks[0]});
    for (size_t i = 1; i < toks.size(); ++i) inc = m.Decode(toks[i]);
    for (size_t v = 0; v < full.size(); ++v) ASSERT_NEAR(full[v], inc[v], 1e-9) << s.name;
  }
}

// For LCKV with small m+b, a long prompt's iterative prefill is a different function from the
// exact token-by-token one (§2.4): make sure the test models are sensitive to that difference,
// so agreement with the iterative oracle above means something.
TEST(NaiveOracle, IterativePrefillDiffersFromSequential) {
  for (const auto& s : AllSchemes()) {
    if (s.name != "LckvSmallIterations") continue;
    const std::string dir = MakeModel("iter-" + s.name, s.options);
    NaiveModel m(dir);
    std::vector<int> toks = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    std::vector<double> iterative = m.Prefill(toks);
    m.Reset();
    std::vector<double> seq = m.Prefill({toks[0]});
    for (size_t i = 1; i < toks.size(); ++i) seq = m.Decode(toks[i]);
    double maxdiff = 0;
    for (size_t v = 0; v < seq.size(); ++v) maxdiff = std::max(maxdiff, std::abs(seq[v] - iterative[v]));
    EXPECT_GT(maxdiff, 1e-3);
  }
}

}  // namespace
}  // namespace strata::testing
