#include "runtime/weights.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/model/tensor_names.h"

namespace strata {
namespace {

// Where checkpoint bytes are written on their way to the backend: straight into the backend's
// buffer when its memory is host memory (the CPU), else into a host buffer copied over once.
class UploadTarget {
 public:
  UploadTarget(Backend* backend, DType dtype, size_t elements)
      : backend_(backend), dtype_(dtype), bytes_(elements * DTypeSize(dtype)) {}
  absl::Status Init() {
    ASSIGN_OR_RETURN(buffer_, backend_->Allocate(bytes_));
    if (!backend_->host_addressable()) staging_.resize(bytes_);
    return absl::OkStatus();
  }
  DType dtype() const { return dtype_; }
  // Host address of element `i`.
  void* at(size_t i) {
    char* base = staging_.empty() ? static_cast<char*>(buffer_.get()) : reinterpret_cast<char*>(staging_.data());
    return base + i * DTypeSize(dtype_);
  }
  DeviceBuffer Finish(int64_t* bytes) {
    if (!staging_.empty()) backend_->CopyToDevice(buffer_.get(), staging_.data(), bytes_);
    *bytes += static_cast<int64_t>(bytes_);
    return std::move(buffer_);
  }

 private:
  Backend* backend_;
  DType dtype_;
  size_t bytes_;
  DeviceBuffer buffer_;
  std::vector<uint8_t> staging_;
};

class Loader {
 public:
  Loader(const Checkpoint& c, const ModelSpec& s, Backend* b, const ParallelLayout& p, int slice)
      : ckpt_(c), spec_(s), backend_(b), p_(p), slice_(slice), matrix_dtype_(b->MatrixDType(s.torch_dtype)) {}
  DType matrix_dtype() const { return matrix_dtype_; }

  // Matrices in the backend's MatrixDType, vectors (norms, biases) in float32.
  DType DTypeFor(const std::vector<int64_t>& shape) const { return shape.size() == 2 ? matrix_dtype_ : DType::kF32; }

  // Loads rows [r0, +rn) x columns [c0, +cn) of `name` (empty name: leaves `out` empty).
  absl::Status Load(const std::string& name, std::vector<int64_t> shape, DeviceBuffer* out, int64_t r0 = 0,
                    int64_t rn = -1, int64_t c0 = 0, int64_t cn = -1) {
    if (name.empty()) return absl::OkStatus();
    if (rn < 0) rn = shape[0];
    if (cn < 0) cn = shape.size() == 2 ? shape[1] : 1;
    UploadTarget target(backend_, DTypeFor(shape), static_cast<size_t>(rn * cn));
    RETURN_IF_ERROR(target.Init());
    RETURN_IF_ERROR(ckpt_.CopyBlock(name, shape, r0, rn, c0, cn, target.dtype(), target.at(0)));
    *out = target.Finish(&bytes_);
    return absl::OkStatus();
  }

  // Rows [r0, +rn) of a matrix used where it lies in the checkpoint's mapping when the backend
  // can read it there (host memory, the same dtype), else loaded like any other.
  absl::Status LoadInPlace(const std::string& name, std::vector<int64_t> shape, DeviceBuffer* out, int64_t r0,
                           int64_t rn) {
    DType stored;
    ASSIGN_OR_RETURN(const void* rows, ckpt_.MappedRows(name, shape, r0, rn, &stored));
    if (!backend_->host_addressable() || stored != matrix_dtype_ || ckpt_.in_memory()) return Load(name, shape, out, r0, rn);
    const size_t bytes = static_cast<size_t>(rn * shape[1]) * DTypeSize(stored);
    *out = DeviceBuffer(nullptr, const_cast<void*>(rows), bytes);  // no owner: never freed, only unmapped
    bytes_ += static_cast<int64_t>(bytes);
    return absl::OkStatus();
  }

