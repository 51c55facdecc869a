// Bytes as a GGUF file: parsing either fails with a Status or gives metadata and tensors that all
// lie inside the bytes; each loadable tensor (up to a size) is dequantized, which must not read
// outside its own bytes (ASan watches). The same bytes as a model file then go through what a
// GGUF model becomes: its config.json and model spec, its tokenizer files and (when small) its
// tensors under Hugging Face names; each either succeeds or returns an error, never crashes.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/model/config.h"
#include "runtime/model/ggml_blocks.h"
#include "runtime/model/gguf_checkpoint.h"
#include "runtime/model/gguf_file.h"
#include "runtime/tokenizer/gguf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that ASan sees any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  auto f = strata::GgufFile::Parse(bytes.data(), bytes.size(), "fuzz.gguf");
  if (!f.ok()) return 0;
  int64_t total = 0;
  for (const strata::GgufTensorInfo& t : (*f)->tensors()) {
    if (t.offset + t.nbytes > size) std::abort();
    const strata::GgmlType* type = strata::FindGgmlType(t.ggml_type);
    if (type == nullptr) std::abort();  // Parse refuses unknown types
    total += t.numel();
    if (!type->dequantizable || t.numel() > (1 << 16)) continue;
    std::vector<float> out(static_cast<size_t>(t.numel()));
    if (!strata::DequantizeGgml(t.ggml_type, (*f)->data(t), t.numel(), out.data()).ok()) std::abort();
  }
  const int fd = memfd_create("fuzz.gguf", 0);
  if (fd < 0) return 0;
  if (write(fd, data, size) == static_cast<ssize_t>(size)) {
    auto model = strata::GgufModel::Open("/proc/self/fd/" + std::to_string(fd));
    if (model.ok()) {
      (void)strata::ConfigJsonFromGguf(*model);
      (void)strata::TokenizerFilesFromGguf(*model);
      auto spec = strata::ModelSpecFromGguf(*model);
      if (spec.ok() && total <= (1 << 16)) {
        auto tensors = strata::GgufTensorsAsHf(*model, *spec);
        if (tensors.ok())  // each as the loader reads it: rows in Hugging Face order, dequantized
          for (const strata::GgufTensorAsHf& t : *tensors) {
            std::vector<float> out(static_cast<size_t>(t.gguf->numel()));
            if (!strata::DequantizeGgml(t.gguf->ggml_type, model->Data(*t.gguf), t.gguf->numel(), out.data()).ok())
              std::abort();
          }
      }
    }
  }
  close(fd);
  return 0;
}
