// File: runtime/model/gguf_checkpoint.h
// A GGUF model as the rest of Strata reads a Hugging Face checkpoint: its metadata as the
// config.json transformers would write (architectures llama and qwen2: hidden size, layers, heads, KV heads,
// MLP, RoPE base, RMS epsilon, context length, vocabulary, tied embeddings when the file has no
// output.weight, special token ids), and its tensors under their Hugging Face names, dequantized
// exactly to float32 at load, with llama's Q/K row permutation undone (llama.cpp rotates adjacent
// pairs, Strata as transformers rotates halves; K uses the KV head count; qwen2 is not permuted).
// Other architectures
// and tensors the mapping does not know are refused by name.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/gguf_file.h"
#include "runtime/model/safetensors.h"

namespace strata {

// The config.json text of a GGUF model.
absl::StatusOr<std::string> ConfigJsonFromGguf(const GgufModel& model);

// Every tensor under its Hugging Face name and shape, as float32.
absl::StatusOr<std::vector<TensorToWrite>> HfTensorsFromGguf(const GgufModel& model);

// HF row r of a Q or K projection with `heads` heads of `head_dim` rows comes from GGUF row
// GgufRowOfHfRow(r): within a head, HF rows [0, D/2) are GGUF's even rows and [D/2, D) its odd ones.
int64_t GgufRowOfHfRow(int64_t hf_row, int64_t head_dim);

}  // namespace strata
