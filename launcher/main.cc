// strata: the one binary. `strata <command> [flags]`, commands listed in kUsage.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "parallel/comm.h"

namespace {
constexpr char kUsage[] =
    "strata <command> [flags]\n"
    "  make-model OUT  write a seeded random Hugging Face checkpoint\n"
    "  generate        generate tokens (--model --prompt-ids --max-tokens [--json])\n"
    "  inspect         show a model's KV groups and KV cost (--model)\n"
    "  bench offline   measure prefill/decode throughput (--model --batch --prompt-len --output-len)\n"
    "  bench serve     HTTP load on an OpenAI-compatible server (--url --concurrency|--rate --num-prompts)\n"
    "  bench grammar   structured-output cost: grammar compile and token-mask time (--tokenizer --json-schema)\n"
    "  plan            place layers and KV groups on pipeline stages (--model --tp --pp --kv-memory)\n"
    "  serve           OpenAI-compatible HTTP server (--model [--tp --pp under mpirun] --host --port)\n"
    "  demo            make a small model and generate from it\n"
    "  tokenize        the model's tokenizer: --text T | --file F -> ids, --decode 1,2,3 -> text\n"
    "Flags use dashes (--max-tokens); --helpfull lists them all.";
}  // namespace

namespace strata {
int Fail(const std::string& command, const std::string& message, int code) {
  std::fprintf(stderr, "strata %s: %s\n", command.c_str(), message.c_str());
  return code;
}
}  // namespace strata

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<std::string> storage;
  std::vector<char*> args = strata::NormalizeFlagDashes(argc, argv, &storage);
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  if (positional.size() < 2) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  if (absl::Status st = strata::InitLoggingFromFlags(); !st.ok()) {
    std::fprintf(stderr, "strata: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  const std::string cmd = positional[1];
  std::vector<std::string> rest(positional.begin() + 2, positional.end());
  int code = 2;
  if (cmd == "make-model") {
    code = strata::RunMakeModel(rest);
  } else if (cmd == "generate") {
    code = strata::RunGenerate(rest);
  } else if (cmd == "inspect") {
    code = strata::RunInspect(rest);
  } else if (cmd == "bench") {
    code = strata::RunBench(rest);
  } else if (cmd == "demo") {
    code = strata::RunDemo(rest);
  } else if (cmd == "serve") {
    code = strata::RunServe(rest);
  } else if (cmd == "tokenize") {
    code = strata::RunTokenize(rest);
  } else if (cmd == "plan") {
    code = strata::RunPlan(rest);
  } else {
    std::fprintf(stderr, "strata: unknown command '%s'\n%s\n", cmd.c_str(), kUsage);
  }
  strata::ShutdownComms();
  return code;
}