  // Several row ranges {name, shape, first row, rows} of whole rows, one after the other in one
  // buffer (this slice's heads of a fused QKV tensor; SwiGLU's gate and up).
  struct Rows {
    const std::string* name;
    std::vector<int64_t> shape;
    int64_t first, count;
  };
  absl::Status LoadConcatenated(const std::vector<Rows>& parts, DeviceBuffer* out) {
    const int64_t cols = parts[0].shape.size() == 2 ? parts[0].shape[1] : 1;
    int64_t rows = 0;
    for (const Rows& p : parts) rows += p.count;
    UploadTarget target(backend_, DTypeFor(parts[0].shape), static_cast<size_t>(rows * cols));
    RETURN_IF_ERROR(target.Init());
    size_t at = 0;
    for (const Rows& p : parts) {
      RETURN_IF_ERROR(ckpt_.CopyBlock(*p.name, p.shape, p.first, p.count, 0, cols, target.dtype(), target.at(at)));
      at += static_cast<size_t>(p.count * cols);
    }
    *out = target.Finish(&bytes_);
    return absl::OkStatus();
  }

  absl::Status LoadLayer(int l, LayerWeights* w) {
    const LayerTensorNames n = LayerNames(spec_, l);
    const int64_t h = spec_.hidden_size, hs = spec_.head_dim, H = spec_.num_heads;
    const int nkv = spec_.layers[l].num_kv_heads;
    const IndexRange heads = p_.query_heads(slice_), kv_heads = p_.kv_heads(nkv, slice_), cols = p_.mlp_columns(slice_);
    const int64_t q0 = heads.first, Hl = heads.count, kv0 = kv_heads.first, kvl = kv_heads.count;
    const int64_t q = H * hs, kv = int64_t{nkv} * hs, I = spec_.intermediate_size, i0 = cols.first, Il = cols.count;
    RETURN_IF_ERROR(Load(n.norm1_w, {h}, &w->norm1_w));
    RETURN_IF_ERROR(Load(n.norm1_b, {h}, &w->norm1_b));
    RETURN_IF_ERROR(Load(n.norm2_w, {h}, &w->norm2_w));
    RETURN_IF_ERROR(Load(n.norm2_b, {h}, &w->norm2_b));
    if (!n.qkv_w.empty()) {
      // Stock GPT-NeoX: rows are [H, 3, hs]; pick this slice's heads of Q, K and V (§1.2).
      DeviceBuffer* dst_w[3] = {&w->q_w, &w->k_w, &w->v_w};
      DeviceBuffer* dst_b[3] = {&w->q_b, &w->k_b, &w->v_b};
      for (int which = 0; which < 3; ++which) {
        const int64_t first = which == 0 ? q0 : kv0, count = which == 0 ? Hl : kvl;
        std::vector<Rows> weight_rows, bias_rows;
        for (int64_t head = first; head < first + count; ++head) {
          const int64_t row0 = (head * 3 + which) * hs;
          weight_rows.push_back({&n.qkv_w, {3 * q, h}, row0, hs});
          bias_rows.push_back({&n.qkv_b, {3 * q}, row0, hs});
        }
        RETURN_IF_ERROR(LoadConcatenated(weight_rows, dst_w[which]));
        if (!n.qkv_b.empty()) RETURN_IF_ERROR(LoadConcatenated(bias_rows, dst_b[which]));
      }
    } else {
      RETURN_IF_ERROR(Load(n.q_w, {q, h}, &w->q_w, q0 * hs, Hl * hs));
      RETURN_IF_ERROR(Load(n.q_b, {q}, &w->q_b, q0 * hs, Hl * hs));
      RETURN_IF_ERROR(Load(n.k_w, {kv, h}, &w->k_w, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.k_b, {kv}, &w->k_b, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.v_w, {kv, h}, &w->v_w, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.v_b, {kv}, &w->v_b, kv0 * hs, kvl * hs));
    }
    RETURN_IF_ERROR(Load(n.o_w, {h, q}, &w->o_w, 0, h, q0 * hs, Hl * hs));
    RETURN_IF_ERROR(Load(n.o_b, {h}, &w->o_b));
    if (!n.gate_w.empty()) {
      RETURN_IF_ERROR(LoadConcatenated({{&n.gate_w, {I, h}, i0, Il}, {&n.up_w, {I, h}, i0, Il}}, &w->up_w));
      if (!n.up_b.empty()) return absl::UnimplementedError("llama mlp_bias is not supported");
    } else {
      RETURN_IF_ERROR(Load(n.up_w, {I, h}, &w->up_w, i0, Il));
      RETURN_IF_ERROR(Load(n.up_b, {I}, &w->up_b, i0, Il));
    }
    RETURN_IF_ERROR(Load(n.down_w, {h, I}, &w->down_w, 0, h, i0, Il));
    RETURN_IF_ERROR(Load(n.down_b, {h}, &w->down_b));
    return absl::OkStatus();
  }

