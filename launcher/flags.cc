#include "launcher/flags.h"

#include "absl/flags/flag.h"
#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(std::string, model, "", "model directory (config.json + safetensors)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(int, threads, 0, "CPU threads (0: every core)");
ABSL_FLAG(std::string, kv_dtype, "auto", "KV cache dtype: auto (the checkpoint's), float32, float16, bfloat16");
ABSL_FLAG(int64_t, kv_memory, int64_t{1} << 30, "bytes of KV cache memory");
ABSL_FLAG(int, block_size, 16, "tokens per KV block");
ABSL_FLAG(int, max_seqs, 256, "sequences running at once");
ABSL_FLAG(int, max_batched_tokens, 2048, "tokens per micro-batch step (longer prompts are prefilled in chunks)");
ABSL_FLAG(bool, json, false, "print JSON");
ABSL_FLAG(uint64_t, seed, 0, "random seed");
ABSL_FLAG(int, tp, 1, "tensor-parallel ranks per pipeline stage");
ABSL_FLAG(int, pp, 1, "pipeline stages");

namespace strata {

std::vector<char*> NormalizeFlagDashes(int argc, char** argv, std::vector<std::string>* storage) {
  storage->clear();
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && a.size() > 2 && a[0] == '-' && a[1] == '-') {
      const size_t eq = a.find('=');
      for (size_t j = 2; j < std::min(eq, a.size()); ++j)
        if (a[j] == '-') a[j] = '_';
    }
    storage->push_back(a);
  }
  std::vector<char*> out;
  for (auto& s : *storage) out.push_back(s.data());
  return out;
}

EngineOptions EngineOptionsFromFlags() {
  EngineOptions o;
  o.backend.device = absl::GetFlag(FLAGS_device);
  o.backend.threads = absl::GetFlag(FLAGS_threads);
  o.kv_dtype = absl::GetFlag(FLAGS_kv_dtype);
  o.kv_memory_bytes = absl::GetFlag(FLAGS_kv_memory);
  o.block_size = absl::GetFlag(FLAGS_block_size);
  o.max_seqs = absl::GetFlag(FLAGS_max_seqs);
  o.max_batched_tokens = absl::GetFlag(FLAGS_max_batched_tokens);
  o.tp = absl::GetFlag(FLAGS_tp);
  o.pp = absl::GetFlag(FLAGS_pp);
  return o;
}

JobComms CreateJobComms() {
  JobComms c;
  c.world = CreateWorldHostComm();
  const int tp = std::max(1, absl::GetFlag(FLAGS_tp));
  // Ranks of one pipeline stage form a tensor-parallel group (rank = stage * tp + slice).
  c.tp_group = c.world->Split(c.world->rank() / tp, c.world->rank() % tp);
  c.tp = CreateDeviceComm(c.tp_group.get());
  c.world_data = CreateDeviceComm(c.world.get());
  return c;
}

absl::StatusOr<std::unique_ptr<Engine>> CreateEngineOrAbort(const std::string& command, JobComms& comms) {
  auto engine = Engine::Create(absl::GetFlag(FLAGS_model), EngineOptionsFromFlags(), comms.engine());
  // One rank that cannot start (a bad path on one host, too little memory) ends the whole job.
  if (!engine.ok() && comms.world->size() > 1)
    comms.world->Abort(absl::StrCat("strata ", command, ": ", engine.status().message()));
  return engine;
}

absl::StatusOr<std::vector<int>> ParseIntList(const std::string& s, const std::string& flag) {
  std::vector<int> out;
  if (s.empty()) return out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int v;
    if (!absl::SimpleAtoi(part, &v))
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", part, "' is not an integer"));
    out.push_back(v);
  }
  return out;
}

}  // namespace strata
