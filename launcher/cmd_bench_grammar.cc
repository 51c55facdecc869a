// strata bench grammar --tokenizer DIR [--json-schema FILE | --grammar FILE] [--walks N]:
// what structured output costs for a vocabulary: compile time and size of the grammar, and the
// time of each step's token mask along seeded random walks through it (each step picks one of
// the allowed tokens at random: strings grow as long as the grammar lets them, the slow case).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/flags/flag.h"
#include "launcher/commands.h"
#include "launcher/flags.h"
#include "nlohmann/json.hpp"
#include "runtime/grammar/ebnf_parser.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

ABSL_FLAG(std::string, json_schema, "",
          "bench grammar / bench offline: a JSON schema file to constrain the output with "
          "(bench grammar: empty = a built-in schema of nested objects, arrays, enums and strings)");
ABSL_FLAG(std::string, grammar, "", "bench grammar: an EBNF grammar file (root rule 'root') instead of a schema");
ABSL_FLAG(int, walks, 20, "bench grammar: random walks through the grammar");
ABSL_FLAG(int, max_steps, 256, "bench grammar: tokens per walk at most");
ABSL_DECLARE_FLAG(std::string, tokenizer);

namespace strata {
namespace {

// Nested objects, an array of objects, an enum, bounded strings and integers: what tool
// arguments and extraction schemas look like.
constexpr char kDefaultSchema[] = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 40},
    "kind": {"enum": ["person", "place", "thing"]},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 8},
    "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                 "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city"]},
    "items": {"type": "array", "maxItems": 4, "items": {"type": "object",
              "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"}}, "required": ["id", "ok"]}}
  },
  "required": ["name", "kind", "age", "tags", "address", "items"]
})";

std::string ReadText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100 * static_cast<double>(v.size())))];
}

}  // namespace

// The grammar a --json-schema or --grammar flag names (the built-in schema when neither is set
// and `use_default`); nullopt-like empty rules when none.
absl::StatusOr<grammar::Grammar> GrammarFromFlags(bool use_default) {
  const std::string schema_path = absl::GetFlag(FLAGS_json_schema), ebnf_path = absl::GetFlag(FLAGS_grammar);
  if (!ebnf_path.empty()) {
    std::ifstream probe(ebnf_path);
    if (!probe) return absl::NotFoundError("cannot read --grammar " + ebnf_path);
    return grammar::ParseEbnf(ReadText(ebnf_path));
  }
  std::string text = kDefaultSchema;
  if (!schema_path.empty()) {
    std::ifstream probe(schema_path);
    if (!probe) return absl::NotFoundError("cannot read --json-schema " + schema_path);
    text = ReadText(schema_path);
  } else if (!use_default) {
    return grammar::Grammar{};
  }
  const auto schema = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return absl::InvalidArgumentError("the JSON schema is not valid JSON");
  return grammar::JsonSchemaToGrammar(schema);
}

