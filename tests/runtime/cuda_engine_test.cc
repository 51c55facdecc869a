// GPU label: the whole engine on the CUDA backend against the CPU backend, for every sharing
// scheme of the engine tests, on BF16 checkpoints (so both backends hold the same weights; the
// GPU also rounds each GEMM's input to BF16). Greedy tokens must agree; where the two runs part
// at a near-tie (the chosen tokens' logprobs within kTieNats of each other) the tie is printed
// and the comparison of that prompt stops there. Logprobs before that agree within kLogprobTol.
// Then real mpirun with two ranks on one GPU (tp 2 and pp 2, the MPI data path with host
// staging) prints the single-rank GPU run's tokens. Skips where no CUDA device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "kernels/backend.h"
#include "tests/gpu_test_support.h"
#include "nlohmann/json.hpp"
#include "runtime/engine.h"
#include "tests/shell.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

constexpr double kLogprobTol = 5e-2;
constexpr double kTieNats = 2e-2;

std::vector<GenerationRequest> Prompts() {
  std::vector<GenerationRequest> out;
  for (std::vector<int> p : {std::vector<int>{11}, std::vector<int>{5, 17, 3, 250, 9, 42, 7, 1, 99, 12, 33, 4, 8},
                             std::vector<int>{7, 3, 9, 2, 200}}) {
    GenerationRequest r;
    r.prompt = p;
    r.max_tokens = 8;
    r.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

EngineOptions Options(const std::string& device) {
  EngineOptions o;
  o.backend.device = device;
  o.backend.threads = 2;
  o.block_size = 4;  // many page boundaries in short prompts
  o.kv_memory_bytes = 16 << 20;
  return o;
}

// Compares one prompt's results; returns a description of a near-tie divergence ("" if none).
std::string Compare(const GenerationResult& cpu, const GenerationResult& gpu, const std::string& what) {
  EXPECT_EQ(cpu.tokens.size(), gpu.tokens.size()) << what;
  for (size_t i = 0; i < std::min(cpu.tokens.size(), gpu.tokens.size()); ++i) {
    if (cpu.tokens[i] != gpu.tokens[i]) {
      const double gap = std::fabs(cpu.logprobs[i] - gpu.logprobs[i]);
      EXPECT_LT(gap, kTieNats) << what << ": token " << i << " differs (cpu " << cpu.tokens[i] << " at "
                               << cpu.logprobs[i] << ", gpu " << gpu.tokens[i] << " at " << gpu.logprobs[i]
                               << ") and is no near-tie";
      return what + ": near-tie at token " + std::to_string(i) + " (cpu " + std::to_string(cpu.tokens[i]) + " " +
             std::to_string(cpu.logprobs[i]) + ", gpu " + std::to_string(gpu.tokens[i]) + " " +
             std::to_string(gpu.logprobs[i]) + ")";
    }
    EXPECT_NEAR(cpu.logprobs[i], gpu.logprobs[i], kLogprobTol) << what << " token " << i;
  }
  return "";
}

TEST(CudaEngine, GreedyTokensMatchTheCpuBackendForEveryScheme) {
  STRATA_NEED_GPU("the whole-model GPU test");
  int ties = 0;
  for (const auto& s : AllSchemes()) {
    const std::string dir = MakeModel("cuda-" + s.name, s.options, "bfloat16");
    auto cpu = Engine::Create(dir, Options("cpu"));
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    auto gpu = Engine::Create(dir, Options("cuda"));
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    auto want = (*cpu)->Generate(Prompts());
    auto got = (*gpu)->Generate(Prompts());
    ASSERT_TRUE(want.ok() && got.ok()) << s.name;
    for (size_t q = 0; q < want->size(); ++q) {
      const std::string tie = Compare((*want)[q], (*got)[q], s.name + " prompt " + std::to_string(q));
      if (!tie.empty()) {
        std::printf("%s\n", tie.c_str());
        ++ties;
      }
    }
  }
  RecordProperty("near_ties", ties);
}

std::string Bin() { return std::getenv("STRATA_BIN") ? std::getenv("STRATA_BIN") : "strata"; }

TEST(CudaEngine, TwoRanksOnOneGpuMatchOneRank) {
  STRATA_NEED_GPU("the mpirun GPU test");
  const char* mpiexec = std::getenv("STRATA_MPIEXEC");
  const std::string mpirun = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                             "OMPI_MCA_rmaps_base_oversubscribe=1 timeout 300 " +
                             std::string(mpiexec ? mpiexec : "mpirun") + " -np 2 ";
  const std::string args = " generate --device cuda --prompt-ids '11;5,17,3,250,9,42,7,1,99,12,33,4,8;7,3,9,2,200'"
                           " --max-tokens 6 --ignore-eos --json --block-size 4";
  for (const auto& s : AllSchemes()) {
    if (s.name != "MHA" && s.name != "MlkvUneven" && s.name != "LckvSmallIterations" && s.name != "GQA") continue;
    const std::string dir = MakeModel("cuda-mpi-" + s.name, s.options, "bfloat16");
    ShellResult one = RunShell(Bin() + args + " --model " + dir + " 2>&1");
    ASSERT_EQ(one.code, 0) << s.name << ": " << one.out;
    const nlohmann::json ref = nlohmann::json::parse(one.out);
    for (const char* layout : {" --tp 2", " --pp 2"}) {
      ShellResult r = RunShell(mpirun + Bin() + args + layout + " --model " + dir + " 2>/dev/null");
      ASSERT_EQ(r.code, 0) << s.name << layout << ": " << r.out;
      const nlohmann::json got = nlohmann::json::parse(r.out);
      ASSERT_EQ(got.size(), ref.size());
      for (size_t q = 0; q < ref.size(); ++q) {
        // Same GPU kernels; only the tensor-parallel split of the sums differs.
        EXPECT_EQ(got[q]["tokens"], ref[q]["tokens"]) << s.name << layout << " prompt " << q;
        for (size_t i = 0; i < ref[q]["logprobs"].size(); ++i)
          EXPECT_NEAR(got[q]["logprobs"][i].get<double>(), ref[q]["logprobs"][i].get<double>(), kLogprobTol)
              << s.name << layout << " prompt " << q;
      }
    }
  }
}

}  // namespace
}  // namespace strata::testing
