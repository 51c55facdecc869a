// File: runtime/model/safetensors.h
// Memory-mapped reader and a writer for the safetensors format, plus the Hugging Face checkpoint
// layout on top of it (one model.safetensors, or shards named by model.safetensors.index.json).
// Tensor bytes are touched only when asked for (the mapping is lazy).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/base/dtype.h"

namespace strata {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t offset = 0;  // from the start of the file
  size_t nbytes = 0;
  int64_t numel() const;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // already in `dtype`
};

class SafetensorsFile {
 public:
  // Validates the header completely: size, JSON, dtypes, shapes, offsets, overlaps.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Tensors held in memory rather than mapped (a GGUF model dequantized at load); `label` names
  // it in messages. Each tensor's bytes are moved in and freed as they go.
  static std::unique_ptr<SafetensorsFile> FromMemory(const std::string& label, std::vector<TensorToWrite> tensors);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const uint8_t* data(const TensorInfo& t) const { return base_ + t.offset; }
  bool in_memory() const { return !owned_.empty(); }  // FromMemory's
  // Drops the whole pages inside [ptr, ptr + bytes) of the mapping from this process (the page
  // cache keeps them; a later read maps them again): copied weights then cost their copy only.
  void Release(const uint8_t* ptr, size_t bytes) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::vector<uint8_t> owned_;  // FromMemory's bytes (base_ points into them; nothing is mapped)
  std::map<std::string, TensorInfo> tensors_;
};

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

// All tensors of a model directory.
class Checkpoint {
 public:
  // A model directory's safetensors, or a GGUF model (a .gguf file or a directory holding one)
  // dequantized under Hugging Face names (gguf_checkpoint.h).
  static absl::StatusOr<Checkpoint> Open(const std::string& model_dir);
  // Held in memory (a GGUF model dequantized at load), not mapped: the loader copies from it
  // rather than pointing into it, so that it can be dropped once the weights are loaded.
  bool in_memory() const;

  bool Has(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> Names() const;
  absl::StatusOr<const TensorInfo*> Info(const std::string& name) const;
  // File holding `name`, for messages.
  std::string FileOf(const std::string& name) const;
  // Reads rows [row_begin, row_begin+row_count) of a tensor whose shape must equal `shape`
  // (the first dim is rows; a 1-D tensor has one element per row), converted to float.
  absl::StatusOr<std::vector<float>> ReadRows(const std::string& name,
                                              const std::vector<int64_t>& shape,
                                              int64_t row_begin, int64_t row_count) const;
  absl::StatusOr<std::vector<float>> Read(const std::string& name,
                                          const std::vector<int64_t>& shape) const;
  // Rows [row_begin, +row_count) x columns [col_begin, +col_count) (a 1-D tensor has one
  // column per row).
  absl::StatusOr<std::vector<float>> ReadBlock(const std::string& name, const std::vector<int64_t>& shape,
                                               int64_t row_begin, int64_t row_count, int64_t col_begin,
                                               int64_t col_count) const;
  // Rows [row_begin, +row_count) of a tensor in place in the mapping (valid while any copy of
  // this Checkpoint lives), and the type they are stored in.
  absl::StatusOr<const void*> MappedRows(const std::string& name, const std::vector<int64_t>& shape,
                                         int64_t row_begin, int64_t row_count, DType* stored) const;
  // The same block written to `dst` as [row_count, col_count] elements of `dst_dtype` (a plain
  // copy when the checkpoint already stores that type), after which the mapped pages it read
  // are released: loading never holds the file and the copy at once.
  absl::Status CopyBlock(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                         int64_t row_count, int64_t col_begin, int64_t col_count, DType dst_dtype,
                         void* dst) const;

 private:
  struct Located {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  // The file and entry of `name`, whose shape must equal `shape`.
  absl::StatusOr<Located> Locate(const std::string& name, const std::vector<int64_t>& shape) const;

  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<int, const TensorInfo*>> where_;
};

std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace strata
