// File: runtime/model/model_writer.h
// Writes a seeded random checkpoint in the exact Hugging Face layout Strata reads
// (config.json, model.safetensors or shards + index, tokenizer.json): for tests, demos, benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace strata {

struct MakeModelOptions {
  std::string family = "llama";  // "gpt_neox" or "llama"
  int layers = 4;
  int hidden = 64;
  int heads = 4;
  int kv_heads = 0;       // 0: same as heads
  int intermediate = 0;   // 0: 4*hidden (gpt_neox) or 3*hidden (llama)
  int vocab = 512;
  int max_position = 4096;
  // llama: the lckv-llama layer map, e.g. "0_10_10_..._11" (empty: a plain llama model).
  std::string layer_types;
  int sliding_window = 4096;
  int forward_passes = 7;
  int backward_passes = 2;
  bool use_sequential = false;
  bool force_nodiag = false;
  bool tie_embeddings = false;
  // gpt_neox: MLKV when kv_layers > 0 (separate query/key/value); otherwise, with
  // kv_heads == heads, a stock Pythia checkpoint with fused query_key_value.
  int kv_layers = 0;
  bool sequential_residual = false;
  double rotary_pct = 0.25;
  std::string dtype = "float32";  // float32 | float16 | bfloat16
  int shards = 1;
  uint64_t seed = 0;
};

absl::Status WriteRandomModel(const std::string& dir, const MakeModelOptions& o);

// The config.json text for `o` (what WriteRandomModel writes).
std::string RandomModelConfigJson(const MakeModelOptions& o);

}  // namespace strata
