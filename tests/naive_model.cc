#include "tests/naive_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "runtime/model/checkpoint.h"

namespace strata::testing {
namespace {

[[noreturn]] void Die(const std::string& m) {
  std::cerr << "NaiveModel: " << m << "\n";
  std::abort();
}

template <class T>
T Get(const nlohmann::json& j, const char* k, T dflt) {
  return j.contains(k) && !j[k].is_null() ? j[k].get<T>() : dflt;
}

}  // namespace

NaiveModel::NaiveModel(const std::string& dir) {
  std::ifstream in(dir + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  cfg_ = nlohmann::json::parse(ss.str());
  const std::string mt = cfg_["model_type"];
  neox_ = mt.rfind("gpt_neox", 0) == 0;
  L_ = cfg_["num_hidden_layers"];
  D_ = cfg_["hidden_size"];
  H_ = cfg_["num_attention_heads"];
  hd_ = Get<int>(cfg_, "head_dim", D_ / H_);
  I_ = cfg_["intermediate_size"];
  V_ = cfg_["vocab_size"];
  tie_ = Get<bool>(cfg_, "tie_word_embeddings", false);
  src_.resize(L_);
  window_.assign(L_, 0);
  mask_diag_.assign(L_, false);
  if (neox_) {
    eps_ = Get<double>(cfg_, "layer_norm_eps", 1e-5);
    parallel_ = Get<bool>(cfg_, "use_parallel_residual", true);
    gelu_tanh_ = Get<std::string>(cfg_, "hidden_act", "gelu") != "gelu";
    rd_ = static_cast<int>(hd_ * Get<double>(cfg_, "rotary_pct", 0.25));
    theta_ = Get<double>(cfg_, "rotary_emb_base", 10000);
    const int m = Get<int>(cfg_, "num_key_value_layers", L_);
    nkv_.assign(L_, Get<int>(cfg_, "num_key_value_heads", H_));
    fused_ = !cfg_.contains("num_key_value_layers");
    std::vector<int> kvl = {0};  // §1.2, float division then truncation
    for (int i = 0; i < m - 1; ++i) kvl.push_back(static_cast<int>((i + 1) * (static_cast<double>(L_) / m)));
    for (int l = 0; l < L_; ++l)
      for (int p : kvl)
        if (p <= l) src_[l] = p;
  } else {
    eps_ = Get<double>(cfg_, "rms_norm_eps", 1e-6);
    rd_ = hd_;
    theta_ = Get<double>(cfg_, "rope_theta", 10000);
    nkv_.assign(L_, Get<int>(cfg_, "num_key_value_heads", H_));
    m_ = Get<int>(cfg_, "forward_passes", 7);
    b_ = Get<int>(cfg_, "backward_passes", 2);
    use_sequential_ = Get<bool>(cfg_, "use_sequential", false);
    const bool nodiag = Get<bool>(cfg_, "force_nodiag", false);
    const int W = Get<int>(cfg_, "sliding_window", 4096);
    std::string lt = Get<std::string>(cfg_, "layer_types", "");
    for (int l = 0; l < L_; ++l) src_[l] = l;
    if (!lt.empty()) {
      std::stringstream ts(lt);
      std::string tok;
      for (int l = 0; std::getline(ts, tok, '_'); ++l) {
        if (tok.back() == 's') {
          window_[l] = W;
          tok.pop_back();
        }
        src_[l] = std::stoi(tok);
      }
    }
    for (int l = 0; l < L_; ++l) {
      while (src_[src_[l]] != src_[l]) src_[l] = src_[src_[l]];  // chains to the root
      mask_diag_[l] = nodiag || src_[l] > l;  // v2 rule (§2.3)
    }
  }
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) Die(std::string(ckpt.status().message()));
  for (const std::string& name : ckpt->Names()) {
    auto info = ckpt->Info(name);
    auto data = ckpt->Read(name, (*info)->shape);
    if (!data.ok()) Die(std::string(data.status().message()));
    w_[name] = std::move(*data);
  }
  Reset();
}

bool NaiveModel::has_upward_edges() const {
  for (int l = 0; l < L_; ++l)
    if (src_[l] > l) return true;
  return false;
}

const std::vector<float>& NaiveModel::W(const std::string& name) const {
  auto it = w_.find(name);
  if (it == w_.end()) Die("missing tensor " + name);
  return it->second;
}

void NaiveModel::Reset() {
  k_.assign(L_, {});
  v_.assign(L_, {});
  len_ = 0;
}

NaiveModel::Vec NaiveModel::Norm(const Vec& x, const std::string& w, const std::string& b) const {
  const auto& g = W(w);
  Vec y(x.size());
  if (neox_) {
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= x.size();
    for (double v : x) var += (v - mean) * (v - mean);
    var /= x.size();
    const auto& bias = W(b);
    for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps_) * g[i] + bias[i];
  } else {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double inv = 1 / std::sqrt(ss / x.size() + eps_);
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
  }
  return y;
}

