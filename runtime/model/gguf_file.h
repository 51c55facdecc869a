// File: runtime/model/gguf_file.h
// Memory-mapped reader of llama.cpp's GGUF files, versions 2 and 3 (version 1, whose counts and
// lengths were 32-bit, is refused): the metadata (every value type, arrays of any element type
// but arrays), the tensor infos and general.alignment. Everything is checked against the file's
// size before it is read: a truncated, corrupt or hostile file gets an error naming the file and
// the field (a key, a tensor), never a crash. Tensor bytes are touched only when asked for.
// Sharded models (split.count > 1, files named NAME-0000K-of-0000N.gguf) open as one GgufModel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace strata {

// GGUF metadata value types (gguf.h's gguf_type).
enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* GgufValueTypeName(GgufValueType t);

// One metadata value. Integers of every width are held as int64 (a u64 above INT64_MAX is
// refused at read), floats as double; an array holds its elements (all of elem_type).
struct GgufValue {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem_type = GgufValueType::kU8;  // arrays
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> array;
  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::kF32 || type == GgufValueType::kF64; }
};

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous dimension (PyTorch's last)
  uint64_t offset = 0;      // from the start of the file
  uint64_t nbytes = 0;
  int64_t numel() const;
  // The PyTorch shape: ne reversed.
  std::vector<int64_t> torch_shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (the fuzz target's entry; `path` names it in errors). The bytes
  // must outlive the object.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const uint8_t* data, size_t size, const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const uint8_t* data(const GgufTensorInfo& t) const { return base_ + t.offset; }

 private:
  GgufFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// A model in one GGUF file or its shards: the metadata of the first, the tensors of all.
class GgufModel {
 public:
  // `path`: a .gguf file (a shard's first file brings the others along) or a directory holding
  // exactly one model's file(s).
  static absl::StatusOr<GgufModel> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& metadata() const { return files_.front()->metadata(); }
  bool Has(const std::string& key) const { return metadata().count(key) > 0; }
  // Typed reads; each error names the file and the key.
  absl::StatusOr<int64_t> Int(const std::string& key) const;
  absl::StatusOr<double> Float(const std::string& key) const;  // an integer value is accepted
  absl::StatusOr<bool> Bool(const std::string& key) const;
  absl::StatusOr<std::string> String(const std::string& key) const;
  absl::StatusOr<std::vector<std::string>> StringArray(const std::string& key) const;
  absl::StatusOr<std::vector<int64_t>> IntArray(const std::string& key) const;
  absl::StatusOr<std::vector<double>> FloatArray(const std::string& key) const;
  // The same for optional keys: `fallback` when absent, an error when present with another type.
  absl::StatusOr<int64_t> IntOr(const std::string& key, int64_t fallback) const;
  absl::StatusOr<double> FloatOr(const std::string& key, double fallback) const;
  absl::StatusOr<bool> BoolOr(const std::string& key, bool fallback) const;
  absl::StatusOr<std::string> StringOr(const std::string& key, const std::string& fallback) const;

  bool HasTensor(const std::string& name) const { return tensors_.count(name) > 0; }
  absl::StatusOr<const GgufTensorInfo*> Tensor(const std::string& name) const;
  std::vector<std::string> TensorNames() const;
  const uint8_t* Data(const GgufTensorInfo& t) const;

 private:
  absl::StatusOr<const GgufValue*> Find(const std::string& key, const char* want) const;
  std::string path_;
  std::vector<std::shared_ptr<GgufFile>> files_;
  std::map<std::string, std::pair<int, const GgufTensorInfo*>> tensors_;  // name -> (file, info)
};

// Whether `path` names a GGUF model: a file ending in .gguf, or a directory holding one and no
// config.json.
bool IsGgufPath(const std::string& path);

}  // namespace strata
