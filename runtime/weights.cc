#include "runtime/weights.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/base/packed_blocks.h"
#include "runtime/model/ggml_blocks.h"
#include "runtime/model/tensor_roles.h"

namespace strata {
namespace {

// Where checkpoint bytes are written on their way to the backend: straight into the backend's
// buffer when its memory is host memory (the CPU), else into a host buffer copied over once.
class UploadTarget {
 public:
  UploadTarget(Backend* backend, size_t bytes) : backend_(backend), bytes_(bytes) {}
  absl::Status Init() {
    ASSIGN_OR_RETURN(buffer_, backend_->Allocate(bytes_));
    if (!backend_->host_addressable()) staging_.resize(bytes_);
    return absl::OkStatus();
  }
  // Host address of byte `offset`.
  void* at(size_t offset) {
    char* base = staging_.empty() ? static_cast<char*>(buffer_.get()) : reinterpret_cast<char*>(staging_.data());
    return base + offset;
  }
  DeviceBuffer Finish(int64_t* bytes) {
    if (!staging_.empty()) backend_->CopyToDevice(buffer_.get(), staging_.data(), bytes_);
    *bytes += static_cast<int64_t>(bytes_);
    return std::move(buffer_);
  }

 private:
  Backend* backend_;
  size_t bytes_;
  DeviceBuffer buffer_;
  std::vector<uint8_t> staging_;
};

class Loader {
 public:
  Loader(const Checkpoint& c, Backend* b, const WeightFormats& f) : ckpt_(c), backend_(b), formats_(f) {}

  // One buffer of the slice list: each part's block converted to the buffer's format, one
  // after the other.
  absl::Status Load(const WeightSlice& s, Weight* out) {
    const WeightFormat f = out->format = formats_.Of(s);
    if (!backend_->ComputesWith(f))
      return absl::UnimplementedError(absl::StrCat("the ", backend_->name(), " backend keeps no ", f.Name(), " weights"));
    UploadTarget target(backend_, static_cast<size_t>(f.Bytes(s.rows, s.cols)));
    RETURN_IF_ERROR(target.Init());
    auto stored_plain = [&](const std::string& tensor) {
      auto info = ckpt_.Info(tensor);
      return info.ok() && (*info)->format.plain();
    };
    // Packed formats: rows of blocks first (in `row_major`), interleaved in groups of 8 at the end.
    std::vector<uint8_t> row_major(f.packed() ? static_cast<size_t>(s.rows * (s.cols / f.block_elems) * f.block_bytes) : 0);
    size_t at = 0;
    for (const SlicePart& p : s.parts) {
      if (f.packed() && !stored_plain(p.tensor)) {
        RETURN_IF_ERROR(ckpt_.CopyPacked(p.tensor, p.tensor_shape, p.rows.first, p.rows.count, p.cols.first,
                                         p.cols.count, row_major.data() + at));
      } else if (f.packed()) {  // --quantization: floats first, then blocks
        std::vector<float> rows(static_cast<size_t>(p.rows.count * p.cols.count));
        RETURN_IF_ERROR(ckpt_.CopyBlock(p.tensor, p.tensor_shape, p.rows.first, p.rows.count, p.cols.first,
                                        p.cols.count, DType::kF32, rows.data()));
        RETURN_IF_ERROR(QuantizeFloatsAs(formats_.quantize_as.at(p.tensor), rows.data(),
                                         static_cast<int64_t>(rows.size()), row_major.data() + at));
      } else
        RETURN_IF_ERROR(ckpt_.CopyBlock(p.tensor, p.tensor_shape, p.rows.first, p.rows.count, p.cols.first,
                                        p.cols.count, f.dtype, target.at(at)));
      at += static_cast<size_t>(p.rows.count * (p.cols.count / f.block_elems) * f.block_bytes);
    }
    if (f.packed()) packed::InterleaveRows(f.ggml_type, row_major.data(), s.rows, s.cols, target.at(0));
    out->data = target.Finish(&bytes_);
    return absl::OkStatus();
  }

  // A buffer of one whole-width block used where it lies in the checkpoint's mapping when the
  // backend can read it there (host memory, stored as the buffer's format, rows in place), else
  // loaded like any other.
  absl::Status LoadInPlace(const WeightSlice& s, Weight* out) {
    const SlicePart& p = s.parts.front();
    auto rows = ckpt_.MappedRows(p.tensor, p.tensor_shape, p.rows.first, p.rows.count, formats_.Of(s));
    if (s.parts.size() != 1 || !backend_->host_addressable() || !rows.ok()) return Load(s, out);
    out->format = formats_.Of(s);
    const size_t bytes = static_cast<size_t>(out->format.Bytes(s.rows, s.cols));
    out->data = DeviceBuffer(nullptr, const_cast<void*>(*rows), bytes);  // no owner: never freed, only unmapped
    bytes_ += static_cast<int64_t>(bytes);
    return absl::OkStatus();
  }

  int64_t bytes() const { return bytes_; }