NaiveModel::Vec NaiveModel::Linear(const Vec& x, const std::vector<float>& w, const std::vector<float>* b,
                                   int out) const {
  Vec y(out);
  const size_t in = x.size();
  for (int o = 0; o < out; ++o) {
    double s = b ? (*b)[o] : 0.0;
    for (size_t i = 0; i < in; ++i) s += w[o * in + i] * x[i];
    y[o] = s;
  }
  return y;
}

// GPT-NeoX / Llama rotate_half on the first rd_ dims.
void NaiveModel::Rope(double* v, int pos) const {
  const int half = rd_ / 2;
  for (int i = 0; i < half; ++i) {
    const double ang = pos * std::pow(theta_, -2.0 * i / rd_);
    const double x1 = v[i], x2 = v[i + half];
    v[i] = x1 * std::cos(ang) - x2 * std::sin(ang);
    v[i + half] = x2 * std::cos(ang) + x1 * std::sin(ang);
  }
}

void NaiveModel::Layer(int l, std::vector<Vec>& x, int start) {
  const int n = static_cast<int>(x.size());
  const std::string p = neox_ ? "gpt_neox.layers." + std::to_string(l) + "." : "model.layers." + std::to_string(l) + ".";
  const int g = nkv_[l], kvd = g * hd_, src = src_[l];
  const bool producer = std::count(src_.begin(), src_.end(), l) > 0;
  std::vector<Vec> a(n), a2(n), q(n);
  // Projections. Fused NeoX QKV rows are [H, 3, hs] (§1.2).
  std::vector<float> wq, wk, wv, bq, bk, bv;
  const bool bias = neox_;
  if (neox_ && fused_) {
    const auto& fw = W(p + "attention.query_key_value.weight");
    const auto& fb = W(p + "attention.query_key_value.bias");
    for (int h = 0; h < H_; ++h)
      for (int r = 0; r < hd_; ++r) {
        const size_t rq = (h * 3 + 0) * hd_ + r, rk = (h * 3 + 1) * hd_ + r, rv = (h * 3 + 2) * hd_ + r;
        wq.insert(wq.end(), fw.begin() + rq * D_, fw.begin() + (rq + 1) * D_);
        wk.insert(wk.end(), fw.begin() + rk * D_, fw.begin() + (rk + 1) * D_);
        wv.insert(wv.end(), fw.begin() + rv * D_, fw.begin() + (rv + 1) * D_);
        bq.push_back(fb[rq]);
        bk.push_back(fb[rk]);
        bv.push_back(fb[rv]);
      }
  } else if (neox_) {
    wq = W(p + "attention.query.weight");
    bq = W(p + "attention.query.bias");
    if (producer) {
      wk = W(p + "attention.key.weight");
      bk = W(p + "attention.key.bias");
      wv = W(p + "attention.value.weight");
      bv = W(p + "attention.value.bias");
    }
  } else {
    wq = W(p + "self_attn.q_proj.weight");
    if (producer) {
      wk = W(p + "self_attn.k_proj.weight");
      wv = W(p + "self_attn.v_proj.weight");
    }
  }
  const std::string n1 = "input_layernorm";  // both families' name
  const std::string n2 = "post_attention_layernorm";
  for (int i = 0; i < n; ++i) {
    a[i] = Norm(x[i], p + n1 + ".weight", p + n1 + ".bias");
    q[i] = Linear(a[i], wq, bias ? &bq : nullptr, H_ * hd_);
    for (int h = 0; h < H_; ++h) Rope(&q[i][h * hd_], start + i);
    if (producer) {  // producers append this chunk's K/V before anyone attends (§6.2)
      auto& K = k_[l];
      auto& Vv = v_[l];
      if (static_cast<int>(K.size()) < start + n) {
        K.resize(start + n, Vec(kvd, 0.0));
        Vv.resize(start + n, Vec(kvd, 0.0));
      }
      K[start + i] = Linear(a[i], wk, bias ? &bk : nullptr, kvd);
      Vv[start + i] = Linear(a[i], wv, bias ? &bv : nullptr, kvd);
    }
  }
  // Attention over the source layer's K/V.
  std::vector<Vec> o(n, Vec(H_ * hd_, 0.0));
  for (int i = 0; i < n; ++i) {
    const int t = start + i;
    const int hi = mask_diag_[l] ? t - 1 : t;
    const int lo = window_[l] > 0 ? std::max(0, t - window_[l] + 1) : 0;
    for (int h = 0; h < H_; ++h) {
      const int kh = h / (H_ / g);
      std::vector<double> sc;
      for (int j = lo; j <= hi; ++j) {
        Vec k(k_[src][j].begin() + kh * hd_, k_[src][j].begin() + (kh + 1) * hd_);
        // Llama family caches post-RoPE K for everyone; MLKV readers see raw K, the producer
        // itself rotated K (§1.4).
        if (!neox_ || src == l) Rope(k.data(), j);
        double d = 0;
        for (int e = 0; e < hd_; ++e) d += q[i][h * hd_ + e] * k[e];
        sc.push_back(d / std::sqrt(static_cast<double>(hd_)));
      }
      if (sc.empty()) continue;  // nothing visible: zero output
      const double mx = *std::max_element(sc.begin(), sc.end());
      double sum = 0;
      for (double& s : sc) sum += s = std::exp(s - mx);
      for (int j = lo; j <= hi; ++j)
        for (int e = 0; e < hd_; ++e) o[i][h * hd_ + e] += sc[j - lo] / sum * v_[src][j][kh * hd_ + e];
    }
  }
  for (int i = 0; i < n; ++i) {
    Vec attn = neox_ ? Linear(o[i], W(p + "attention.dense.weight"), &W(p + "attention.dense.bias"), D_)
                     : Linear(o[i], W(p + "self_attn.o_proj.weight"), nullptr, D_);
    Vec mlp_in = parallel_ && neox_ ? Norm(x[i], p + n2 + ".weight", p + n2 + ".bias") : Vec();
    Vec xa = x[i];
    for (int e = 0; e < D_; ++e) xa[e] += attn[e];
    if (!(parallel_ && neox_)) mlp_in = Norm(xa, p + n2 + ".weight", p + n2 + ".bias");
    Vec mlp;
    if (neox_) {
      Vec u = Linear(mlp_in, W(p + "mlp.dense_h_to_4h.weight"), &W(p + "mlp.dense_h_to_4h.bias"), I_);
      for (double& z : u)
        z = gelu_tanh_ ? 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)))
                       : 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
      mlp = Linear(u, W(p + "mlp.dense_4h_to_h.weight"), &W(p + "mlp.dense_4h_to_h.bias"), D_);
    } else {
      Vec gt = Linear(mlp_in, W(p + "mlp.gate_proj.weight"), nullptr, I_);
      Vec up = Linear(mlp_in, W(p + "mlp.up_proj.weight"), nullptr, I_);
      for (int e = 0; e < I_; ++e) gt[e] = gt[e] / (1 + std::exp(-gt[e])) * up[e];
      mlp = Linear(gt, W(p + "mlp.down_proj.weight"), nullptr, D_);
    }
    for (int e = 0; e < D_; ++e) x[i][e] = xa[e] + mlp[e];
  }
}

