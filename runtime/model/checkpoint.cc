#include "runtime/model/checkpoint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/config.h"
#include "runtime/model/ggml_blocks.h"
#include "runtime/model/gguf_checkpoint.h"

namespace strata {
namespace {
using json = nlohmann::json;
}  // namespace

int64_t Checkpoint::Entry::SourceRow(int64_t r) const {
  switch (rows) {
    case GgufRows::kSame: return r;
    case GgufRows::kRotaryPairs: return GgufRowOfHfRow(r, head_dim);
    case GgufRows::kNeoxQkv: {  // HF [H, 3, hs] from GGUF [3, H, hs]
      const int64_t heads = info.shape[0] / (3 * head_dim);
      const int64_t head = r / (3 * head_dim), which = (r / head_dim) % 3, i = r % head_dim;
      return (which * heads + head) * head_dim + i;
    }
  }
  return r;
}

void Checkpoint::Entry::ReleaseRows(int64_t first, int64_t count, int64_t row_bytes) const {
  if (!mapped || count <= 0) return;
  int64_t lo = SourceRow(first), hi = lo;
  for (int64_t r = first; r < first + count; ++r) {
    lo = std::min(lo, SourceRow(r));
    hi = std::max(hi, SourceRow(r));
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data + lo * row_bytes) + page - 1) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(data + (hi + 1) * row_bytes) / page * page;
  // Advice only: the pages are clean file pages, so dropping them loses nothing.
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

absl::StatusOr<Checkpoint> Checkpoint::OpenGguf(const std::string& path) {
  Checkpoint c;
  ASSIGN_OR_RETURN(GgufModel gguf, GgufModel::Open(path));
  c.gguf_ = std::make_shared<const GgufModel>(std::move(gguf));
  ASSIGN_OR_RETURN(const ModelSpec spec, LoadModelConfig(path));
  ASSIGN_OR_RETURN(const std::vector<GgufTensorAsHf> tensors, GgufTensorsAsHf(*c.gguf_, spec));
  for (const GgufTensorAsHf& t : tensors) {
    const GgmlType* type = FindGgmlType(t.gguf->ggml_type);  // known and loadable: GgufTensorsAsHf checked
    Entry e;
    e.info.name = t.name;
    e.info.shape = t.shape;
    e.info.nbytes = t.gguf->nbytes;
    e.info.offset = t.gguf->offset;
    if (t.gguf->ggml_type == 0 || t.gguf->ggml_type == 1 || t.gguf->ggml_type == 30) {
      e.info.dtype = t.gguf->ggml_type == 0 ? DType::kF32 : t.gguf->ggml_type == 1 ? DType::kF16 : DType::kBF16;
      e.info.format = WeightFormat::Plain(e.info.dtype);
    } else {
      e.info.dtype = DType::kF32;
      e.info.format = {type->id, DType::kF32, type->block_elems, type->block_bytes, type->name};
    }
    e.data = c.gguf_->Data(*t.gguf);
    e.mapped = true;  // GgufModel::Open maps its files
    e.path = c.gguf_->path();
    e.rows = t.rows;
    e.head_dim = t.head_dim;
    c.where_[t.name] = std::move(e);
  }
  return c;
}

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  if (IsGgufPath(model_dir)) return OpenGguf(model_dir);
  Checkpoint c;
  const std::string single = model_dir + "/model.safetensors";
  const std::string index = model_dir + "/model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (std::ifstream(index).good()) {
    std::ifstream in(index);
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      return absl::InvalidArgumentError(absl::StrCat(index, ": field 'weight_map' missing or not an object"));
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        return absl::InvalidArgumentError(absl::StrCat(index, ": field 'weight_map': entry '", it.key(),
                                                       "' is not a file name"));
      std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
        return absl::InvalidArgumentError(absl::StrCat(index, ": field 'weight_map': file '", file,
                                                       "' is not a plain file name"));
      weight_map[it.key()] = file;
      if (std::find(shard_names.begin(), shard_names.end(), file) == shard_names.end())
        shard_names.push_back(file);
    }
  } else if (std::ifstream(single).good()) {
    shard_names.push_back("model.safetensors");
  } else {
    return absl::NotFoundError(absl::StrCat(model_dir, ": neither model.safetensors nor ",
                                            "model.safetensors.index.json exists"));
  }
  for (const std::string& name : shard_names) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> f, SafetensorsFile::Open(model_dir + "/" + name));
    c.files_.push_back(std::move(f));
    const int fi = static_cast<int>(c.files_.size()) - 1;
    for (const auto& [tname, info] : c.files_[fi]->tensors()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(tname);
        if (it == weight_map.end() || it->second != name)
          return absl::InvalidArgumentError(absl::StrCat(model_dir, "/", name, ": tensor '", tname,
                                                         "' is not assigned to this file by ",
                                                         "model.safetensors.index.json"));
      }
      if (c.where_.count(tname))
        return absl::InvalidArgumentError(absl::StrCat(model_dir, "/", name, ": tensor '", tname,
                                                       "' appears in more than one file"));
      c.where_[tname] = Entry{info, c.files_[fi]->data(info), true, c.files_[fi]->path()};
    }
  }
  for (const auto& [tname, file] : weight_map)
    if (!c.where_.count(tname))
      return absl::InvalidArgumentError(absl::StrCat(index, ": tensor '", tname, "' is listed for ",
                                                     file, " but that file does not contain it"));
  return c;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> out;
  for (const auto& [n, _] : where_) out.push_back(n);
  return out;
}

