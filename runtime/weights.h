// File: runtime/weights.h
// Loads a checkpoint's weights onto a backend, in the layout the model runner uses:
// separate Q/K/V (the fused GPT-NeoX [H,3,hs] tensor is split on load), SwiGLU gate and up
// concatenated into one [2I, hidden] matrix, float32 on the CPU backend.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "runtime/model/model_spec.h"
#include "runtime/model/safetensors.h"

namespace strata {

struct LayerWeights {
  DeviceBuffer norm1_w, norm1_b, norm2_w, norm2_b;
  DeviceBuffer q_w, q_b, k_w, k_b, v_w, v_b;  // k/v only for producers
  DeviceBuffer o_w, o_b;
  DeviceBuffer up_w, up_b;  // SwiGLU: [gate; up] = [2I, hidden]
  DeviceBuffer down_w, down_b;
};

struct ModelWeights {
  DeviceBuffer embed;
  DeviceBuffer final_norm_w, final_norm_b;
  DeviceBuffer lm_head;  // empty when tied: use `embed`
  std::vector<LayerWeights> layers;  // indexed by layer; layers outside the loaded range are empty
  int64_t bytes = 0;

  const float* lm_head_ptr() const { return lm_head.get() ? lm_head.f32() : embed.f32(); }
};

// Checks that the checkpoint holds exactly the tensors `spec` needs (ignorable extras aside),
// with the right shapes. Errors name the file and the tensor.
absl::Status ValidateCheckpoint(const Checkpoint& ckpt, const ModelSpec& spec);

absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend);

}  // namespace strata
