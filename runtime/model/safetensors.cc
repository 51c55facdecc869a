#include "runtime/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/base/status.h"
#include "runtime/model/gguf_checkpoint.h"
#include "runtime/model/gguf_file.h"

namespace strata {
namespace {
using json = nlohmann::json;
// Hugging Face's own reader refuses headers above 100 MB; a larger one means a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return bad("cannot stat");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return bad(absl::StrCat("truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return bad("mmap failed");
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->base_ = static_cast<const uint8_t*>(map);
  f->size_ = size;

  uint64_t header_len = 0;
  std::memcpy(&header_len, f->base_, 8);  // little-endian on every supported host
  if (header_len > kMaxHeaderBytes)
    return bad(absl::StrCat("header length ", header_len, " exceeds the 100 MB limit"));
  if (header_len > size - 8)
    return bad(absl::StrCat("truncated: header claims ", header_len, " bytes but the file has ",
                            size - 8, " after the length"));
  const size_t data_start = 8 + header_len;
  const size_t data_size = size - data_start;
  json h = json::parse(f->base_ + 8, f->base_ + data_start, nullptr, false);
  if (h.is_discarded() || !h.is_object()) return bad("header is not a JSON object");

  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const json& e = it.value();
    auto tbad = [&](const std::string& what) { return bad(absl::StrCat("tensor '", name, "': ", what)); };
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      return tbad("entry needs dtype, shape and data_offsets");
    if (!e["dtype"].is_string()) return tbad("dtype is not a string");
    auto dt = ParseSafetensorsDType(e["dtype"].get<std::string>());
    if (!dt.ok()) return tbad(std::string(dt.status().message()));
    TensorInfo t;
    t.name = name;
    t.dtype = *dt;
    if (!e["shape"].is_array()) return tbad("shape is not an array");
    uint64_t numel = 1;
    for (const json& d : e["shape"]) {
      if (!d.is_number_unsigned()) return tbad(absl::StrCat("bad dimension ", d.dump()));
      uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v && numel > (1ull << 50) / v)) return tbad("shape too large");
      numel *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return tbad("data_offsets must be two non-negative integers");
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      return tbad(absl::StrCat("data_offsets [", b, ", ", en, "] out of range (data section has ",
                               data_size, " bytes)"));
    if (en - b != numel * DTypeSize(t.dtype))
      return tbad(absl::StrCat("data_offsets span ", en - b, " bytes but shape ", ShapeString(t.shape),
                               " of ", DTypeName(t.dtype), " needs ", numel * DTypeSize(t.dtype)));
    t.offset = data_start + b;
    t.nbytes = en - b;
    ranges.push_back({b, en});
    f->tensors_[name] = std::move(t);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) return bad("tensor data ranges overlap");
  return f;
}

bool Checkpoint::in_memory() const {
  for (const auto& f : files_)
    if (f->in_memory()) return true;
  return false;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::FromMemory(const std::string& label, std::vector<TensorToWrite> tensors) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = label;
  size_t total = 0;
  for (const TensorToWrite& t : tensors) total += t.bytes.size();
  f->owned_.reserve(total);
  for (TensorToWrite& t : tensors) {
    TensorInfo info;
    info.name = t.name;
    info.dtype = t.dtype;
    info.shape = t.shape;
    info.offset = f->owned_.size();
    info.nbytes = t.bytes.size();
    f->owned_.insert(f->owned_.end(), t.bytes.begin(), t.bytes.end());
    std::vector<uint8_t>().swap(t.bytes);
    f->tensors_[info.name] = std::move(info);
  }
  f->base_ = f->owned_.data();
  f->size_ = f->owned_.size();
  return f;
}

void SafetensorsFile::Release(const uint8_t* ptr, size_t bytes) const {
  if (!owned_.empty()) return;  // memory of our own: dropping its pages would lose the data
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(ptr) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + bytes) / page * page;
  // Advice only: the pages are clean file pages, so dropping them loses nothing.
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

