#include "launcher/flags.h"

#include "absl/flags/flag.h"
#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/backend.h"
#include "runtime/base/log.h"
#include "runtime/kv_budget.h"

ABSL_FLAG(std::string, model, "", "model directory (config.json + safetensors)");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(int, threads, 0, "CPU threads per rank (0: the CPUs this process may use, shared among the ranks on the host)");
ABSL_FLAG(std::string, kv_dtype, "auto", "KV cache dtype: auto (the checkpoint's), float32, float16, bfloat16");
ABSL_FLAG(int64_t, kv_memory, 0,
          "bytes of KV cache memory per rank (0: max-seqs sequences of the model's full context, within half of "
          "the device's memory)");
ABSL_FLAG(double, gpu_memory_fraction, 0,
          "> 0: size the KV cache as this fraction of the device's memory less the weights and activations "
          "(overrides --kv-memory)");
ABSL_FLAG(int, block_size, 16, "tokens per KV block");
ABSL_FLAG(int, max_seqs, 256, "sequences running at once");
ABSL_FLAG(int, max_batched_tokens, 2048, "tokens per micro-batch step (longer prompts are prefilled in chunks)");
ABSL_FLAG(bool, enable_prefix_caching, true,
          "reuse the KV blocks of identical prompt prefixes across requests (off by itself for LCKV and "
          "sliding-window models, with the reason logged)");
ABSL_FLAG(bool, dequantize, false,
          "hold block-quantized (GGUF) weights as floats, dequantized exactly, instead of computing on the packed "
          "blocks with 8-bit activations");
ABSL_FLAG(std::string, quantization, "none",
          "quantize a float checkpoint's weight matrices at load: none, q8_0, q4_1 or q4_k (q4_k: rows not whole "
          "256-element super-blocks take q4_1; computed with 8-bit activations, as GGUF files of those types are)");
ABSL_FLAG(bool, json, false, "print JSON");
ABSL_FLAG(uint64_t, seed, 0, "random seed");
ABSL_FLAG(int, tp, 1, "tensor-parallel ranks per pipeline stage");
ABSL_FLAG(int, pp, 1, "pipeline stages");
ABSL_FLAG(std::string, log_level, "info", "log level: trace, debug, info, warn, error, critical, off");
ABSL_FLAG(std::string, log_format, "text", "log lines as text or as one JSON object each (json)");
ABSL_FLAG(std::string, partition, "",
          "forced layer ranges per pipeline stage, e.g. 0-5,6-11 (default: the planner's placement)");

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

int WorldRankFromEnvironment() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID", "RANK"}) {
    int r = 0;
    if (const char* s = std::getenv(v); s && absl::SimpleAtoi(s, &r)) return r;
  }
  return 0;
}

absl::Status InitLoggingFromFlags() {
  return InitLogging({.level = absl::GetFlag(FLAGS_log_level), .format = absl::GetFlag(FLAGS_log_format),
                      .rank = WorldRankFromEnvironment()});
}

int LocalRank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"}) {
    int r = 0;
    if (const char* s = std::getenv(v); s && absl::SimpleAtoi(s, &r)) return r;
  }
  return 0;
}

int LocalSize() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "LOCAL_WORLD_SIZE"}) {
    int n = 0;
    if (const char* s = std::getenv(v); s && absl::SimpleAtoi(s, &n) && n > 0) return n;
  }
  return 1;
}

int CudaDeviceOfThisRank() { return LocalRank() % std::max(1, CudaDeviceCount()); }

EngineOptions EngineOptionsFromFlags() {
  EngineOptions o;
  o.backend.device = absl::GetFlag(FLAGS_device);
  if (o.backend.device == "cuda") o.backend.device_index = CudaDeviceOfThisRank();
  o.backend.threads = absl::GetFlag(FLAGS_threads);
  o.backend.ranks_on_host = LocalSize();
  o.kv_dtype = absl::GetFlag(FLAGS_kv_dtype);
  o.kv_memory_bytes = absl::GetFlag(FLAGS_kv_memory);
  o.gpu_memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  o.block_size = absl::GetFlag(FLAGS_block_size);
  o.max_seqs = absl::GetFlag(FLAGS_max_seqs);
  o.max_batched_tokens = absl::GetFlag(FLAGS_max_batched_tokens);
  o.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  o.dequantize_weights = absl::GetFlag(FLAGS_dequantize);
  o.quantization = absl::GetFlag(FLAGS_quantization);
  o.tp = absl::GetFlag(FLAGS_tp);
  o.pp = absl::GetFlag(FLAGS_pp);
  o.partition = absl::GetFlag(FLAGS_partition);
  return o;
}

JobComms CreateJobCommsFromFlags() {
  JobCommsOptions o;
  o.tp = absl::GetFlag(FLAGS_tp);
  o.cuda = absl::GetFlag(FLAGS_device) == "cuda";
  if (o.cuda) {
    o.cuda_devices = CudaDeviceCount();
    o.cuda_device = CudaDeviceOfThisRank();
  }
  o.local_ranks = LocalSize();
  return CreateJobComms(o);
}

absl::StatusOr<std::unique_ptr<Engine>> CreateEngineOrAbort(const std::string& command, JobComms& comms) {
  EngineOptions options = EngineOptionsFromFlags();
  options.backend.rank = comms.world->rank();
  auto engine = Engine::Create(absl::GetFlag(FLAGS_model), options, comms.engine());
  // One rank that cannot start (a bad path on one host, too little memory) ends the whole job.
  if (!engine.ok() && comms.world->size() > 1)
    comms.world->Abort(absl::StrCat("strata ", command, ": ", engine.status().message()));
  return engine;
}

absl::StatusOr<int64_t> KvMemoryFromFlags(const ModelSpec& spec, const PlannerOptions& po) {
  const int64_t bytes = absl::GetFlag(FLAGS_kv_memory);
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("--kv-memory ", bytes, " must not be negative"));
  if (bytes > 0) return bytes;
  return ContextKvBudget(spec, EngineOptionsFromFlags(), po);
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
