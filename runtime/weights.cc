#include "runtime/weights.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/model/tensor_names.h"

namespace strata {
namespace {

// Copies `host` to the backend as `dtype` (float32 for vectors, the backend's MatrixDType for
// matrices).
absl::StatusOr<DeviceBuffer> Upload(Backend* backend, const std::vector<float>& host, DType dtype, int64_t* bytes) {
  const size_t size = host.size() * DTypeSize(dtype);
  ASSIGN_OR_RETURN(DeviceBuffer b, backend->Allocate(size));
  if (dtype == DType::kF32) {
    backend->CopyToDevice(b.get(), host.data(), size);
  } else {
    std::vector<uint8_t> converted(size);
    FromFloat(dtype, host.data(), converted.data(), host.size());
    backend->CopyToDevice(b.get(), converted.data(), size);
  }
  *bytes += static_cast<int64_t>(size);
  return b;
}

class Loader {
 public:
  Loader(const Checkpoint& c, const ModelSpec& s, Backend* b, TensorSlice t)
      : ckpt_(c), spec_(s), backend_(b), t_(t), matrix_dtype_(b->MatrixDType(s.torch_dtype)) {}
  DType matrix_dtype() const { return matrix_dtype_; }

  // Loads rows [r0, +rn) x columns [c0, +cn) of `name` (empty name: leaves `out` empty).
  absl::Status Load(const std::string& name, std::vector<int64_t> shape, DeviceBuffer* out, int64_t r0 = 0,
                    int64_t rn = -1, int64_t c0 = 0, int64_t cn = -1) {
    if (name.empty()) return absl::OkStatus();
    if (rn < 0) rn = shape[0];
    if (cn < 0) cn = shape.size() == 2 ? shape[1] : 1;
    ASSIGN_OR_RETURN(std::vector<float> host, ckpt_.ReadBlock(name, shape, r0, rn, c0, cn));
    ASSIGN_OR_RETURN(*out, Upload(backend_, host, shape.size() == 2 ? matrix_dtype_ : DType::kF32, &bytes_));
    return absl::OkStatus();
  }

