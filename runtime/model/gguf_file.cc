#include "runtime/model/gguf_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status.h"
#include "runtime/model/ggml_blocks.h"

namespace strata {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF", little-endian
constexpr int kMaxDims = 4;
constexpr size_t kMaxNameBytes = 64;  // ggml's GGML_MAX_NAME, terminator included
constexpr int kMaxArrayDepth = 1;     // llama.cpp refuses arrays of arrays
// Each element is held as a GgufValue (about 90 bytes): a cap keeps a hostile count from asking
// for more memory than any real file needs (vocabularies and merges run to a few hundred thousand).
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 22;

// A bounds-checked little-endian reader over the file's bytes; every error names the file and
// what was being read.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}
  size_t at() const { return at_; }
  size_t left() const { return size_ - at_; }

  absl::Status Error(const std::string& what, const std::string& why) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": GGUF ", what, ": ", why, " (at byte ", at_, ")"));
  }
  template <typename T>
  absl::StatusOr<T> Read(const std::string& what) {
    if (left() < sizeof(T)) return Error(what, "the file ends inside it (truncated)");
    T v;
    std::memcpy(&v, data_ + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  absl::StatusOr<std::string> ReadString(const std::string& what) {
    ASSIGN_OR_RETURN(const uint64_t n, Read<uint64_t>(what + " length"));
    if (n > left()) return Error(what, absl::StrCat("a string of ", n, " bytes runs past the end of the file"));
    std::string s(reinterpret_cast<const char*>(data_ + at_), n);
    at_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
  const std::string& path_;
};

// The smallest encoding of one value of `t` (a bound for element counts read from the file).
size_t MinBytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kString: case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kArray: return 12;
  }
  return 1;
}

absl::StatusOr<GgufValue> ReadValue(Cursor* c, GgufValueType type, const std::string& what, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::kU8: { ASSIGN_OR_RETURN(const uint8_t x, c->Read<uint8_t>(what)); v.i = x; break; }
    case GgufValueType::kI8: { ASSIGN_OR_RETURN(const int8_t x, c->Read<int8_t>(what)); v.i = x; break; }
    case GgufValueType::kU16: { ASSIGN_OR_RETURN(const uint16_t x, c->Read<uint16_t>(what)); v.i = x; break; }
    case GgufValueType::kI16: { ASSIGN_OR_RETURN(const int16_t x, c->Read<int16_t>(what)); v.i = x; break; }
    case GgufValueType::kU32: { ASSIGN_OR_RETURN(const uint32_t x, c->Read<uint32_t>(what)); v.i = x; break; }
    case GgufValueType::kI32: { ASSIGN_OR_RETURN(const int32_t x, c->Read<int32_t>(what)); v.i = x; break; }
    case GgufValueType::kI64: { ASSIGN_OR_RETURN(v.i, c->Read<int64_t>(what)); break; }
    case GgufValueType::kU64: {
      ASSIGN_OR_RETURN(const uint64_t x, c->Read<uint64_t>(what));
      if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return c->Error(what, absl::StrCat("the u64 ", x, " is out of range"));
      v.i = static_cast<int64_t>(x);
      break;
    }
    case GgufValueType::kF32: { ASSIGN_OR_RETURN(const float x, c->Read<float>(what)); v.f = x; break; }
    case GgufValueType::kF64: { ASSIGN_OR_RETURN(v.f, c->Read<double>(what)); break; }
    case GgufValueType::kBool: {
      ASSIGN_OR_RETURN(const uint8_t x, c->Read<uint8_t>(what));
      if (x > 1) return c->Error(what, absl::StrCat("a bool holds ", int{x}));
      v.b = x == 1;
      break;
    }
    case GgufValueType::kString: { ASSIGN_OR_RETURN(v.s, c->ReadString(what)); break; }
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth) return c->Error(what, "arrays of arrays are not allowed");
      ASSIGN_OR_RETURN(const uint32_t et, c->Read<uint32_t>(what + " element type"));
      if (et > static_cast<uint32_t>(GgufValueType::kF64)) return c->Error(what, absl::StrCat("unknown element type ", et));
      v.elem_type = static_cast<GgufValueType>(et);
      if (v.elem_type == GgufValueType::kArray) return c->Error(what, "arrays of arrays are not allowed");
      ASSIGN_OR_RETURN(const uint64_t n, c->Read<uint64_t>(what + " element count"));
      if (n > c->left() / MinBytes(v.elem_type))
        return c->Error(what, absl::StrCat("an array of ", n, " elements cannot fit in the rest of the file"));
      if (n > kMaxArrayElements)
        return c->Error(what, absl::StrCat("an array of ", n, " elements is more than ", kMaxArrayElements, " allowed"));
      v.array.reserve(n);
      for (uint64_t k = 0; k < n; ++k) {
        ASSIGN_OR_RETURN(GgufValue e, ReadValue(c, v.elem_type, what, depth + 1));
        v.array.push_back(std::move(e));
      }
      break;
    }
  }
  return v;
}

