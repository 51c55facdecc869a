// --quantization q8_0 / q4_1 (float checkpoints quantized at load, computed with 8-bit
// activations) on every sharing scheme (MHA, GQA, MQA, Pythia, MLKV, CLA, LCKV, YOCO), against the
// naive float oracle (tests/naive_model.h) run on a copy of the checkpoint whose matrices are the
// quantized blocks dequantized (a float recompute from the blocks), teacher-forced on the engine's
// own tokens: each chosen token is the oracle's argmax unless the oracle's best two are within
// kTie, and its logprob within kLogprobTol (what 8-bit activations move). Also: the quantizer's
// error is at most half a step per element, the loaded weights shrink as the format says, and an
// unknown format is refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

#include "runtime/base/dtype.h"
#include "runtime/base/packed_blocks.h"
#include "runtime/engine.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/ggml_blocks.h"
#include "tests/naive_model.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

constexpr double kTie = 0.3;
constexpr double kLogprobTol = 0.1;

// Q4_K (--quantization q4_k on rows of whole 256-element super-blocks): `v`'s rows quantized by
// QuantizeQ4K and read back by the GGUF reader's dequantizer (DequantizeGgml), each element
// within half a step of its sub-block's range plus what rounding the scale and min to 6 bits of
// the super-block's largest can add (at most 15 quants x d/2, and dmin/2).
void Q4KRoundTrip(const std::string& name, std::vector<float>& v) {
  std::vector<uint8_t> blocks(v.size() / 256 * 144);
  QuantizeQ4K(v.data(), static_cast<int64_t>(v.size()), blocks.data());
  std::vector<float> back(v.size());
  ASSERT_TRUE(DequantizeGgml(12, blocks.data(), static_cast<int64_t>(v.size()), back.data()).ok());
  for (size_t sb = 0; sb < v.size() / 256; ++sb) {
    uint16_t dh, mh;
    std::memcpy(&dh, &blocks[sb * 144], 2);
    std::memcpy(&mh, &blocks[sb * 144 + 2], 2);
    const float d = F16ToFloat(dh), dmin = F16ToFloat(mh);
    for (int j = 0; j < 8; ++j) {
      const float* x = &v[sb * 256 + 32 * j];
      const float lo = std::min(0.f, *std::min_element(x, x + 32)), hi = *std::max_element(x, x + 32);
      const float bound = 0.5f * (hi - lo) / 15 + 7.5f * d + 0.5f * dmin;
      for (int l = 0; l < 32; ++l)
        EXPECT_LE(std::fabs(back[sb * 256 + 32 * j + l] - x[l]), bound * 1.01f + 1e-6f) << name << " at " << sb * 256 + 32 * j + l;
    }
  }
  v = back;
}

// A copy of `dir` whose matrices are quantized as `--quantization format` does (rows of whole
// blocks of 32 into `packed`; q4_k's rows of whole super-blocks through Q4KRoundTrip) and
// dequantized again; checks the quantizer's error on the way.
std::string DequantizedCopy(const std::string& dir, const std::string& tag, const std::string& format,
                            const WeightFormat& packed) {
  const std::string out = TempDir(tag);
  for (const char* f : {"config.json", "tokenizer.json"}) {
    std::ifstream in(dir + "/" + f);
    std::ofstream(out + "/" + f) << in.rdbuf();
  }
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<TensorToWrite> tensors;
  for (const std::string& name : ckpt->Names()) {
    const TensorInfo* info = *ckpt->Info(name);
    std::vector<float> v = *ckpt->Read(name, info->shape);
    const int64_t cols = info->shape.size() == 2 ? info->shape[1] : 0;
    if (format == "q4_k" && cols > 0 && cols % 256 == 0) {
      Q4KRoundTrip(name, v);
    } else if (cols > 0 && cols % packed::kBlock == 0) {
      const int64_t rows = info->shape[0];
      std::vector<uint8_t> row_major(static_cast<size_t>(rows * cols / packed::kBlock * packed.block_bytes));
      QuantizeToPacked(v.data(), rows * cols, packed, row_major.data());
      std::vector<uint8_t> groups(static_cast<size_t>(packed.Bytes(rows, cols)));
      packed::InterleaveRows(packed.ggml_type, row_major.data(), rows, cols, groups.data());
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> back(static_cast<size_t>(cols));
        packed::DequantizeInterleavedRow(packed.ggml_type, groups.data(), r, cols, back.data());
        for (int64_t b = 0; b < cols / packed::kBlock; ++b) {
          float lo = 1e30f, hi = -1e30f;
          for (int j = 0; j < packed::kBlock; ++j) {
            lo = std::min(lo, v[r * cols + b * 32 + j]);
            hi = std::max(hi, v[r * cols + b * 32 + j]);
          }
          const float step = packed.ggml_type == WeightFormat::kPackedI8 ? std::max(hi, -lo) / 127 : (hi - lo) / 15;
          // Half a step, plus what rounding the scale and minimum to halves adds (2^-11 of them).
          const float halves = packed.ggml_type == WeightFormat::kPackedI8 ? 0.f : std::ldexp(std::fabs(lo), -11) / 15 * 16;
          for (int j = 0; j < packed::kBlock; ++j) {
            const int64_t at = r * cols + b * 32 + j;
            EXPECT_LE(std::fabs(back[b * 32 + j] - v[at]), 0.5f * step * 1.002f + halves + 1e-6f) << name << " element " << at;
            v[at] = back[b * 32 + j];
          }
        }
      }
    }
    TensorToWrite t{name, DType::kF32, info->shape, std::vector<uint8_t>(v.size() * 4)};
    std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
    tensors.push_back(std::move(t));
  }
  EXPECT_TRUE(WriteSafetensors(out + "/model.safetensors", tensors).ok());
  return out;
}

