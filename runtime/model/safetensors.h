// File: runtime/model/safetensors.h
// Memory-mapped reader and a writer for the safetensors format. Tensor bytes are touched only
// when asked for (the mapping is lazy). checkpoint.h puts a model directory's files together.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/base/dtype.h"
#include "runtime/base/weight_format.h"

namespace strata {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t offset = 0;  // from the start of the file
  size_t nbytes = 0;
  // As stored: plain elements of `dtype` in a safetensors file; any ggml type in a GGUF file
  // (where `dtype` is float32, what a block dequantizes to).
  WeightFormat format = WeightFormat::Plain(DType::kF32);
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
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const uint8_t* data(const TensorInfo& t) const { return base_ + t.offset; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace strata