SafetensorsFile::~SafetensorsFile() {
  if (base_ && owned_.empty()) ::munmap(const_cast<uint8_t*>(base_), size_);
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  json h = json::object();
  size_t off = 0;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                 {"shape", t.shape},
                 {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  h["__metadata__"] = {{"format", "pt"}};
  std::string header = h.dump();
  while (header.size() % 8 != 0) header.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), header.size());
  for (const auto& t : tensors) out.write(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& model_dir) {
  Checkpoint c;
  if (IsGgufPath(model_dir)) {
    ASSIGN_OR_RETURN(const GgufModel gguf, GgufModel::Open(model_dir));
    ASSIGN_OR_RETURN(std::vector<TensorToWrite> tensors, HfTensorsFromGguf(gguf));
    c.files_.push_back(SafetensorsFile::FromMemory(gguf.path(), std::move(tensors)));
    for (const auto& [name, info] : c.files_.back()->tensors()) c.where_[name] = {0, &info};
    return c;
  }
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
      c.where_[tname] = {fi, &info};
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
  return it == where_.end() ? std::string("<checkpoint>") : files_[it->second.first]->path();
}

absl::StatusOr<const TensorInfo*> Checkpoint::Info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor '", name, "'"));
  return it->second.second;
}

absl::StatusOr<Checkpoint::Located> Checkpoint::Locate(const std::string& name,
                                                       const std::vector<int64_t>& shape) const {
  auto it = where_.find(name);
  if (it == where_.end())
    return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor '", name, "'"));
  const SafetensorsFile* f = files_[it->second.first].get();
  const TensorInfo* t = it->second.second;
  if (t->shape != shape)
    return absl::InvalidArgumentError(absl::StrCat(f->path(), ": tensor '", name, "' has shape ",
                                                   ShapeString(t->shape), ", expected ", ShapeString(shape)));
  return Located{f, t};
}

absl::Status Checkpoint::CopyBlock(const std::string& name, const std::vector<int64_t>& shape, int64_t row_begin,
                                   int64_t row_count, int64_t col_begin, int64_t col_count, DType dst_dtype,
                                   void* dst) const {
  ASSIGN_OR_RETURN(const Located at, Locate(name, shape));
  const SafetensorsFile& f = *at.file;
  const TensorInfo& t = *at.info;
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const int64_t cols = rows == 0 ? 0 : t.numel() / rows;
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > rows || col_begin < 0 || col_count < 0 ||
      col_begin + col_count > cols)
    return absl::OutOfRangeError(absl::StrCat(f.path(), ": tensor '", name, "': block [", row_begin, "+", row_count,
                                              ", ", col_begin, "+", col_count, ") outside ", ShapeString(shape)));
  // Only the block's bytes are touched: a tensor slice reads its own part of the mapping.
  const size_t es = DTypeSize(t.dtype), ds = DTypeSize(dst_dtype);
  const uint8_t* first = f.data(t) + (row_begin * cols + col_begin) * es;
  char* out = static_cast<char*>(dst);
  std::vector<float> row(dst_dtype == t.dtype || dst_dtype == DType::kF32 ? 0 : col_count);
  for (int64_t r = 0; r < row_count; ++r) {
    const uint8_t* src = first + r * cols * es;
    char* to = out + r * col_count * ds;
    if (dst_dtype == t.dtype) {
      std::memcpy(to, src, col_count * es);
    } else if (dst_dtype == DType::kF32) {
      ToFloat(t.dtype, src, reinterpret_cast<float*>(to), col_count);
    } else {
      ToFloat(t.dtype, src, row.data(), col_count);
      FromFloat(dst_dtype, row.data(), to, col_count);
    }
  }
  if (row_count > 0) f.Release(first, ((row_count - 1) * cols + col_count) * es);
  return absl::OkStatus();
}

absl::StatusOr<const void*> Checkpoint::MappedRows(const std::string& name, const std::vector<int64_t>& shape,
                                                   int64_t row_begin, int64_t row_count, DType* stored) const {
  ASSIGN_OR_RETURN(const Located at, Locate(name, shape));
  const SafetensorsFile& f = *at.file;
  const TensorInfo& t = *at.info;
  const int64_t rows = shape.empty() ? 1 : shape[0];
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > rows)
    return absl::OutOfRangeError(absl::StrCat(f.path(), ": tensor '", name, "': rows [", row_begin, "+", row_count,
                                              ") outside ", ShapeString(shape)));
  *stored = t.dtype;
  const int64_t cols = rows == 0 ? 0 : t.numel() / rows;
  return static_cast<const void*>(f.data(t) + row_begin * cols * DTypeSize(t.dtype));
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
