// Real mpirun: `strata generate` on tp x pp layouts prints the same tokens as the single-rank
// run, with logprobs within 1e-4, for every sharing scheme; a rank that cannot start ends the
// whole job with a message and a non-zero exit.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "nlohmann/json.hpp"
#include "tests/shell.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

// Both output streams: failure messages are checked too.
ShellResult Shell(const std::string& cmd) { return RunShell(cmd + " 2>&1"); }

std::string Bin() { return std::getenv("STRATA_BIN") ? std::getenv("STRATA_BIN") : "strata"; }

// Open MPI refuses root without these; 2 cores need oversubscription. Bounded by `timeout`.
std::string Mpirun(int np) {
  const char* mpiexec = std::getenv("STRATA_MPIEXEC");
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
         "timeout 120 " + std::string(mpiexec ? mpiexec : "mpirun") + " -np " + std::to_string(np) + " ";
}

const char kArgs[] = " --prompt-ids 5,17,3,250,9,42,7,1,99,12,33,4,8 --max-tokens 6 --ignore-eos --json"
                     " --kv-dtype float32 --block-size 4 --threads 1";
// A batch of three prompts of different lengths (1, 13 and 5 tokens).
const char kBatchArgs[] = " --prompt-ids '11;5,17,3,250,9,42,7,1,99,12,33,4,8;7,3,9,2,200' --max-tokens 6"
                          " --ignore-eos --json --kv-dtype float32 --block-size 4 --threads 1";
TEST(MpiGenerate, LayoutsMatchSingleRankForEveryScheme) {
  for (const auto& s : AllSchemes()) {
    const std::string dir = MakeModel("mpi-" + s.name, s.options);
    for (auto [tp, pp] : std::vector<std::pair<int, int>>{{2, 1}, {1, 2}, {2, 2}, {1, 4}, {4, 1}}) {
      // 13 prompt tokens: longer than m+b of the small-iteration LCKV models, so their cyclic
      // blocks (split across stages by the planner) iterate across stages.
      // The batch runs as micro-batches on several stages at once.
      const char* args = kBatchArgs;
      ShellResult single = Shell(Bin() + " generate --model " + dir + args);
      ASSERT_EQ(single.code, 0) << s.name << ": " << single.out;
      const nlohmann::json ref = nlohmann::json::parse(single.out);
      ASSERT_EQ(ref.size(), 3u);
      const std::string layout = " tp " + std::to_string(tp) + " pp " + std::to_string(pp);
      ShellResult r = Shell(Mpirun(tp * pp) + Bin() + " generate --model " + dir + " --tp " + std::to_string(tp) +
                       " --pp " + std::to_string(pp) + args);
      ASSERT_EQ(r.code, 0) << s.name << layout << ": " << r.out;
      const nlohmann::json got = nlohmann::json::parse(r.out);  // printed once, by rank 0
      ASSERT_EQ(got.size(), ref.size()) << s.name << layout;
      for (size_t q = 0; q < ref.size(); ++q) {
        EXPECT_EQ(got[q]["tokens"], ref[q]["tokens"]) << s.name << layout << " prompt " << q;
        for (size_t i = 0; i < ref[q]["logprobs"].size(); ++i)
          EXPECT_NEAR(got[q]["logprobs"][i].get<double>(), ref[q]["logprobs"][i].get<double>(), 1e-4)
              << s.name << layout << " prompt " << q;
      }
    }
  }
}

