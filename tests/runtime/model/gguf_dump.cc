// Dumps what Strata reads from a GGUF file, for the outside oracle (gguf_oracle_test.py compares
// it with the `gguf` package's GGUFReader and its reference dequantize).
// Usage: gguf_dump FILE.gguf OUT.json
//   OUT: {"version", "alignment", "metadata": {key: value...}, "tensors": [{"name", "type", "ne",
//         "values" (dequantized, as float32 values) or "error"}...]} or {"error": E}.
#include <cmath>
#include <cstdio>
#include <fstream>

#include "nlohmann/json.hpp"
#include "runtime/model/ggml_blocks.h"
#include "runtime/model/gguf_file.h"

namespace {

nlohmann::json ToJson(const strata::GgufValue& v) {
  using strata::GgufValueType;
  if (v.type == GgufValueType::kArray) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : v.array) a.push_back(ToJson(e));
    return a;
  }
  if (v.is_integer()) return v.i;
  if (v.is_float()) return v.f;
  if (v.type == GgufValueType::kBool) return v.b;
  return v.s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: gguf_dump FILE.gguf OUT.json\n");
    return 2;
  }
  nlohmann::json out;
  auto model = strata::GgufModel::Open(argv[1]);
  if (!model.ok()) {
    out["error"] = std::string(model.status().message());
  } else {
    for (const auto& [key, value] : model->metadata()) out["metadata"][key] = ToJson(value);
    out["tensors"] = nlohmann::json::array();
    for (const std::string& name : model->TensorNames()) {
      const strata::GgufTensorInfo* t = *model->Tensor(name);
      nlohmann::json j = {{"name", name}, {"type", strata::GgmlTypeName(t->ggml_type)}, {"ne", t->ne}};
      std::vector<float> values(static_cast<size_t>(t->numel()));
      if (auto s = strata::DequantizeGgml(t->ggml_type, model->Data(*t), t->numel(), values.data()); !s.ok()) {
        j["error"] = std::string(s.message());
      } else {
        nlohmann::json v = nlohmann::json::array();
        for (float x : values) v.push_back(std::isfinite(x) ? nlohmann::json(static_cast<double>(x)) : nlohmann::json(nullptr));
        j["values"] = std::move(v);
      }
      out["tensors"].push_back(std::move(j));
    }
  }
  std::ofstream(argv[2]) << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
