// File: runtime/model/tensor_roles.h
// The one description of each family's weights: a table of tensor roles, each with its Hugging
// Face name, its GGUF name, its shape in model dimensions, how tensor parallelism splits it and
// which of the model runner's buffers it fills. Everything else is derived from the table: the
// tensors a checkpoint must hold (ExpectedTensors; `strata make-model` writes exactly these), the
// GGUF-to-Hugging Face mapping (gguf_checkpoint.cc), each rank's slices and weight bytes
// (ParallelLayout::SliceWeights), the loader's reads (LoadWeights reads what the slices say) and
// the planner's FLOPs (LayerMatmulParams).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model/model_spec.h"

namespace strata {

// A model dimension that a tensor's extent is given in.
enum class Dim : uint8_t {
  kOne,     // a vector's columns
  kHidden,
  kQuery,   // heads x head_dim
  kKv,      // the layer's KV heads x head_dim
  kQkv,     // 3 x heads x head_dim (fused GPT-NeoX)
  kMlp,     // intermediate_size
  kVocab,
};

// How tensor parallelism divides a tensor among the slices of a stage.
enum class TpSplit : uint8_t {
  kWhole,        // every slice holds all of it (norms; biases of row-parallel projections)
  kQueryRows,    // this slice's query heads' rows (column-parallel)
  kKvRows,       // this slice's KV heads' rows (the head its queries use when heads < slices)
  kNeoxQkvRows,  // fused [H, 3, hs] rows: this slice's heads of Q, K and V, into three buffers
  kQueryCols,    // this slice's query heads' input columns (row-parallel attention output)
  kMlpRows,      // this slice's MLP columns, as rows (up, gate)
  kMlpCols,      // row-parallel MLP down
  kVocabRows,    // vocabulary-parallel embedding and LM head
};

// The model runner's weight buffers. A buffer may be filled by several roles (SwiGLU's gate and
// up both fill kUp, gate's rows first); a fused GPT-NeoX QKV fills kQ, kK and kV (each "K" slot is
// its "Q" slot + 2, each "V" slot + 4).
enum class WeightSlot : uint8_t {
  kEmbed, kLmHead, kFinalNorm, kFinalNormBias,
  kNorm1, kNorm1Bias, kNorm2, kNorm2Bias,
  kQ, kQBias, kK, kKBias, kV, kVBias,
  kO, kOBias, kUp, kUpBias, kDown, kDownBias,
};

// The order a GGUF file (llama.cpp's converter) keeps a tensor's rows in, against Hugging Face's.
enum class GgufRows : uint8_t {
  kSame,
  kRotaryPairs,  // llama's Q and K: within each head, HF's halves interleaved (undone where the arch permutes)
  kNeoxQkv,      // GPT-NeoX's fused QKV: [3, H, hs] where Hugging Face has [H, 3, hs]
};

struct TensorRole {
  bool per_layer;
  const char* hf;    // per layer: the part after "<family prefix>N."
  const char* gguf;  // per layer: the part after "blk.N."; "" where GGUF has no such tensor
  Dim rows, cols;    // cols kOne: a vector
  TpSplit split;
  WeightSlot slot;
  GgufRows gguf_rows;
  bool (*present)(const ModelSpec& spec, const LayerSpec& layer);  // globals get a default LayerSpec
};

// One tensor a checkpoint holds: its role, its layer (-1: global), its names and shape.
struct TensorDecl {
  const TensorRole* role = nullptr;
  int layer = -1;
  std::string name;       // Hugging Face
  std::string gguf_name;  // "" where GGUF has none
  std::vector<int64_t> shape;
  bool matrix() const { return shape.size() == 2; }
};

// Every tensor a checkpoint of `spec` must hold (no more, except IsIgnorableTensor() ones):
// the global ones and each layer's, in table order.
std::vector<TensorDecl> ExpectedTensors(const ModelSpec& spec);
// One layer's (layer >= 0) or the global ones (layer -1).
std::vector<TensorDecl> TensorsOf(const ModelSpec& spec, int layer);

// Tensors a checkpoint may carry that are not weights Strata loads: old HF buffers
// (attention.bias, masked_bias, rotary_emb.inv_freq) and K/V weights of reader layers, which
// decision (d) says are never loaded.
bool IsIgnorableTensor(const ModelSpec& spec, const std::string& name);

// Multiply-adds per token of a layer's matrices as the runner uses them (a fused QKV's K and V
// only where the layer produces K/V).
double LayerMatmulParams(const ModelSpec& spec, int layer);

}  // namespace strata