double LogSoftmaxAt(const std::vector<double>& logits, int token) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (double v : logits) s += std::exp(v - mx);
  return logits[token] - mx - std::log(s);
}

// Teacher-forced on the engine's own greedy tokens for three prompts: each token is the oracle's
// argmax unless the oracle's best two are within kTie, its logprob within kLogprobTol. Returns
// the tokens compared.
int ExpectNearOracle(Engine& engine, NaiveModel& oracle, const std::string& name) {
  int compared = 0;
  for (int len : {1, 6, 13}) {
    GenerationRequest r;
    for (int i = 0; i < len; ++i) r.prompt.push_back((i * 37 + len * 11) % 290);
    r.max_tokens = 6;
    r.ignore_eos = true;
    auto out = engine.Generate({r});
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return compared;
    std::vector<int> seq = r.prompt;
    std::vector<double> logits;
    if (oracle.has_upward_edges()) logits = oracle.Prefill(seq);
    for (size_t k = 0; k < (*out)[0].tokens.size(); ++k, ++compared) {
      if (!oracle.has_upward_edges()) logits = oracle.FullForward(seq);
      const int tok = (*out)[0].tokens[k];
      const int best = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      const std::string what = name + " prompt " + std::to_string(len) + " step " + std::to_string(k);
      if (tok != best) EXPECT_LT(LogSoftmaxAt(logits, best) - LogSoftmaxAt(logits, tok), kTie) << what;
      EXPECT_NEAR((*out)[0].logprobs[k], LogSoftmaxAt(logits, tok), kLogprobTol) << what;
      seq.push_back(tok);
      if (oracle.has_upward_edges() && k + 1 < (*out)[0].tokens.size()) logits = oracle.Decode(tok);
    }
  }
  return compared;
}

TEST(QuantizeOnLoad, EverySchemeStaysNearTheFloatOracle) {
  for (const SchemeCase& scheme : AllSchemes()) {
    const std::string dir = MakeModel("quantize-" + scheme.name, scheme.options, "float32");
    EngineOptions base;
    base.kv_dtype = "float32";
    base.kv_memory_bytes = 64 << 20;
    base.block_size = 4;
    base.max_seqs = 4;
    auto plain = Engine::Create(dir, base);
    ASSERT_TRUE(plain.ok()) << plain.status();
    // (format, its layout, most bytes as a fraction of float32's)
    for (const auto& [format, layout, fraction] :
         {std::tuple<const char*, WeightFormat, double>{"q8_0", WeightFormat::PackedI8(), 0.4},
          {"q4_1", WeightFormat::PackedU4(), 0.3}}) {
      NaiveModel oracle(DequantizedCopy(dir, "quantize-" + scheme.name + "-" + format, format, layout));
      EngineOptions o = base;
      o.quantization = format;
      auto engine = Engine::Create(dir, o);
      ASSERT_TRUE(engine.ok()) << scheme.name << " " << format << ": " << engine.status();
      EXPECT_LT((*engine)->weight_bytes(), fraction * (*plain)->weight_bytes()) << scheme.name << " " << format;
      EXPECT_EQ(ExpectNearOracle(**engine, oracle, scheme.name + " " + format), 18);
    }
  }
}

// q4_k on models whose rows are whole super-blocks (hidden 256, MLP 768 and 1024; the vocabulary
// rows of the LM head too) and one whose attention rows are not (hidden 96: those take q4_1).
TEST(QuantizeOnLoad, Q4KStaysNearTheOracleOfItsOwnBlocks) {
  std::vector<SchemeCase> cases = {AllSchemes()[1], AllSchemes()[5]};  // GQA llama, MLKV gpt_neox
  for (SchemeCase& c : cases) {
    c.options.hidden = 256;
    c.name += "-wide";
  }
  SchemeCase narrow = AllSchemes()[1];
  narrow.options.hidden = 96;
  narrow.options.intermediate = 256;
  narrow.name += "-narrow";
  cases.push_back(narrow);
  for (const SchemeCase& scheme : cases) {
    const std::string dir = MakeModel("quantize-q4k-" + scheme.name, scheme.options, "float32");
    NaiveModel oracle(DequantizedCopy(dir, "quantize-q4k-" + scheme.name + "-copy", "q4_k", WeightFormat::PackedU4()));
    EngineOptions o;
    o.kv_dtype = "float32";
    o.kv_memory_bytes = 64 << 20;
    o.block_size = 4;
    o.max_seqs = 4;
    o.quantization = "q4_k";
    auto engine = Engine::Create(dir, o);
    ASSERT_TRUE(engine.ok()) << scheme.name << ": " << engine.status();
    EXPECT_EQ(ExpectNearOracle(**engine, oracle, scheme.name + " q4_k"), 18);
  }
}

TEST(QuantizeOnLoad, AnUnknownFormatIsRefusedByName) {
  const std::string dir = MakeModel("quantize-unknown", AllSchemes()[0].options, "float32");
  EngineOptions o;
  o.kv_memory_bytes = 16 << 20;
  o.quantization = "q3_xs";
  auto engine = Engine::Create(dir, o);
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("q3_xs"), std::string::npos) << engine.status();
}

}  // namespace
}  // namespace strata::testing
