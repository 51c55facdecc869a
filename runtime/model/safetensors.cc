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
    t.format = WeightFormat::Plain(*dt);
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

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
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

}  // namespace strata
