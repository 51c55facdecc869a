// File: runtime/weights.h
// Loads a checkpoint's weights onto a backend, in the layout the model runner uses: the buffers
// ParallelLayout::SliceWeights lists for the rank (separate Q/K/V, the fused GPT-NeoX [H,3,hs]
// tensor split on load; SwiGLU gate and up concatenated into one [2I, hidden] matrix). Each
// matrix carries its own format (LoadedWeightFormats); vectors are float32.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "parallel/parallel_layout.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/checkpoint.h"

namespace strata {

// A loaded weight: backend memory and the format its elements are in.
struct Weight {
  DeviceBuffer data;
  WeightFormat format = WeightFormat::Plain(DType::kF32);
  void* get() const { return data.get(); }
  float* f32() const { return data.f32(); }
};

struct LayerWeights {
  Weight norm1_w, norm1_b, norm2_w, norm2_b;
  Weight q_w, q_b, k_w, k_b, v_w, v_b;  // k/v only for producers
  Weight o_w, o_b;
  Weight up_w, up_b;  // SwiGLU: [gate; up] = [2I, hidden]
  Weight down_w, down_b;
};

struct ModelWeights {
  Weight embed;
  Weight final_norm_w, final_norm_b;
  Weight lm_head;  // empty when tied: use `embed`
  std::vector<LayerWeights> layers;  // indexed by layer; layers outside the loaded range are empty
  int64_t bytes = 0;
  // This slice's vocabulary rows of the embedding and the LM head.
  int vocab_begin = 0, vocab_rows = 0, vocab_rows_padded = 0;

  const Weight& lm_head_weight() const { return lm_head.get() ? lm_head : embed; }
  // The buffer a slot of layer `layer` (-1: global) is loaded into.
  Weight* Slot(WeightSlot slot, int layer);
};

// Checks that the checkpoint holds exactly the tensors `spec` needs (ignorable extras aside),
// with the right shapes. Errors name the file and the tensor.
absl::Status ValidateCheckpoint(const Checkpoint& ckpt, const ModelSpec& spec);

// The format the loader keeps each of the checkpoint's matrices in on `backend`: a block-quantized
// one (GGUF) in its packed layout (PackedFormatFor) when `keep_packed` and the backend computes
// with it, else dequantized exactly into the backend's MatrixDType for float32; a tensor of plain
// elements in the backend's MatrixDType for its type, or, with `quantization` "q8_0" or "q4_1"
// (vLLM's --quantization, done at load), quantized into PackedI8 / PackedU4 where its rows are
// whole blocks of 32. Planner and loader both size from it.
absl::StatusOr<WeightFormats> LoadedWeightFormats(const Checkpoint& ckpt, const Backend& backend, bool keep_packed,
                                                  const std::string& quantization);

// Loads the weights of world rank `rank`: the buffers `parallel.SliceWeights` lists for its
// stage's layers and tensor slice, each read block by block from the checkpoint and converted to
// its format in `formats` (LoadedWeightFormats). Row-parallel projections (attention output, MLP
// down) keep their full bias, added by slice 0 only. Only the rank's bytes are read. An untied
// embedding may point into the checkpoint's mapping: `ckpt` (or a copy) must outlive the weights.
absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend,
                                         const ParallelLayout& parallel, int rank, const WeightFormats& formats);

}  // namespace strata
