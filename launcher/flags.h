// File: launcher/flags.h
// Command-line flags shared by the `strata` subcommands (absl flags). Flags are written with
// dashes on the command line (--prompt-ids); NormalizeFlagDashes maps them to absl's names.
#pragma once

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "parallel/comm.h"
#include "parallel/job_comms.h"
#include "runtime/engine.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(std::string, kv_dtype);
ABSL_DECLARE_FLAG(int64_t, kv_memory);
ABSL_DECLARE_FLAG(int, block_size);
ABSL_DECLARE_FLAG(int, max_seqs);
ABSL_DECLARE_FLAG(int, max_batched_tokens);
ABSL_DECLARE_FLAG(bool, dequantize);
ABSL_DECLARE_FLAG(std::string, quantization);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int, tp);
ABSL_DECLARE_FLAG(int, pp);
ABSL_DECLARE_FLAG(std::string, partition);

namespace strata {

// "--prompt-ids=1" -> "--prompt_ids=1"; values are left alone.
std::vector<char*> NormalizeFlagDashes(int argc, char** argv, std::vector<std::string>* storage);

// The world rank the launcher gave this process (0 outside one), before MPI is up: for the log.
int WorldRankFromEnvironment();
// --log-level and --log-format.
absl::Status InitLoggingFromFlags();

// This rank's place on its host, from the launcher's environment (Open MPI, Slurm, MPICH,
// torchrun spellings); 0 and 1 outside a launcher.
int LocalRank();
int LocalSize();
// The CUDA device this rank uses: its local rank modulo the host's devices.
int CudaDeviceOfThisRank();

// EngineOptions from --device --threads --kv-dtype --kv-memory --block-size --max-seqs.
EngineOptions EngineOptionsFromFlags();

// The communicators of an mpirun job (single-rank ones otherwise), from --tp and --device
// (parallel/job_comms.h decides the data plane).
JobComms CreateJobCommsFromFlags();

// Engine::Create from the flags; on a multi-rank job a failure aborts every rank with the message.
absl::StatusOr<std::unique_ptr<Engine>> CreateEngineOrAbort(const std::string& command, JobComms& comms);

// --kv-memory, or when it is 0 the engine's default before its memory cap (ContextKvBudget: for
// plan and inspect, which have no device to cap it by); `po` as planned without it.
absl::StatusOr<int64_t> KvMemoryFromFlags(const ModelSpec& spec, const PlannerOptions& po);

// "1,2,3" -> {1,2,3}.
absl::StatusOr<std::vector<int>> ParseIntList(const std::string& s, const std::string& flag);

}  // namespace strata