class Mapping {
 public:
  static absl::StatusOr<std::pair<const uint8_t*, size_t>> Map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": GGUF magic: the file is empty"));
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(errno)));
    return std::make_pair(static_cast<const uint8_t*>(map), size);
  }
};

bool IsPowerOfTwo(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace

const char* GgufValueTypeName(GgufValueType t) {
  static const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kU16: case GgufValueType::kI16:
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kU64: case GgufValueType::kI64:
      return true;
    default:
      return false;
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(const auto mapped, Mapping::Map(path));
  auto f = Parse(mapped.first, mapped.second, path);
  if (!f.ok()) {
    ::munmap(const_cast<uint8_t*>(mapped.first), mapped.second);
    return f.status();
  }
  (*f)->mapped_ = true;
  return f;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(const uint8_t* data, size_t size, const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->base_ = data;
  f->size_ = size;
  Cursor c(data, size, f->path_);
  ASSIGN_OR_RETURN(const uint32_t magic, c.Read<uint32_t>("magic"));
  if (magic != kMagic) return c.Error("magic", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  ASSIGN_OR_RETURN(f->version_, c.Read<uint32_t>("version"));
  if (f->version_ == 1) return c.Error("version", "version 1 files are not supported (convert them again: 2 and 3 are)");
  if (f->version_ != 2 && f->version_ != 3)
    return c.Error("version", absl::StrCat("version ", f->version_, " is not supported (2 and 3 are)"));
  ASSIGN_OR_RETURN(const int64_t n_tensors, c.Read<int64_t>("tensor count"));
  ASSIGN_OR_RETURN(const int64_t n_kv, c.Read<int64_t>("metadata count"));
  // Each entry takes at least 12 (a key) or 24 (a tensor) bytes: a count beyond what the file
  // holds is corrupt, and is refused before anything is reserved for it.
  if (n_kv < 0 || static_cast<uint64_t>(n_kv) > c.left() / 12)
    return c.Error("metadata count", absl::StrCat(n_kv, " entries cannot fit in the file"));
  if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > c.left() / 24)
    return c.Error("tensor count", absl::StrCat(n_tensors, " tensors cannot fit in the file"));
  for (int64_t k = 0; k < n_kv; ++k) {
    ASSIGN_OR_RETURN(std::string key, c.ReadString(absl::StrCat("metadata key ", k)));
    ASSIGN_OR_RETURN(const uint32_t type, c.Read<uint32_t>(absl::StrCat("type of '", key, "'")));
    if (type > static_cast<uint32_t>(GgufValueType::kF64))
      return c.Error(absl::StrCat("type of '", key, "'"), absl::StrCat("unknown value type ", type));
    ASSIGN_OR_RETURN(GgufValue v, ReadValue(&c, static_cast<GgufValueType>(type), absl::StrCat("'", key, "'"), 0));
    if (f->kv_.count(key)) return c.Error(absl::StrCat("'", key, "'"), "the key appears twice");
    f->kv_.emplace(std::move(key), std::move(v));
  }
  if (auto it = f->kv_.find("general.alignment"); it != f->kv_.end()) {
    if (it->second.type != GgufValueType::kU32 || !IsPowerOfTwo(static_cast<uint64_t>(it->second.i)))
      return c.Error("'general.alignment'", "must be a u32 power of two");
    f->alignment_ = static_cast<uint32_t>(it->second.i);
  }
  std::set<std::string> names;
  for (int64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    ASSIGN_OR_RETURN(t.name, c.ReadString(absl::StrCat("tensor ", k, " name")));
    const std::string what = absl::StrCat("tensor '", t.name, "'");
    if (t.name.size() >= kMaxNameBytes) return c.Error(what, absl::StrCat("a name of ", kMaxNameBytes, " bytes or more"));
    if (!names.insert(t.name).second) return c.Error(what, "the name appears twice");
    ASSIGN_OR_RETURN(const uint32_t n_dims, c.Read<uint32_t>(what + " dimension count"));
    if (n_dims == 0 || n_dims > kMaxDims) return c.Error(what, absl::StrCat(n_dims, " dimensions (1 to 4 are allowed)"));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      ASSIGN_OR_RETURN(const int64_t n, c.Read<int64_t>(what + " shape"));
      if (n < 0 || (n > 0 && numel > std::numeric_limits<int64_t>::max() / n))
        return c.Error(what, absl::StrCat("dimension ", d, " is ", n));
      numel *= n;
      t.ne.push_back(n);
    }
    ASSIGN_OR_RETURN(t.ggml_type, c.Read<uint32_t>(what + " type"));
    const GgmlType* type = FindGgmlType(t.ggml_type);
    if (type == nullptr) return c.Error(what, absl::StrCat("unknown ggml type ", t.ggml_type));
    if (t.ne[0] % type->block_elems != 0)
      return c.Error(what, absl::StrCat("rows of ", t.ne[0], " elements are not whole ", type->name, " blocks of ",
                                        type->block_elems));
    ASSIGN_OR_RETURN(t.offset, c.Read<uint64_t>(what + " offset"));
    if (t.offset % f->alignment_ != 0)
      return c.Error(what, absl::StrCat("offset ", t.offset, " is not a multiple of the alignment ", f->alignment_));
    const uint64_t blocks = static_cast<uint64_t>(numel) / static_cast<uint64_t>(type->block_elems);
    if (blocks > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(type->block_bytes))
      return c.Error(what, absl::StrCat(numel, " elements of ", type->name, " overflow a byte count"));
    t.nbytes = GgmlBytes(*type, static_cast<uint64_t>(numel));
    f->tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment; every tensor lies inside the
  // file, none overlapping another.
  const uint64_t data_start = (c.at() + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  std::multimap<uint64_t, const GgufTensorInfo*> by_offset;
  for (GgufTensorInfo& t : f->tensors_) {
    if (t.offset > size || data_start > size - t.offset || t.nbytes > size - data_start - t.offset)
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: GGUF tensor '%s': its %d bytes at data offset %d run past the end of the file (%d bytes; truncated?)",
          path, t.name, t.nbytes, t.offset, size));
    t.offset += data_start;
    by_offset.emplace(t.offset, &t);
  }
  uint64_t end = data_start;
  for (const auto& [offset, t] : by_offset) {
    if (offset < end)
      return absl::InvalidArgumentError(absl::StrFormat("%s: GGUF tensor '%s' overlaps the tensor before it", path, t->name));
    end = offset + t->nbytes;
  }
  return f;
}

GgufFile::~GgufFile() {
  if (mapped_ && base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

namespace {

// "NAME-00001-of-00003.gguf" -> {"NAME-", 3}; anything else -> {"", 0}.
std::pair<std::string, int> SplitPattern(const std::string& path) {
  const size_t of = path.rfind("-of-");
  if (of == std::string::npos || of < 5 || !absl::EndsWith(path, ".gguf")) return {"", 0};
  const std::string count = path.substr(of + 4, path.size() - 5 - (of + 4));
  const std::string index = path.substr(of - 5, 5);
  if (count.size() != 5 || count.find_first_not_of("0123456789") != std::string::npos ||
      index.find_first_not_of("0123456789") != std::string::npos)
    return {"", 0};
  return {path.substr(0, of - 5), std::stoi(count)};
}

std::vector<std::string> GgufFilesIn(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (absl::EndsWith(e->d_name, ".gguf")) out.push_back(dir + "/" + e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

bool IsGgufPath(const std::string& path) {
  if (IsDirectory(path)) {
    struct stat st;
    return !GgufFilesIn(path).empty() && ::stat((path + "/config.json").c_str(), &st) != 0;
  }
  return absl::EndsWith(path, ".gguf");
}

absl::StatusOr<GgufModel> GgufModel::Open(const std::string& path) {
  std::string first = path;
  if (IsDirectory(path)) {
    std::vector<std::string> files = GgufFilesIn(path);
    std::vector<std::string> heads;  // single files and first shards
    for (const std::string& f : files) {
      const auto [prefix, count] = SplitPattern(f);
      if (count == 0 || f == absl::StrFormat("%s%05d-of-%05d.gguf", prefix, 1, count)) heads.push_back(f);
    }
    if (heads.size() != 1)
      return absl::InvalidArgumentError(absl::StrCat(path, ": expected one GGUF model in the directory, found ", heads.size()));
    first = heads.front();
  }
  GgufModel m;
  m.path_ = first;
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> head, GgufFile::Open(first));
  m.files_.push_back(std::move(head));
  int count = 1;
  if (auto it = m.metadata().find("split.count"); it != m.metadata().end()) {
    if (!it->second.is_integer() || it->second.i < 1 || it->second.i > 9999)
      return absl::InvalidArgumentError(absl::StrCat(first, ": GGUF 'split.count' must be a count of files"));
    count = static_cast<int>(it->second.i);
  }
  if (count > 1) {
    const auto [prefix, named] = SplitPattern(first);
    if (named != count || first != absl::StrFormat("%s%05d-of-%05d.gguf", prefix, 1, count))
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: GGUF 'split.count' is %d: open the first shard, named NAME-00001-of-%05d.gguf", first, count, count));
    for (int k = 2; k <= count; ++k) {
      ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> shard, GgufFile::Open(absl::StrFormat("%s%05d-of-%05d.gguf", prefix, k, count)));
      // Each shard says which it is (split.no counts from 0) and of how many.
      const auto& kv = shard->metadata();
      const auto no = kv.find("split.no"), of = kv.find("split.count");
      if (no == kv.end() || !no->second.is_integer() || no->second.i != k - 1 || of == kv.end() ||
          !of->second.is_integer() || of->second.i != count)
        return absl::InvalidArgumentError(absl::StrFormat("%s: GGUF 'split.no' / 'split.count' are not %d of %d",
                                                          shard->path(), k - 1, count));
      m.files_.push_back(std::move(shard));
    }
  }
  for (int k = 0; k < static_cast<int>(m.files_.size()); ++k)
    for (const GgufTensorInfo& t : m.files_[k]->tensors()) {
      if (m.tensors_.count(t.name))
        return absl::InvalidArgumentError(absl::StrCat(m.files_[k]->path(), ": GGUF tensor '", t.name, "' is in two shards"));
      m.tensors_[t.name] = {k, &t};
    }
  return m;
}

absl::StatusOr<const GgufValue*> GgufModel::Find(const std::string& key, const char* want) const {
  auto it = metadata().find(key);
  if (it == metadata().end())
    return absl::NotFoundError(absl::StrCat(path_, ": GGUF metadata '", key, "' is missing (", want, " expected)"));
  return &it->second;
}

namespace {
absl::Status WrongType(const std::string& path, const std::string& key, const GgufValue& v, const char* want) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": GGUF metadata '", key, "' is ",
                                                 v.type == GgufValueType::kArray
                                                     ? absl::StrCat("an array of ", GgufValueTypeName(v.elem_type))
                                                     : std::string("a ") + GgufValueTypeName(v.type),
                                                 ", not ", want));
}
}  // namespace

absl::StatusOr<int64_t> GgufModel::Int(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "an integer"));
  if (!v->is_integer()) return WrongType(path_, key, *v, "an integer");
  return v->i;
}

