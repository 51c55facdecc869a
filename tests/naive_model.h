// File: tests/naive_model.h
// The test oracle: a naive, double-precision transformer written directly from
// ../shared/design/kv-sharing-semantics.md, sharing no model code with the engine. It reads
// config.json and the tensors by their Hugging Face names itself, derives the layer map itself
// (MLKV producer formula §1.2, layer_types §2.3, chain resolution §6.1), splits fused QKV itself,
// and keeps K/V in dense per-layer arrays (no pages, no banks, no step rows).
//
//   * FullForward: the no-cache forward over a whole sequence (models without upward edges).
//   * Prefill + Decode: the exact incremental function for models with upward edges: token by
//     token, or the iterative plan of §2.4 for prompts longer than m+b.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace strata::testing {

class NaiveModel {
 public:
  explicit NaiveModel(const std::string& model_dir);

  bool has_upward_edges() const;
  int vocab() const { return V_; }
  const std::vector<int>& kv_source() const { return src_; }

  // Logits of the last position of `tokens`, computed without any cache.
  std::vector<double> FullForward(const std::vector<int>& tokens);

  // Incremental API (state kept between calls).
  void Reset();
  std::vector<double> Prefill(const std::vector<int>& prompt);
  std::vector<double> Decode(int token);

 private:
  using Vec = std::vector<double>;
  struct Segment {
    int first, last;
    bool cyclic;
  };
  const std::vector<float>& W(const std::string& name) const;
  bool Has(const std::string& name) const { return w_.count(name) > 0; }
  // Runs `tokens` at positions start.. through the model; `iterate` selects the §2.4 plan.
  std::vector<double> Chunk(const std::vector<int>& tokens, int start, bool iterate);
  void Layer(int l, std::vector<Vec>& x, int start);
  Vec Norm(const Vec& x, const std::string& w, const std::string& b) const;
  Vec Linear(const Vec& x, const std::vector<float>& w, const std::vector<float>* b, int out) const;
  void Rope(double* v, int pos) const;
  std::vector<Segment> Segments() const;
  std::vector<double> Logits(const Vec& x) const;

  nlohmann::json cfg_;
  bool neox_ = false;
  int L_ = 0, D_ = 0, H_ = 0, hd_ = 0, I_ = 0, V_ = 0, rd_ = 0;
  double theta_ = 10000, eps_ = 1e-5;
  bool parallel_ = false, tie_ = false, gelu_tanh_ = false, fused_ = false;
  int m_ = 7, b_ = 2;
  bool use_sequential_ = false;
  std::vector<int> src_, window_, nkv_;
  std::vector<bool> mask_diag_;
  std::map<std::string, std::vector<float>> w_;

  // Dense K/V per producer layer, indexed by position: raw K, V (rotation applied on use).
  std::vector<std::vector<Vec>> k_, v_;
  int len_ = 0;
};

}  // namespace strata::testing