  absl::Status LoadLayer(int l, LayerWeights* w) {
    const LayerTensorNames n = LayerNames(spec_, l);
    const int T = t_.size, r = t_.rank;
    const int64_t h = spec_.hidden_size, hs = spec_.head_dim, H = spec_.num_heads;
    const int nkv = spec_.layers[l].num_kv_heads;
    const int64_t Hl = H / T, kvl = KvHeadsPerRank(nkv, T), kv0 = FirstKvHeadOfRank(H, nkv, T, r);
    const int64_t q = H * hs, kv = int64_t{nkv} * hs, I = spec_.intermediate_size, Il = I / T;
    RETURN_IF_ERROR(Load(n.norm1_w, {h}, &w->norm1_w));
    RETURN_IF_ERROR(Load(n.norm1_b, {h}, &w->norm1_b));
    RETURN_IF_ERROR(Load(n.norm2_w, {h}, &w->norm2_w));
    RETURN_IF_ERROR(Load(n.norm2_b, {h}, &w->norm2_b));
    if (!n.qkv_w.empty()) {
      // Stock GPT-NeoX: rows are [H, 3, hs]; pick this slice's heads of Q, K and V (§1.2).
      std::vector<float> part[3], part_b[3];
      for (int which = 0; which < 3; ++which) {
        const int64_t first = which == 0 ? r * Hl : kv0, count = which == 0 ? Hl : kvl;
        for (int64_t head = first; head < first + count; ++head) {
          const int64_t row0 = (head * 3 + which) * hs;
          ASSIGN_OR_RETURN(std::vector<float> rows, ckpt_.ReadRows(n.qkv_w, {3 * q, h}, row0, hs));
          part[which].insert(part[which].end(), rows.begin(), rows.end());
          if (!n.qkv_b.empty()) {
            ASSIGN_OR_RETURN(std::vector<float> b, ckpt_.ReadRows(n.qkv_b, {3 * q}, row0, hs));
            part_b[which].insert(part_b[which].end(), b.begin(), b.end());
          }
        }
      }
      DeviceBuffer* dst_w[3] = {&w->q_w, &w->k_w, &w->v_w};
      DeviceBuffer* dst_b[3] = {&w->q_b, &w->k_b, &w->v_b};
      for (int which = 0; which < 3; ++which) {
        ASSIGN_OR_RETURN(*dst_w[which], Upload(backend_, part[which], matrix_dtype_, &bytes_));
        if (!n.qkv_b.empty()) {
          ASSIGN_OR_RETURN(*dst_b[which], Upload(backend_, part_b[which], DType::kF32, &bytes_));
        }
      }
    } else {
      RETURN_IF_ERROR(Load(n.q_w, {q, h}, &w->q_w, r * Hl * hs, Hl * hs));
      RETURN_IF_ERROR(Load(n.q_b, {q}, &w->q_b, r * Hl * hs, Hl * hs));
      RETURN_IF_ERROR(Load(n.k_w, {kv, h}, &w->k_w, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.k_b, {kv}, &w->k_b, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.v_w, {kv, h}, &w->v_w, kv0 * hs, kvl * hs));
      RETURN_IF_ERROR(Load(n.v_b, {kv}, &w->v_b, kv0 * hs, kvl * hs));
    }
    RETURN_IF_ERROR(Load(n.o_w, {h, q}, &w->o_w, 0, h, r * Hl * hs, Hl * hs));
    RETURN_IF_ERROR(Load(n.o_b, {h}, &w->o_b));
    if (!n.gate_w.empty()) {
      ASSIGN_OR_RETURN(std::vector<float> gate, ckpt_.ReadRows(n.gate_w, {I, h}, r * Il, Il));
      ASSIGN_OR_RETURN(std::vector<float> up, ckpt_.ReadRows(n.up_w, {I, h}, r * Il, Il));
      gate.insert(gate.end(), up.begin(), up.end());
      ASSIGN_OR_RETURN(w->up_w, Upload(backend_, gate, matrix_dtype_, &bytes_));
      if (!n.up_b.empty()) return absl::UnimplementedError("llama mlp_bias is not supported");
    } else {
      RETURN_IF_ERROR(Load(n.up_w, {I, h}, &w->up_w, r * Il, Il));
      RETURN_IF_ERROR(Load(n.up_b, {I}, &w->up_b, r * Il, Il));
    }
    RETURN_IF_ERROR(Load(n.down_w, {h, I}, &w->down_w, 0, h, r * Il, Il));
    RETURN_IF_ERROR(Load(n.down_b, {h}, &w->down_b));
    return absl::OkStatus();
  }

  int64_t bytes() const { return bytes_; }

 private:
  const Checkpoint& ckpt_;
  const ModelSpec& spec_;
  Backend* backend_;
  TensorSlice t_;
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
                                         TensorSlice slice, LayerRange range) {
  if (range.last < 0) range.last = spec.num_layers - 1;
  const bool first_stage = range.first == 0, last_stage = range.last == spec.num_layers - 1;
  RETURN_IF_ERROR(ValidateCheckpoint(ckpt, spec));
  const int T = slice.size;
  if (spec.num_heads % T != 0 || spec.intermediate_size % T != 0)
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism ", T, " must divide num_attention_heads (",
                                                   spec.num_heads, ") and intermediate_size (",
                                                   spec.intermediate_size, ")"));
  for (const LayerSpec& l : spec.layers)
    if (l.num_kv_heads % T != 0 && T % l.num_kv_heads != 0)
      return absl::InvalidArgumentError(absl::StrCat("tensor parallelism ", T, " and ", l.num_kv_heads,
                                                     " KV heads: one must divide the other"));
  Loader loader(ckpt, spec, backend, slice);
  ModelWeights w;
  const GlobalTensorNames g = GlobalNames(spec);
  const int64_t h = spec.hidden_size;
  // Vocabulary-parallel embedding and LM head: ceil(V/T) rows per slice, fewer on the last.
  const int64_t per = (spec.vocab_size + T - 1) / T;
  w.vocab_begin = static_cast<int>(std::min<int64_t>(slice.rank * per, spec.vocab_size));
  w.vocab_rows = static_cast<int>(std::min<int64_t>(per, spec.vocab_size - w.vocab_begin));
  w.vocab_rows_padded = static_cast<int>(per);
  if (first_stage || (last_stage && spec.tie_word_embeddings))
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
