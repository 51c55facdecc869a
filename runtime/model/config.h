// File: runtime/model/config.h
// Reads a Hugging Face config.json (gpt_neox incl. MLKV fields; llama incl. lckv-llama
// `layer_types`) into a ModelSpec. Every rejection names the file and the field.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "runtime/model/model_spec.h"

namespace strata {

// `path` is only used in messages.
absl::StatusOr<ModelSpec> ParseModelConfig(const std::string& json_text, const std::string& path);
// A model directory's config.json (and generation_config.json), or a GGUF model's metadata.
absl::StatusOr<ModelSpec> LoadModelConfig(const std::string& model_dir);
class GgufModel;
absl::StatusOr<ModelSpec> ModelSpecFromGguf(const GgufModel& gguf);

struct LayerTypeEntry {
  int source;
  bool sliding;
};
// Parses "0_10s_10_11": '_'-separated tokens matching ^(\d+)(s)?$.
absl::StatusOr<std::vector<LayerTypeEntry>> ParseLayerTypes(const std::string& s);

}  // namespace strata