  int64_t bytes() const { return bytes_; }

 private:
  const Checkpoint& ckpt_;
  const ModelSpec& spec_;
  Backend* backend_;
  const ParallelLayout& p_;
  int slice_;
  DType matrix_dtype_;
  int64_t bytes_ = 0;
};

}  // namespace

absl::Status ValidateCheckpoint(const Checkpoint& ckpt, const ModelSpec& spec) {
  std::set<std::string> expected;
  for (const TensorDecl& t : ExpectedTensors(spec)) {
    expected.insert(t.name);
    auto info = ckpt.Info(t.name);
    if (!info.ok())
      return absl::NotFoundError(absl::StrCat("checkpoint is missing tensor '", t.name, "' (shape ",
                                              ShapeString(t.shape), ")"));
    if ((*info)->shape != t.shape)
      return absl::InvalidArgumentError(absl::StrCat(ckpt.FileOf(t.name), ": tensor '", t.name,
                                                     "' has shape ", ShapeString((*info)->shape),
                                                     ", expected ", ShapeString(t.shape)));
  }
  for (const std::string& name : ckpt.Names())
    if (!expected.count(name) && !IsIgnorableTensor(spec, name))
      return absl::InvalidArgumentError(absl::StrCat(ckpt.FileOf(name), ": unexpected tensor '", name,
                                                     "' for a ", spec.model_type, " model with ",
                                                     spec.num_layers, " layers"));
  return absl::OkStatus();
}

absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend,
                                         const ParallelLayout& parallel, int rank) {
  if (!parallel.has_stages() || rank < 0 || rank >= parallel.world_size())
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " has no place in the parallel layout"));
  const LayerSpan range = parallel.stage_layers(parallel.stage_of(rank));
  const int slice = parallel.slice_of(rank);
  const bool first_stage = range.first == 0, last_stage = range.last == spec.num_layers - 1;
  RETURN_IF_ERROR(ValidateCheckpoint(ckpt, spec));
  Loader loader(ckpt, spec, backend, parallel, slice);
  ModelWeights w;
  const GlobalTensorNames g = GlobalNames(spec);
  const int64_t h = spec.hidden_size;
  // Vocabulary-parallel embedding and LM head.
  const IndexRange vocab = parallel.vocab_rows(slice);
  w.vocab_begin = static_cast<int>(vocab.first);
  w.vocab_rows = static_cast<int>(vocab.count);
  w.vocab_rows_padded = static_cast<int>(parallel.vocab_rows_padded());
  // An untied embedding is read one row per token: it stays in the mapping (no copy, and only
  // the rows tokens touch become resident). Tied, it is also the LM head, streamed every step,
  // and gets backend memory (huge pages on the CPU) like every other matrix.
  if (first_stage && !spec.tie_word_embeddings)
    RETURN_IF_ERROR(loader.LoadInPlace(g.embed, {spec.vocab_size, h}, &w.embed, w.vocab_begin, w.vocab_rows));
  else if (first_stage || (last_stage && spec.tie_word_embeddings))
    RETURN_IF_ERROR(loader.Load(g.embed, {spec.vocab_size, h}, &w.embed, w.vocab_begin, w.vocab_rows));
  if (last_stage) {
    RETURN_IF_ERROR(loader.Load(g.final_norm_w, {h}, &w.final_norm_w));
    RETURN_IF_ERROR(loader.Load(g.final_norm_b, {h}, &w.final_norm_b));
    if (!spec.tie_word_embeddings)
      RETURN_IF_ERROR(loader.Load(g.lm_head, {spec.vocab_size, h}, &w.lm_head, w.vocab_begin, w.vocab_rows));
  }
  w.layers.resize(spec.num_layers);
  for (int l = range.first; l <= range.last; ++l) RETURN_IF_ERROR(loader.LoadLayer(l, &w.layers[l]));
  w.bytes = loader.bytes();
  w.matrix_dtype = loader.matrix_dtype();
  return w;
}

}  // namespace strata