std::vector<NaiveModel::Segment> NaiveModel::Segments() const {
  std::vector<Segment> out;  // LayerTypeParser.iteration_plan (§2.4)
  int i = 0;
  while (i < L_) {
    if (src_[i] > i) {
      int top = src_[i];
      while (true) {
        int nt = *std::max_element(src_.begin() + i, src_.begin() + top + 1);
        if (nt == top) break;
        top = nt;
      }
      out.push_back({i, top, true});
      i = top + 1;
    } else {
      out.push_back({i, i, false});
      ++i;
    }
  }
  return out;
}

std::vector<double> NaiveModel::Logits(const Vec& x) const {
  const std::string fn = neox_ ? "gpt_neox.final_layer_norm" : "model.norm";
  Vec h = Norm(x, fn + ".weight", fn + ".bias");
  const std::string head = tie_ ? (neox_ ? "gpt_neox.embed_in.weight" : "model.embed_tokens.weight")
                                : (neox_ ? "embed_out.weight" : "lm_head.weight");
  return Linear(h, W(head), nullptr, V_);
}

std::vector<double> NaiveModel::Chunk(const std::vector<int>& tokens, int start, bool iterate) {
  const int n = static_cast<int>(tokens.size());
  const auto& emb = W(neox_ ? "gpt_neox.embed_in.weight" : "model.embed_tokens.weight");
  std::vector<Vec> x(n);
  for (int i = 0; i < n; ++i) x[i] = Vec(emb.begin() + tokens[i] * D_, emb.begin() + (tokens[i] + 1) * D_);
  for (const Segment& s : Segments()) {
    const int passes = iterate && s.cyclic ? m_ + b_ : 1;
    if (passes > 1) {
      for (int l = s.first; l <= s.last; ++l) {  // zero-initialized upward targets (§2.4 step 1)
        const int t = src_[l];
        if (t > l) {
          k_[t].resize(std::max<size_t>(k_[t].size(), start + n), Vec(nkv_[t] * hd_, 0.0));
          v_[t].resize(std::max<size_t>(v_[t].size(), start + n), Vec(nkv_[t] * hd_, 0.0));
          for (int i = 0; i < n; ++i) {
            k_[t][start + i].assign(nkv_[t] * hd_, 0.0);
            v_[t][start + i].assign(nkv_[t] * hd_, 0.0);
          }
        }
      }
    }
    const std::vector<Vec> x_in = x;
    for (int pass = 0; pass < passes; ++pass) {
      x = x_in;  // each pass restarts from the block input (§2.4 step 3)
      for (int l = s.first; l <= s.last; ++l) Layer(l, x, start);
    }
  }
  len_ = start + n;
  return Logits(x.back());
}

std::vector<double> NaiveModel::FullForward(const std::vector<int>& tokens) {
  Reset();
  return Chunk(tokens, 0, false);
}

std::vector<double> NaiveModel::Prefill(const std::vector<int>& prompt) {
  Reset();
  const int n = static_cast<int>(prompt.size());
  if (has_upward_edges() && !use_sequential_ && n > m_ + b_) return Chunk(prompt, 0, true);
  std::vector<double> logits;
  for (int i = 0; i < n; ++i) logits = Chunk({prompt[i]}, i, false);
  return logits;
}

std::vector<double> NaiveModel::Decode(int token) { return Chunk({token}, len_, false); }

}  // namespace strata::testing
