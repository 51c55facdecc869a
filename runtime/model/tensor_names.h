// File: runtime/model/tensor_names.h
// The single owner of Hugging Face tensor names and shapes for each family. The loader checks a
// checkpoint against ExpectedTensors(); `strata make-model` writes exactly ExpectedTensors().
#pragma once

#include <string>
#include <vector>

#include "runtime/model/model_spec.h"

namespace strata {

struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a checkpoint of `spec` must hold; no more, except IsIgnorableTensor() ones.
std::vector<TensorDecl> ExpectedTensors(const ModelSpec& spec);

// Tensors a checkpoint may carry that are not weights Strata loads: old HF buffers
// (attention.bias, masked_bias, rotary_emb.inv_freq) and K/V weights of reader layers, which
// decision (d) says are never loaded.
bool IsIgnorableTensor(const ModelSpec& spec, const std::string& name);

// Names of one layer's tensors. Empty strings for tensors this family/layout/layer lacks.
struct LayerTensorNames {
  std::string qkv_w, qkv_b;  // fused gpt_neox layout
  std::string q_w, q_b, k_w, k_b, v_w, v_b;
  std::string o_w, o_b;
  std::string norm1_w, norm1_b, norm2_w, norm2_b;
  std::string up_w, up_b, gate_w, down_w, down_b;
};
LayerTensorNames LayerNames(const ModelSpec& spec, int layer);

struct GlobalTensorNames {
  std::string embed, final_norm_w, final_norm_b, lm_head;  // lm_head == embed when tied
};
GlobalTensorNames GlobalNames(const ModelSpec& spec);

}  // namespace strata
