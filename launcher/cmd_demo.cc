// strata demo [DIR]: the embedded default job. Writes a small MLKV model (GPT-NeoX layout,
// 12 layers, KV groups of 2 layers) and generates from it, showing the KV saving.
#include <cstdio>

#include "launcher/commands.h"
#include "nlohmann/json.hpp"
#include "runtime/engine.h"
#include "runtime/model/model_writer.h"

namespace strata {

int RunDemo(const std::vector<std::string>& args) {
  const std::string dir = args.empty() ? "/tmp/strata-demo-model" : args[0];
  MakeModelOptions m;
  m.family = "gpt_neox";
  m.layers = 12;
  m.hidden = 256;
  m.heads = 4;
  m.kv_heads = 1;
  m.kv_layers = 6;  // MLKV-6: producers 0,2,4,6,8,10
  m.vocab = 1024;
  m.seed = 1;
  if (absl::Status st = WriteRandomModel(dir, m); !st.ok()) return Fail("demo", std::string(st.message()));
  auto engine = Engine::Create(dir, EngineOptions{});
  if (!engine.ok()) return Fail("demo", std::string(engine.status().message()));
  GenerationRequest r;
  r.prompt = {1, 2, 3, 4, 5, 6, 7, 8};
  r.max_tokens = 16;
  r.ignore_eos = true;
  auto out = (*engine)->Generate({r});
  if (!out.ok()) return Fail("demo", std::string(out.status().message()));
  const ModelSpec& spec = (*engine)->spec();
  std::printf("model     %s (MLKV-6 of a 12-layer GPT-NeoX, written by strata make-model)\n", dir.c_str());
  std::printf("layer map %s\n", LayerTypesString(spec).c_str());
  // Without sharing, every layer would own a bank like a producer's (the cache's own accounting).
  const KvLayout& kv = (*engine)->kv_layout();
  std::printf("KV bytes per token: %lld (every layer its own KV would be %lld)\n",
              static_cast<long long>(kv.bytes_per_token),
              static_cast<long long>(kv.banks[0].bytes_per_row * spec.num_layers));
  nlohmann::json j = {{"tokens", (*out)[0].tokens}, {"logprobs", (*out)[0].logprobs}};
  std::printf("generate  %s\n", j.dump().c_str());
  return 0;
}

}  // namespace strata