 private:
  const Checkpoint& ckpt_;
  Backend* backend_;
  const WeightFormats& formats_;
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

Weight* ModelWeights::Slot(WeightSlot slot, int layer) {
  if (layer < 0) {
    switch (slot) {
      case WeightSlot::kEmbed: return &embed;
      case WeightSlot::kLmHead: return &lm_head;
      case WeightSlot::kFinalNorm: return &final_norm_w;
      case WeightSlot::kFinalNormBias: return &final_norm_b;
      default: return nullptr;
    }
  }
  LayerWeights& w = layers[layer];
  switch (slot) {
    case WeightSlot::kNorm1: return &w.norm1_w;
    case WeightSlot::kNorm1Bias: return &w.norm1_b;
    case WeightSlot::kNorm2: return &w.norm2_w;
    case WeightSlot::kNorm2Bias: return &w.norm2_b;
    case WeightSlot::kQ: return &w.q_w;
    case WeightSlot::kQBias: return &w.q_b;
    case WeightSlot::kK: return &w.k_w;
    case WeightSlot::kKBias: return &w.k_b;
    case WeightSlot::kV: return &w.v_w;
    case WeightSlot::kVBias: return &w.v_b;
    case WeightSlot::kO: return &w.o_w;
    case WeightSlot::kOBias: return &w.o_b;
    case WeightSlot::kUp: return &w.up_w;
    case WeightSlot::kUpBias: return &w.up_b;
    case WeightSlot::kDown: return &w.down_w;
    case WeightSlot::kDownBias: return &w.down_b;
    default: return nullptr;
  }
}

namespace {

// What --quantization makes of a float matrix with `cols` columns: the ggml type whose quantizer
// runs (0: none) and the block it needs the columns in. q4_k's 256-element super-blocks fall back
// to Q4_1's 32 where a row is not whole super-blocks (as llama-quantize falls back on such rows).
struct QuantizeRule {
  uint32_t ggml_type = 0;
  int block = 0;
};
QuantizeRule QuantizeRuleFor(const std::string& quantization, int64_t cols) {
  if (quantization == "q8_0" && cols % 32 == 0) return {8, 32};
  if (quantization == "q4_1" && cols % 32 == 0) return {3, 32};
  if (quantization == "q4_k" && cols % 256 == 0) return {12, 256};
  if (quantization == "q4_k" && cols % 32 == 0) return {3, 32};
  return {};
}

}  // namespace

absl::StatusOr<WeightFormats> LoadedWeightFormats(const Checkpoint& ckpt, const Backend& backend, bool keep_packed,
                                                  const std::string& quantization) {
  const std::string q = quantization == "none" ? "" : quantization;
  if (!q.empty() && q != "q8_0" && q != "q4_1" && q != "q4_k")
    return absl::InvalidArgumentError(absl::StrCat("--quantization '", quantization, "' is not one of none, q8_0, q4_1, q4_k"));
  const WeightFormat quantize_to = q == "q8_0" ? WeightFormat::PackedI8() : WeightFormat::PackedU4();
  if (!q.empty() && !backend.ComputesWith(quantize_to))
    return absl::UnimplementedError(absl::StrCat("--quantization ", quantization, ": the ", backend.name(),
                                                 " backend has no kernels for it"));
  WeightFormats f;
  const DType for_blocks = backend.MatrixDType(DType::kF32);
  f.joined = WeightFormat::Plain(for_blocks);
  for (const std::string& name : ckpt.Names()) {
    auto info = ckpt.Info(name);
    if (!info.ok()) continue;
    const WeightFormat& stored = (*info)->format;
    const WeightFormat packed = stored.plain() ? stored : PackedFormatFor(stored.ggml_type);
    const std::vector<int64_t>& shape = (*info)->shape;
    const QuantizeRule rule = stored.plain() && shape.size() == 2 ? QuantizeRuleFor(q, shape[1]) : QuantizeRule{};
    if (keep_packed && packed.packed() && backend.ComputesWith(packed)) {
      f.by_tensor[name] = packed;
      f.stored_block_elems[name] = stored.block_elems;
    } else if (rule.ggml_type != 0) {
      f.by_tensor[name] = PackedFormatFor(rule.ggml_type);  // quantized on load, each row in blocks
      f.stored_block_elems[name] = rule.block;
      f.quantize_as[name] = rule.ggml_type;
    } else {
      f.by_tensor[name] = WeightFormat::Plain(stored.plain() ? backend.MatrixDType(stored.dtype) : for_blocks);
    }
  }
  return f;
}

absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& ckpt, const ModelSpec& spec, Backend* backend,
                                         const ParallelLayout& parallel, int rank, const WeightFormats& formats) {
  if (!parallel.has_stages() || rank < 0 || rank >= parallel.world_size())
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " has no place in the parallel layout"));
  const LayerSpan range = parallel.stage_layers(parallel.stage_of(rank));
  const int slice = parallel.slice_of(rank);
  RETURN_IF_ERROR(ValidateCheckpoint(ckpt, spec));
  Loader loader(ckpt, backend, formats);
  ModelWeights w;
  w.layers.resize(spec.num_layers);
  const IndexRange vocab = parallel.vocab_rows(slice);
  w.vocab_begin = static_cast<int>(vocab.first);
  w.vocab_rows = static_cast<int>(vocab.count);
  w.vocab_rows_padded = static_cast<int>(parallel.vocab_rows_padded());
  for (const WeightSlice& s : parallel.SliceWeights(spec, range.first, range.last, slice)) {
    Weight* to = w.Slot(s.slot, s.layer);
    if (to == nullptr) return absl::InternalError("a weight slice has no buffer");
    // An untied embedding is read one row per token: it stays in the mapping (no copy, and only
    // the rows tokens touch become resident). Tied, it is also the LM head, streamed every step,
    // and gets backend memory (huge pages on the CPU) like every other matrix.
    if (s.slot == WeightSlot::kEmbed && !spec.tie_word_embeddings)
      RETURN_IF_ERROR(loader.LoadInPlace(s, to));
    else
      RETURN_IF_ERROR(loader.Load(s, to));
  }
  w.bytes = loader.bytes();
  return w;
}

}  // namespace strata