absl::StatusOr<double> GgufModel::Float(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "a number"));
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  return WrongType(path_, key, *v, "a number");
}

absl::StatusOr<bool> GgufModel::Bool(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "a bool"));
  if (v->type != GgufValueType::kBool) return WrongType(path_, key, *v, "a bool");
  return v->b;
}

absl::StatusOr<std::string> GgufModel::String(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "a string"));
  if (v->type != GgufValueType::kString) return WrongType(path_, key, *v, "a string");
  return v->s;
}

absl::StatusOr<std::vector<std::string>> GgufModel::StringArray(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "an array of strings"));
  if (v->type != GgufValueType::kArray || v->elem_type != GgufValueType::kString)
    return WrongType(path_, key, *v, "an array of strings");
  std::vector<std::string> out;
  out.reserve(v->array.size());
  for (const GgufValue& e : v->array) out.push_back(e.s);
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufModel::IntArray(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "an array of integers"));
  if (v->type != GgufValueType::kArray || (!v->array.empty() && !v->array.front().is_integer()))
    return WrongType(path_, key, *v, "an array of integers");
  std::vector<int64_t> out;
  for (const GgufValue& e : v->array) out.push_back(e.i);
  return out;
}

absl::StatusOr<std::vector<double>> GgufModel::FloatArray(const std::string& key) const {
  ASSIGN_OR_RETURN(const GgufValue* v, Find(key, "an array of numbers"));
  if (v->type != GgufValueType::kArray || (!v->array.empty() && !v->array.front().is_float() && !v->array.front().is_integer()))
    return WrongType(path_, key, *v, "an array of numbers");
  std::vector<double> out;
  for (const GgufValue& e : v->array) out.push_back(e.is_float() ? e.f : static_cast<double>(e.i));
  return out;
}

absl::StatusOr<int64_t> GgufModel::IntOr(const std::string& key, int64_t fallback) const {
  return Has(key) ? Int(key) : fallback;
}
absl::StatusOr<double> GgufModel::FloatOr(const std::string& key, double fallback) const {
  return Has(key) ? Float(key) : fallback;
}
absl::StatusOr<bool> GgufModel::BoolOr(const std::string& key, bool fallback) const {
  return Has(key) ? Bool(key) : fallback;
}
absl::StatusOr<std::string> GgufModel::StringOr(const std::string& key, const std::string& fallback) const {
  return Has(key) ? String(key) : fallback;
}

absl::StatusOr<const GgufTensorInfo*> GgufModel::Tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat(path_, ": GGUF tensor '", name, "' is missing"));
  return it->second.second;
}

std::vector<std::string> GgufModel::TensorNames() const {
  std::vector<std::string> out;
  for (const auto& [name, where] : tensors_) out.push_back(name);
  return out;
}

const uint8_t* GgufModel::Data(const GgufTensorInfo& t) const {
  return files_[tensors_.at(t.name).first]->data(t);
}

}  // namespace strata
