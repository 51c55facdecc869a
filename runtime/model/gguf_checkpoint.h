// File: runtime/model/gguf_checkpoint.h
// A GGUF model as the rest of Strata reads a Hugging Face checkpoint: its metadata as the
// config.json transformers would write (architectures llama, qwen2 and gptneox: hidden size,
// layers, heads, KV heads, MLP, RoPE base and rotary width, norm epsilon, context length,
// vocabulary, tied embeddings when the file has no output.weight, special token ids; Llama 3.1's
// rope_freqs.weight as the spec's per-frequency factors), and each tensor under its Hugging Face
// name and shape from the tensor role table, with the row order llama.cpp's converter gave it
// (llama's Q/K rotary pairs, GPT-NeoX's regrouped QKV), which Checkpoint undoes as it copies.
// Other architectures and tensors the table does not know are refused by name.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/gguf_file.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/tensor_roles.h"

namespace strata {

// The config.json text of a GGUF model.
absl::StatusOr<std::string> ConfigJsonFromGguf(const GgufModel& model);

// What config.json cannot say, into the spec parsed from ConfigJsonFromGguf: the rotary width
// exactly, and rope_freqs.weight, where the file has one, as spec->rope_freq_factors.
absl::Status CompleteSpecFromGguf(const GgufModel& model, ModelSpec* spec);

// A GGUF tensor as the Hugging Face tensor it stands for.
struct GgufTensorAsHf {
  const GgufTensorInfo* gguf;
  std::string name;  // Hugging Face
  std::vector<int64_t> shape;
  GgufRows rows;     // kSame where the architecture keeps Hugging Face's order
  int64_t head_dim;  // the unit rows are permuted in
};
// Every tensor of `model` (but rope_freqs.weight), checked to be loadable and to have the shape
// `spec` expects.
absl::StatusOr<std::vector<GgufTensorAsHf>> GgufTensorsAsHf(const GgufModel& model, const ModelSpec& spec);

// HF row r of a Q or K projection with `heads` heads of `head_dim` rows comes from GGUF row
// GgufRowOfHfRow(r): within a head, HF rows [0, D/2) are GGUF's even rows and [D/2, D) its odd ones.
int64_t GgufRowOfHfRow(int64_t hf_row, int64_t head_dim);

}  // namespace strata