int RunBenchGrammar() {
  const std::string dir = absl::GetFlag(FLAGS_tokenizer).empty() ? absl::GetFlag(FLAGS_model) : absl::GetFlag(FLAGS_tokenizer);
  if (dir.empty()) return Fail("bench", "bench grammar needs --tokenizer DIR (or --model DIR)", 2);
  auto tok = Tokenizer::Load(dir);
  if (!tok.ok()) return Fail("bench", std::string(tok.status().message()));
  auto g = GrammarFromFlags(/*use_default=*/true);
  if (!g.ok()) return Fail("bench", std::string(g.status().message()));
  std::vector<int> eos;
  for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"})
    if ((*tok)->TokenId(name) >= 0) eos.push_back((*tok)->TokenId(name));
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto t0 = Clock::now();
  auto vocab = grammar::TokenVocabulary::FromTokenizer(**tok, (*tok)->vocab_size(), eos);
  const auto t1 = Clock::now();
  auto compiled = grammar::CompileGrammar(*g, vocab);
  const auto t2 = Clock::now();
  if (!compiled.ok()) return Fail("bench", std::string(compiled.status().message()));
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::vector<double> mask_us;
  int complete = 0;
  grammar::TokenMask mask;
  std::vector<int> allowed;
  for (int w = 0; w < absl::GetFlag(FLAGS_walks); ++w) {
    grammar::GrammarMatcher m(*compiled);
    for (int step = 0; step < absl::GetFlag(FLAGS_max_steps) && !m.IsComplete(); ++step) {
      const auto a = Clock::now();
      m.FillNextTokenMask(&mask);
      mask_us.push_back(1e6 * seconds(a, Clock::now()));
      allowed.clear();
      for (int id = 0; id < vocab->size(); ++id)
        if (grammar::MaskHas(mask, id) && std::find(eos.begin(), eos.end(), id) == eos.end()) allowed.push_back(id);
      if (allowed.empty()) break;  // only the end may follow
      if (!m.AcceptToken(allowed[rng() % allowed.size()])) return Fail("bench", "the matcher refused a token of its own mask");
    }
    complete += m.CanTerminate();
  }
  double sum = 0;
  for (double x : mask_us) sum += x;
  // What applying a mask adds to sampling one token (greedy and temperature 1 over seeded random
  // logits, the last walk's final mask against none).
  std::vector<float> logits(vocab->size());
  for (float& l : logits) l = static_cast<float>(static_cast<double>(rng() % 20000) / 1000.0 - 10.0);
  auto sample_us = [&](float temperature, const uint32_t* allowed) {
    SamplingParams p;
    p.temperature = temperature;
    SamplerRng sampler_rng(1);
    const int reps = 50;
    const auto a = Clock::now();
    for (int i = 0; i < reps; ++i) SampleToken(logits.data(), vocab->size(), p, &sampler_rng, {.allowed = allowed});
    return 1e6 * seconds(a, Clock::now()) / reps;
  };
  if (mask.empty()) mask.assign((vocab->size() + 31) / 32, ~0u);
  const double greedy_us = sample_us(0.f, nullptr), greedy_masked_us = sample_us(0.f, mask.data());
  const double sampled_us = sample_us(1.f, nullptr), sampled_masked_us = sample_us(1.f, mask.data());
  nlohmann::json j = {
      {"vocab_size", vocab->size()},
      {"vocabulary_ms", 1e3 * seconds(t0, t1)},
      {"compile_ms", 1e3 * seconds(t1, t2)},
      {"automaton_states", (*compiled)->num_states()},
      {"memory_bytes", (*compiled)->memory_bytes()},
      {"steps", mask_us.size()},
      {"walks_complete", complete},
      {"mask_us_mean", mask_us.empty() ? 0 : sum / static_cast<double>(mask_us.size())},
      {"mask_us_p50", Percentile(mask_us, 50)},
      {"mask_us_p99", Percentile(mask_us, 99)},
      {"mask_us_max", Percentile(mask_us, 100)},
      {"sample_us", {{"greedy", greedy_us}, {"greedy_masked", greedy_masked_us}, {"temperature_1", sampled_us},
                     {"temperature_1_masked", sampled_masked_us}}},
      {"config", {{"tokenizer", dir}, {"json_schema", absl::GetFlag(FLAGS_json_schema)},
                  {"grammar", absl::GetFlag(FLAGS_grammar)}, {"walks", absl::GetFlag(FLAGS_walks)},
                  {"max_steps", absl::GetFlag(FLAGS_max_steps)}, {"seed", absl::GetFlag(FLAGS_seed)}}}};
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("vocabulary %d tokens (%.0f ms to read)\n", vocab->size(), j["vocabulary_ms"].get<double>());
    std::printf("compile    %.1f ms, %d automaton states, %.1f MB\n", j["compile_ms"].get<double>(),
                (*compiled)->num_states(), static_cast<double>((*compiled)->memory_bytes()) / 1e6);
    std::printf("mask       %.1f us mean, %.1f p50, %.1f p99, %.1f max over %zu steps (%d of %d walks complete)\n",
                j["mask_us_mean"].get<double>(), j["mask_us_p50"].get<double>(), j["mask_us_p99"].get<double>(),
                j["mask_us_max"].get<double>(), mask_us.size(), complete, absl::GetFlag(FLAGS_walks));
    std::printf("sampling   greedy %.0f us (%.0f masked), temperature 1 %.0f us (%.0f masked) per token\n", greedy_us,
                greedy_masked_us, sampled_us, sampled_masked_us);
  }
  return 0;
}

}  // namespace strata
