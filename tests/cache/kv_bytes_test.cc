// KV bytes per token against the closed forms of the semantics document (§8), including its
// worked Pythia-160M and TinyLlama numbers, and against what the cache actually allocates.
#include <gtest/gtest.h>

#include "cache/kv_layout.h"
#include "cache/kv_storage.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/model/config.h"

namespace strata {
namespace {

ModelSpec Pythia160M(int m, int g) {
  nlohmann::json c = {{"model_type", "gpt_neox"}, {"hidden_size", 768}, {"num_attention_heads", 12},
                      {"num_hidden_layers", 12}, {"intermediate_size", 3072}, {"vocab_size", 50304}};
  if (m > 0) {
    c["num_key_value_layers"] = m;
    c["num_key_value_heads"] = g;
  }
  return ParseModelConfig(c.dump(), "pythia.json").value();
}

ModelSpec TinyLlama(const std::string& layer_types) {
  nlohmann::json c = {{"model_type", "lckv-llama"}, {"hidden_size", 2048}, {"num_attention_heads", 32},
                      {"num_key_value_heads", 4}, {"num_hidden_layers", 22}, {"intermediate_size", 5632},
                      {"vocab_size", 32000}};
  if (!layer_types.empty()) c["layer_types"] = layer_types;
  return ParseModelConfig(c.dump(), "tinyllama.json").value();
}

// §8, recomputed here from the layer map alone: the sum over layers that some layer reads
// (full-attention ones) of 2 * n_kv * head_dim * s.
int64_t KvBytesPerTokenFormula(const ModelSpec& spec, DType dtype) {
  int64_t total = 0;
  for (int p = 0; p < spec.num_layers; ++p) {
    bool read = false;
    for (int l = 0; l < spec.num_layers; ++l) read |= spec.layers[l].kv_source == p;
    if (read && spec.layers[p].window == 0)
      total += 2ll * spec.layers[p].num_kv_heads * spec.head_dim * static_cast<int64_t>(DTypeSize(dtype));
  }
  return total;
}

std::string Repeat(const std::string& tok, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "_" : "") + tok;
  return s;
}

TEST(KvBytes, Pythia160MWorkedNumbersFp16) {  // §8 table
  struct Row { int m, g; int64_t bytes; };
  for (Row r : {Row{0, 0, 36864}, Row{12, 4, 12288}, Row{4, 12, 12288}, Row{12, 1, 3072}, Row{4, 3, 3072},
                Row{6, 1, 1536}, Row{4, 1, 1024}, Row{2, 1, 512}, Row{1, 1, 256}}) {
    const ModelSpec s = Pythia160M(r.m, r.g);
    EXPECT_EQ(MakeKvLayout(s, DType::kF16, 16).bytes_per_token, r.bytes) << "m=" << r.m << " g=" << r.g;
    // The closed form MLKV(m, g) = 2 m g d s.
    const int m = r.m ? r.m : 12, g = r.g ? r.g : 12;
    EXPECT_EQ(r.bytes, 2ll * m * g * 64 * 2);
  }
}

TEST(KvBytes, TinyLlamaSchemesFp16) {  // §8: baseline 22,528; LCKV w=2 3,072; CLA2 11,264
  EXPECT_EQ(MakeKvLayout(TinyLlama(""), DType::kF16, 16).bytes_per_token, 22528);
  const std::string lckv2 = "0_" + Repeat("20", 20) + "_21";
  EXPECT_EQ(MakeKvLayout(TinyLlama(lckv2), DType::kF16, 16).bytes_per_token, 3072);
  std::string cla2;
  for (int l = 0; l < 22; ++l) cla2 += (l ? "_" : "") + std::to_string(l - l % 2);
  EXPECT_EQ(MakeKvLayout(TinyLlama(cla2), DType::kF16, 16).bytes_per_token, 11264);
  // LCKV(w) = 2 (w+1) n_kv d s with w = 4 warm-ups (sandwich).
  const std::string lckv4 = "0_1_" + Repeat("19", 18) + "_20_21";
  EXPECT_EQ(MakeKvLayout(TinyLlama(lckv4), DType::kF16, 16).bytes_per_token, 2 * 5 * 4 * 64 * 2);
}

TEST(KvBytes, YocoGlobalBankPlusBoundedWindows) {
  // §8 YOCO: 2 n_kv d s per token for the one global bank, plus (L/2) W 2 n_kv d s per sequence.
  std::string types;
  for (int l = 0; l < 11; ++l) types += std::to_string(l) + "s_";
  types += Repeat("11", 11);
  const ModelSpec s = TinyLlama(types);
  const KvLayout k = MakeKvLayout(s, DType::kBF16, 16);
  EXPECT_EQ(k.bytes_per_token, 2 * 4 * 64 * 2);
  EXPECT_EQ(k.bytes_per_sequence, 11ll * 4096 * 2 * 4 * 64 * 2);
}

TEST(KvBytes, FormulaAgreesWithLayoutAndStorageForEveryDtype) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const ModelSpec& s : {Pythia160M(0, 0), Pythia160M(5, 2), TinyLlama("0_" + Repeat("20", 20) + "_21")}) {
      const KvLayout k = MakeKvLayout(s, d, 16);
      EXPECT_EQ(k.bytes_per_token, KvBytesPerTokenFormula(s, d));
      auto backend = CreateBackend({});
      const KvCapacity cap = ComputeKvCapacity(k, 8 << 20, 4);
      auto storage = KvStorage::Create(backend->get(), k, cap);
      ASSERT_TRUE(storage.ok());
      // Only producers own memory: what is allocated is exactly blocks x block size x bytes/token.
      EXPECT_EQ(storage->allocated_bytes(), cap.num_blocks * 16 * k.bytes_per_token);
      EXPECT_LE(storage->allocated_bytes(), 8 << 20);
      EXPECT_GT(storage->allocated_bytes(), (8 << 20) - k.bytes_per_block());
    }
  }
}

}  // namespace
}  // namespace strata