std::string Checkpoint::FileOf(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? std::string("<checkpoint>") : it->second.path;
}

absl::StatusOr<const TensorInfo*> Checkpoint::Info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor '", name, "'"));
  return &it->second.info;
}

absl::StatusOr<const Checkpoint::Entry*> Checkpoint::Locate(const std::string& name,
                                                            const std::vector<int64_t>& shape) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor '", name, "'"));
  const Entry& e = it->second;
  if (e.info.shape != shape)
    return absl::InvalidArgumentError(absl::StrCat(e.path, ": tensor '", name, "' has shape ",
                                                   ShapeString(e.info.shape), ", expected ", ShapeString(shape)));
  return &e;
}

absl::Status Checkpoint::CopyBlock(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                                   int64_t row_count, int64_t col_begin, int64_t col_count, DType dst_dtype,
                                   void* dst) const {
  ASSIGN_OR_RETURN(const Entry* e, Locate(name, shape));
  const TensorInfo& t = e->info;
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const int64_t cols = rows == 0 ? 0 : t.numel() / rows;
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > rows || col_begin < 0 || col_count < 0 ||
      col_begin + col_count > cols)
    return absl::OutOfRangeError(absl::StrCat(e->path, ": tensor '", name, "': block [", row_begin, "+", row_count,
                                              ", ", col_begin, "+", col_count, ") outside ", ShapeString(shape)));
  const WeightFormat& f = t.format;
  const size_t ds = DTypeSize(dst_dtype);
  const int64_t row_bytes = f.Bytes(1, cols);
  char* out = static_cast<char*>(dst);
  // Blocks: the ones covering the columns, dequantized; plain elements: converted as they are.
  const int64_t block0 = col_begin / f.block_elems;
  const int64_t block1 = (col_begin + col_count + f.block_elems - 1) / f.block_elems;
  const int64_t skip = col_begin - block0 * f.block_elems;
  std::vector<float> row(f.plain() ? (dst_dtype == t.dtype || dst_dtype == DType::kF32 ? 0 : col_count)
                                   : (block1 - block0) * f.block_elems);
  for (int64_t r = 0; r < row_count; ++r) {
    const uint8_t* src = e->data + e->SourceRow(row_begin + r) * row_bytes + block0 * f.block_bytes;
    char* to = out + r * col_count * ds;
    if (!f.plain()) {
      RETURN_IF_ERROR(DequantizeGgml(f.ggml_type, src, (block1 - block0) * f.block_elems, row.data()));
      FromFloat(dst_dtype, row.data() + skip, to, static_cast<size_t>(col_count));
    } else if (dst_dtype == t.dtype) {
      std::memcpy(to, src, col_count * ds);
    } else if (dst_dtype == DType::kF32) {
      ToFloat(t.dtype, src, reinterpret_cast<float*>(to), col_count);
    } else {
      ToFloat(t.dtype, src, row.data(), col_count);
      FromFloat(dst_dtype, row.data(), to, col_count);
    }
  }
  e->ReleaseRows(row_begin, row_count, row_bytes);
  return absl::OkStatus();
}

