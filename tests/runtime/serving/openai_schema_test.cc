// The request schema of /v1/completions and /v1/chat/completions, against the OpenAI API's own
// rules: null is "not given" for every optional field, every wrong type or range is a 400 naming
// the field, unknown fields are refused but vLLM's extras are known, and a seeded mutation run
// over valid bodies never escapes as an exception or a 5xx.
#include <gtest/gtest.h>

#include <random>

#include "runtime/model/config.h"
#include "runtime/serving/openai_api.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;

class OpenAiSchema : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    MakeModelOptions m;
    m.layers = 2;
    m.vocab = 512;
    m.max_position = 256;
    dir_ = new std::string(MakeModel("openai-schema", m));
    spec_ = new ModelSpec(std::move(LoadModelConfig(*dir_)).value());
    tokenizer_ = std::move(Tokenizer::Load(*dir_)).value().release();
  }
  static std::variant<CompletionCall, ApiError> Parse(const json& body, bool chat) {
    ApiContext ctx{spec_, tokenizer_, "m", nullptr};
    return ParseCompletionRequest(body.dump(), chat, ctx);
  }
  static json Base(bool chat) {
    if (chat) return {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
    return {{"model", "m"}, {"prompt", "hello"}};
  }
  static inline std::string* dir_ = nullptr;
  static inline ModelSpec* spec_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
};

TEST_F(OpenAiSchema, NullIsNotGivenForEveryOptionalField) {
  for (bool chat : {false, true}) {
    const auto plain = Parse(Base(chat), chat);
    ASSERT_TRUE(std::holds_alternative<CompletionCall>(plain));
    const CompletionCall& want = std::get<CompletionCall>(plain);
    const std::vector<std::string> fields =
        chat ? std::vector<std::string>{"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p",
                                        "seed", "stop", "stop_token_ids", "stream", "stream_options", "logprobs",
                                        "top_logprobs", "n", "user", "presence_penalty", "frequency_penalty",
                                        "repetition_penalty", "logit_bias", "min_tokens", "ignore_eos",
                                        "return_token_ids"}
             : std::vector<std::string>{"max_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "stop",
                                        "stop_token_ids", "stream", "stream_options", "logprobs", "echo", "n",
                                        "best_of", "user", "presence_penalty", "frequency_penalty",
                                        "repetition_penalty", "logit_bias", "min_tokens", "suffix", "ignore_eos",
                                        "return_token_ids"};
    json all = Base(chat);
    for (const std::string& f : fields) {
      json one = Base(chat);
      one[f] = nullptr;
      all[f] = nullptr;
      const auto r = Parse(one, chat);
      ASSERT_TRUE(std::holds_alternative<CompletionCall>(r)) << f << ": " << std::get<ApiError>(r).message;
      const CompletionCall& got = std::get<CompletionCall>(r);
      EXPECT_EQ(got.base.max_tokens, want.base.max_tokens) << f;
      EXPECT_EQ(got.base.sampling.temperature, want.base.sampling.temperature) << f;
      EXPECT_EQ(got.stream, want.stream) << f;
      EXPECT_EQ(got.logprobs, want.logprobs) << f;
    }
    EXPECT_TRUE(std::holds_alternative<CompletionCall>(Parse(all, chat))) << "all null, chat " << chat;
  }
}

TEST_F(OpenAiSchema, WrongTypesAndRangesName400Params) {
  struct Case {
    const char* field;
    json value;
    bool chat;
  };
  const std::vector<Case> cases = {
      {"max_tokens", "ten", false},       {"max_tokens", 0, false},          {"max_tokens", 2.5, false},
      {"temperature", "hot", false},      {"temperature", -0.1, false},      {"temperature", 101, false},
      {"top_p", 0, false},                {"top_p", 1.5, true},              {"top_k", -2, false},
      {"top_k", "all", false},            {"seed", 1.5, false},              {"seed", "x", true},
      {"stream", "yes", false},           {"stream", 1, true},               {"echo", "no", false},
      {"n", 0, false},                    {"n", "two", true},                {"n", 129, false},
      {"logprobs", 21, false},            {"logprobs", "yes", true},         {"logprobs", 1, true},
      {"best_of", 0, false},              {"best_of", "x", false},           {"max_completion_tokens", 0, true},
      {"max_completion_tokens", "x", false}, {"ignore_eos", "x", false},     {"return_token_ids", 1, false},
      {"logit_bias", json{{"x", 1}}, false}, {"logit_bias", json{{"5", "up"}}, true}, {"logit_bias", json{{"5", 101}}, false},
      {"stop_token_ids", json::array({-3}), false},
      {"top_logprobs", 21, true},         {"presence_penalty", 3, false},    {"frequency_penalty", "x", true},
      {"repetition_penalty", 0, false},   {"min_p", 1.5, false},             {"logit_bias", json::array(), false},
      {"stop", 7, false},                 {"stop", json::array({1}), true},  {"stop", json::array({""}), false},
      {"stop_token_ids", "x", false},     {"min_tokens", -1, false},         {"stream_options", 1, false},
      {"stream_options", json{{"include_usage", "yes"}}, true},            {"user", 5, false},
      {"prompt", 5, false},               {"prompt", json::array({-1}), false}, {"prompt", json::array(), false},
      {"messages", "hi", true},           {"messages", json::array(), true}, {"model", 5, false},
      {"echo", true, true},               {"frobnicate", 1, false},          {"suffix", "x", true},
  };
  for (const Case& c : cases) {
    json body = Base(c.chat);
    body[c.field] = c.value;
    const auto r = Parse(body, c.chat);
    ASSERT_TRUE(std::holds_alternative<ApiError>(r)) << c.field << " = " << c.value.dump();
    const ApiError& e = std::get<ApiError>(r);
    EXPECT_EQ(e.status, 400) << c.field << " = " << c.value.dump() << ": " << e.message;
    EXPECT_EQ(e.param, c.field) << c.value.dump() << ": " << e.message;
    EXPECT_EQ(e.message.find("json.exception"), std::string::npos) << e.message;
  }
  // vLLM's extras are known fields (their defaults parse).
  for (const char* f : {"top_k", "min_p", "repetition_penalty", "min_tokens", "stop_token_ids", "ignore_eos",
                        "return_token_ids"}) {
    json body = Base(false);
    body[f] = std::string(f) == "repetition_penalty" ? json(1.0)
              : std::string(f) == "stop_token_ids"   ? json::array()
              : std::string(f) == "ignore_eos" || std::string(f) == "return_token_ids" ? json(true)
                                                                                       : json(0);
    EXPECT_TRUE(std::holds_alternative<CompletionCall>(Parse(body, false))) << f;
  }
}

