#include "tests/test_models.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace strata::testing {

std::vector<SchemeCase> AllSchemes() {
  auto llama = [](int layers, int kv_heads, std::string types) {
    MakeModelOptions o;
    o.family = "llama";
    o.layers = layers;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = kv_heads;
    o.vocab = 300;
    o.layer_types = std::move(types);
    o.seed = 7;
    return o;
  };
  auto neox = [](int layers, int kv_layers, int kv_heads) {
    MakeModelOptions o;
    o.family = "gpt_neox";
    o.layers = layers;
    o.hidden = 64;
    o.heads = 4;
    o.kv_heads = kv_heads;
    o.kv_layers = kv_layers;
    o.vocab = 300;
    o.rotary_pct = 0.5;
    o.seed = 11;
    return o;
  };
  std::vector<SchemeCase> s;
  s.push_back({"MHA", llama(4, 4, "")});
  s.push_back({"GQA", llama(4, 2, "")});
  s.push_back({"MQA", llama(4, 1, "")});
  s.push_back({"PythiaFused", neox(4, 0, 0)});
  {
    auto o = neox(4, 0, 0);
    o.sequential_residual = true;
    o.tie_embeddings = true;
    s.push_back({"PythiaSequentialTied", o});
  }
  s.push_back({"MlkvUneven", neox(12, 5, 2)});  // producers 0,2,4,7,9 (§1.2)
  s.push_back({"MlkvOneGroupMqa", neox(6, 1, 1)});
  s.push_back({"Cla", llama(6, 2, "0_0_2_2_4_4")});
  s.push_back({"LckvW2", llama(8, 2, "0_6_6_6_6_6_6_7")});
  s.push_back({"LckvSandwichW4", llama(8, 2, "0_1_5_5_5_5_6_7")});
  {
    auto o = llama(8, 2, "0_6_6_6_6_6_6_7");
    o.forward_passes = 2;  // m+b = 3: prompts longer than 3 take the iterative plan
    o.backward_passes = 1;
    s.push_back({"LckvSmallIterations", o});
  }
  {
    auto o = llama(8, 2, "0_3_3_3_4_5_5_5");  // sandwich-middle: upward and downward readers of 3
    o.forward_passes = 2;
    o.backward_passes = 2;
    s.push_back({"LckvMiddle", o});
  }
  {
    auto o = llama(6, 2, "0s_1s_2s_3_3_3");
    o.sliding_window = 4;
    s.push_back({"YocoSlidingWindow", o});
  }
  {
    auto o = llama(6, 2, "0_1s_1s_3s_3s_0");  // MixAttention-like: window readers of window producers
    o.sliding_window = 3;
    s.push_back({"WindowReadsWindow", o});
  }
  {
    auto o = llama(6, 2, "0_4_4_4_4_5");
    o.force_nodiag = true;
    s.push_back({"ForceNodiag", o});
  }
  {
    auto o = llama(6, 2, "0_1_2_3_4_5");
    o.use_sequential = true;
    o.tie_embeddings = true;
    s.push_back({"UseSequentialTied", o});
  }
  return s;
}

namespace {
// Removes every directory TempDir made when the test binary exits.
struct TempDirs {
  std::vector<std::string> dirs;
  ~TempDirs() {
    for (const auto& d : dirs) std::filesystem::remove_all(d);
  }
};
TempDirs& Made() {
  static TempDirs t;
  return t;
}
}  // namespace

std::string TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/strata-test-" + tag + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Made().dirs.push_back(dir);
  return dir;
}

std::string MakeModel(const std::string& tag, MakeModelOptions o, const std::string& dtype) {
  o.dtype = dtype;
  const std::string dir = TempDir(tag);
  absl::Status st = WriteRandomModel(dir, o);
  if (!st.ok()) std::abort();
  return dir;
}

}  // namespace strata::testing