absl::Status Checkpoint::CopyPacked(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                                    int64_t row_count, int64_t col_begin, int64_t col_count, void* dst) const {
  ASSIGN_OR_RETURN(const Entry* e, Locate(name, shape));
  const WeightFormat& f = e->info.format;
  const WeightFormat to = PackedFormatFor(f.ggml_type);
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const int64_t cols = rows == 0 ? 0 : e->info.numel() / rows;
  if (!to.packed() || row_begin < 0 || row_count < 0 || row_begin + row_count > rows || col_begin < 0 ||
      col_count < 0 || col_begin + col_count > cols || col_begin % f.block_elems != 0 || col_count % f.block_elems != 0)
    return absl::InvalidArgumentError(absl::StrCat(e->path, ": tensor '", name, "' (", f.Name(), "): block [", row_begin,
                                                   "+", row_count, ", ", col_begin, "+", col_count,
                                                   ") is not whole blocks of a packable type in ", ShapeString(shape)));
  const int64_t row_bytes = f.Bytes(1, cols), out_row_bytes = col_count / to.block_elems * to.block_bytes;
  for (int64_t r = 0; r < row_count; ++r) {
    const uint8_t* src = e->data + e->SourceRow(row_begin + r) * row_bytes + col_begin / f.block_elems * f.block_bytes;
    RETURN_IF_ERROR(PackGgml(f.ggml_type, src, col_count, static_cast<char*>(dst) + r * out_row_bytes));
  }
  e->ReleaseRows(row_begin, row_count, row_bytes);
  return absl::OkStatus();
}

absl::StatusOr<const void*> Checkpoint::MappedRows(const std::string& name, const std::vector<int64_t>& shape,
                                                   int64_t row_begin, int64_t row_count,
                                                   const WeightFormat& format) const {
  ASSIGN_OR_RETURN(const Entry* e, Locate(name, shape));
  const int64_t rows = shape.empty() ? 1 : shape[0];
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > rows)
    return absl::OutOfRangeError(absl::StrCat(e->path, ": tensor '", name, "': rows [", row_begin, "+", row_count,
                                              ") outside ", ShapeString(shape)));
  if (e->info.format != format || e->rows != GgufRows::kSame)
    return absl::FailedPreconditionError(absl::StrCat(e->path, ": tensor '", name, "' is stored as ",
                                                      e->info.format.Name(), ", not ", format.Name(),
                                                      " in Hugging Face row order"));
  const int64_t cols = rows == 0 ? 0 : e->info.numel() / rows;
  return static_cast<const void*>(e->data + row_begin * e->info.format.Bytes(1, cols));
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadBlock(const std::string& name,
                                                         const std::vector<int64_t>& shape, int64_t row_begin,
                                                         int64_t row_count, int64_t col_begin,
                                                         int64_t col_count) const {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(0, row_count) * std::max<int64_t>(0, col_count)));
  RETURN_IF_ERROR(CopyBlock(name, shape, row_begin, row_count, col_begin, col_count, DType::kF32, out.data()));
  return out;
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadRows(const std::string& name,
                                                        const std::vector<int64_t>& shape,
                                                        int64_t row_begin, int64_t row_count) const {
  const int64_t rows = shape.empty() ? 1 : shape[0];
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  return ReadBlock(name, shape, row_begin, row_count, 0, rows == 0 ? 0 : numel / rows);
}

absl::StatusOr<std::vector<float>> Checkpoint::Read(const std::string& name,
                                                    const std::vector<int64_t>& shape) const {
  return ReadRows(name, shape, 0, shape.empty() ? 1 : shape[0]);
}

}  // namespace strata