// Mutations of valid bodies: a field replaced by a value of another type, removed, nested or
// duplicated as garbage; bytes flipped in the serialized text. Every answer is a CompletionCall or
// a 4xx ApiError, and nothing throws.
TEST_F(OpenAiSchema, SeededMutationsNeverEscapeAsExceptionsOr5xx) {
  std::mt19937 rng(2024);
  const std::vector<json> values = {nullptr, true, false, 0, -1, 1, 7, 1e300, -1e300, 0.5, "", "x", "\xff\xfe",
                                    json::array(), json::array({1, 2}), json::array({"a", nullptr}),
                                    json::object(), json{{"a", 1}}, json::array({json::array({1})})};
  const std::vector<std::string> keys = {"model", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k",
                                         "seed", "stop", "stream", "stream_options", "logprobs", "top_logprobs",
                                         "echo", "n", "best_of", "logit_bias", "min_tokens", "stop_token_ids",
                                         "max_completion_tokens", "return_token_ids", "user"};
  int accepted = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const bool chat = rng() % 2;
    json body = Base(chat);
    for (int k = 0, n = 1 + rng() % 4; k < n; ++k) {
      const std::string& key = keys[rng() % keys.size()];
      if (rng() % 5 == 0) {
        body.erase(key);
      } else {
        body[key] = values[rng() % values.size()];
      }
    }
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    if (rng() % 4 == 0 && !text.empty()) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    ApiContext ctx{spec_, tokenizer_, "m", nullptr};
    std::variant<CompletionCall, ApiError> r;
    ASSERT_NO_THROW(r = ParseCompletionRequest(text, chat, ctx)) << text;
    if (auto* e = std::get_if<ApiError>(&r)) {
      EXPECT_GE(e->status, 400) << text;
      EXPECT_LT(e->status, 500) << text << ": " << e->message;
      EXPECT_EQ(e->message.find("json.exception"), std::string::npos) << e->message;
      ++refused;
    } else {
      ++accepted;
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 1000);
}

// A checkpoint's generation_config.json defaults fill the sampling fields a request leaves out;
// what the request says wins.
TEST_F(OpenAiSchema, GenerationConfigDefaultsFillOmittedSampling) {
  ModelSpec spec = *spec_;
  spec.default_temperature = 0.6;
  spec.default_top_p = 0.9;
  spec.default_top_k = 20;
  ApiContext ctx{&spec, tokenizer_, "m", nullptr};
  auto r = ParseCompletionRequest(Base(false).dump(), false, ctx);
  ASSERT_TRUE(std::holds_alternative<CompletionCall>(r));
  const SamplingParams& d = std::get<CompletionCall>(r).base.sampling;
  EXPECT_FLOAT_EQ(d.temperature, 0.6f);
  EXPECT_FLOAT_EQ(d.top_p, 0.9f);
  EXPECT_EQ(d.top_k, 20);
  json explicit_body = Base(false);
  explicit_body["temperature"] = 0.0;
  explicit_body["top_p"] = 1.0;
  explicit_body["top_k"] = -1;
  r = ParseCompletionRequest(explicit_body.dump(), false, ctx);
  ASSERT_TRUE(std::holds_alternative<CompletionCall>(r));
  const SamplingParams& e = std::get<CompletionCall>(r).base.sampling;
  EXPECT_EQ(e.temperature, 0.f);
  EXPECT_EQ(e.top_p, 1.f);
  EXPECT_EQ(e.top_k, 0);
}

// The engine computes each token's logprob only when the response or best_of's ranking reads it.
TEST_F(OpenAiSchema, LogprobsAreComputedOnlyWhenRead) {
  struct Case {
    bool chat;
    json extra;
    bool want;
  };
  const Case cases[] = {{false, json::object(), false},
                        {true, json::object(), false},
                        {false, {{"logprobs", 0}}, true},
                        {false, {{"logprobs", 3}}, true},
                        {true, {{"logprobs", true}}, true},
                        {true, {{"logprobs", false}}, false},
                        {false, {{"n", 2}, {"best_of", 2}}, false},
                        {false, {{"n", 1}, {"best_of", 3}}, true}};
  for (const Case& c : cases) {
    json body = Base(c.chat);
    body.update(c.extra);
    const auto r = Parse(body, c.chat);
    ASSERT_TRUE(std::holds_alternative<CompletionCall>(r)) << body.dump();
    EXPECT_EQ(std::get<CompletionCall>(r).base.logprob, c.want) << body.dump();
  }
}

}  // namespace
}  // namespace strata::testing
