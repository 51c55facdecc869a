// File: runtime/model/checkpoint.h
// All tensors of a model, under their Hugging Face names and shapes: a directory's safetensors
// (one model.safetensors, or shards named by model.safetensors.index.json), or a GGUF model (a
// .gguf file or a directory holding one) read in place through the tensor role table's GGUF
// names, each tensor in its own stored format (plain elements or llama.cpp blocks) and its rows
// in the file's order, both undone block by block as the loader copies. Nothing is read until
// asked for.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model/gguf_file.h"
#include "runtime/model/safetensors.h"
#include "runtime/model/tensor_roles.h"

namespace strata {

class Checkpoint {
 public:
  static absl::StatusOr<Checkpoint> Open(const std::string& model_dir);

  bool Has(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> Names() const;
  absl::StatusOr<const TensorInfo*> Info(const std::string& name) const;
  // File holding `name`, for messages.
  std::string FileOf(const std::string& name) const;
  // Reads rows [row_begin, row_begin+row_count) of a tensor whose shape must equal `shape`
  // (the first dim is rows; a 1-D tensor has one element per row), converted to float.
  absl::StatusOr<std::vector<float>> ReadRows(const std::string& name, const std::vector<int64_t>& shape,
                                              int64_t row_begin, int64_t row_count) const;
  absl::StatusOr<std::vector<float>> Read(const std::string& name, const std::vector<int64_t>& shape) const;
  // Rows [row_begin, +row_count) x columns [col_begin, +col_count) (a 1-D tensor has one
  // column per row).
  absl::StatusOr<std::vector<float>> ReadBlock(const std::string& name, const std::vector<int64_t>& shape,
                                               int64_t row_begin, int64_t row_count, int64_t col_begin,
                                               int64_t col_count) const;
  // Rows [row_begin, +row_count) of a tensor in place in the mapping (valid while any copy of
  // this Checkpoint lives), when it is stored as `format` with its rows in Hugging Face order;
  // otherwise an error (the caller copies instead).
  absl::StatusOr<const void*> MappedRows(const std::string& name, const std::vector<int64_t>& shape,
                                         int64_t row_begin, int64_t row_count, const WeightFormat& format) const;
  // The same block written to `dst` as [row_count, col_count] elements of `dst_dtype` (a plain
  // copy when the checkpoint already stores that type; blocks dequantized exactly), after which
  // the mapped pages it read are released: loading never holds the file and the copy at once.
  absl::Status CopyBlock(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                         int64_t row_count, int64_t col_begin, int64_t col_count, DType dst_dtype,
                         void* dst) const;
  // The same block of a block-quantized tensor repacked into PackedFormatFor its type (the
  // columns must be whole blocks of its type), rows in Hugging Face order.
  absl::Status CopyPacked(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                          int64_t row_count, int64_t col_begin, int64_t col_count, void* dst) const;

 private:
  struct Entry {
    TensorInfo info;      // Hugging Face name and shape, stored format
    const uint8_t* data;  // the tensor's first byte in a mapping
    bool mapped = false;                    // in a file mapping, whose pages a copy releases
    std::string path;                       // for messages
    GgufRows rows = GgufRows::kSame;        // the file's row order
    int64_t head_dim = 0;                   // the unit rows are permuted in
    int64_t SourceRow(int64_t hf_row) const;
    // Drops the mapped pages wholly inside the file rows that Hugging Face rows [first, +count)
    // come from (the page cache keeps them): a copied slice then costs its copy only.
    void ReleaseRows(int64_t first, int64_t count, int64_t row_bytes) const;
  };
  // The entry of `name`, whose shape must equal `shape`.
  absl::StatusOr<const Entry*> Locate(const std::string& name, const std::vector<int64_t>& shape) const;
  static absl::StatusOr<Checkpoint> OpenGguf(const std::string& path);

  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::shared_ptr<const GgufModel> gguf_;
  std::map<std::string, Entry> where_;
};

}  // namespace strata