// Prefix caching under tensor and pipeline parallelism: rank 0 decides, and every stage's banks
// (homes and mirrors) follow the same block ids, so a batch whose prompts repeat and share
// prefixes gives the same tokens with the cache on as off, on every layout, also with a cache
// small enough to preempt; the log says the cache was hit.
TEST(MpiGenerate, PrefixCachingGivesTheSameOutputsOnEveryLayout) {
  const char kShared[] = " --prompt-ids '5,17,3,250,9,42,7,1,99,12,33,4,8;5,17,3,250,9,42,7,1,99,12,33,4,8;"
                         "5,17,3,250,9,42,7,1,99,77,78;11;5,17,3,250,9,42,7,1,99,12,33,4,8,6' --max-tokens 6"
                         " --ignore-eos --json --kv-dtype float32 --block-size 4 --threads 1";
  const std::vector<SchemeCase> all = AllSchemes();
  for (const SchemeCase& s : {all[1], all[5], all[7]}) {  // GQA, MLKV with uneven groups, CLA
    const std::string dir = MakeModel("mpi-prefix-" + s.name, s.options);
    for (auto [tp, pp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 1}, {1, 2}, {2, 2}}) {
      // Per-rank bytes for about 10 blocks (40 tokens) on this layout, from what `strata plan`
      // says 1 MB holds: the batch then waits and preempts.
      const ShellResult plan = Shell(Bin() + " plan --model " + dir + " --tp " + std::to_string(tp) + " --pp " +
                                     std::to_string(pp) + " --kv-memory 1000000 --block-size 4");
      const size_t at = plan.out.find("pipeline KV capacity: ");
      ASSERT_NE(at, std::string::npos) << plan.out;
      const int64_t tokens_per_mb = std::stoll(plan.out.substr(at + 22));
      const std::string tight = " --kv-memory " + std::to_string(1000000 * 40 / tokens_per_mb);
      for (const std::string& memory : {std::string(), tight}) {
        const std::string layout = s.name + " tp " + std::to_string(tp) + " pp " + std::to_string(pp) + memory;
        const std::string run = Mpirun(tp * pp) + Bin() + " generate --model " + dir + " --tp " + std::to_string(tp) +
                                " --pp " + std::to_string(pp) + kShared + memory + " --log-level debug";
        const std::string err = TempDir("mpi-prefix-log") + "/err";
        ShellResult off = RunShell(run + " --enable-prefix-caching=false 2>" + err);
        ASSERT_EQ(off.code, 0) << layout << ": " << off.out << ReadFile(err);
        ShellResult on = RunShell(run + " --enable-prefix-caching=true 2>" + err);
        ASSERT_EQ(on.code, 0) << layout << ": " << on.out << ReadFile(err);
        EXPECT_NE(ReadFile(err).find("prefix cache: "), std::string::npos) << layout << ReadFile(err);
        EXPECT_EQ(ReadFile(err).find("prefix cache: 0 of"), std::string::npos) << layout << ": no hit";
        const nlohmann::json a = nlohmann::json::parse(off.out), b = nlohmann::json::parse(on.out);
        ASSERT_EQ(a.size(), 5u);
        ASSERT_EQ(b.size(), 5u);
        for (size_t q = 0; q < a.size(); ++q) {
          EXPECT_EQ(b[q]["tokens"], a[q]["tokens"]) << layout << " prompt " << q;
          for (size_t i = 0; i < a[q]["logprobs"].size(); ++i)
            EXPECT_NEAR(b[q]["logprobs"][i].get<double>(), a[q]["logprobs"][i].get<double>(), 1e-4) << layout;
        }
      }
    }
  }
}

TEST(MpiGenerate, ARankThatCannotStartEndsTheJob) {
  MakeModelOptions o;
  o.layers = 2;
  const std::string dir = MakeModel("mpi-fail", o);
  const auto t0 = std::chrono::steady_clock::now();
  // MPMD launch: rank 0 has the model, rank 1 a bad path.
  ShellResult r = Shell(Mpirun(1) + Bin() + " generate --tp 2 --model " + dir + kArgs + " : -np 1 " + Bin() +
                   " generate --tp 2 --model /nonexistent-model" + kArgs);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.code, 124) << "the job hung until the timeout";
  EXPECT_NE(r.out.find("/nonexistent-model/config.json"), std::string::npos) << r.out;
  EXPECT_LT(secs, 30);
}

TEST(MpiGenerate, WrongWorldSizeIsAnError) {
  MakeModelOptions o;
  o.layers = 2;
  const std::string dir = MakeModel("mpi-size", o);
  ShellResult r = Shell(Mpirun(2) + Bin() + " generate --tp 4 --model " + dir + kArgs);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 124);
  EXPECT_NE(r.out.find("must equal the 2 ranks"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace strata::testing
