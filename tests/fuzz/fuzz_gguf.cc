// Bytes as a GGUF file: parsing either fails with a Status or gives metadata and tensors that all
// lie inside the bytes; each loadable tensor (up to a size) is dequantized, which must not read
// outside its own bytes (ASan watches).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "runtime/model/ggml_blocks.h"
#include "runtime/model/gguf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that ASan sees any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  auto f = strata::GgufFile::Parse(bytes.data(), bytes.size(), "fuzz.gguf");
  if (!f.ok()) return 0;
  for (const strata::GgufTensorInfo& t : (*f)->tensors()) {
    if (t.offset + t.nbytes > size) std::abort();
    const strata::GgmlType* type = strata::FindGgmlType(t.ggml_type);
    if (type == nullptr) std::abort();  // Parse refuses unknown types
    if (!type->dequantizable || t.numel() > (1 << 16)) continue;
    std::vector<float> out(static_cast<size_t>(t.numel()));
    if (!strata::DequantizeGgml(t.ggml_type, (*f)->data(t), t.numel(), out.data()).ok()) std::abort();
  }
  return 0;
}
