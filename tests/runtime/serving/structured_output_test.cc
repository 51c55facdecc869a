// Structured outputs and tool calls without a server: every bad shape of response_format,
// guided_*, structured_outputs, tools and tool_choice is a 400 naming its field (an unsupported
// schema keyword by name); the tool-call parsers on many outputs; the schemas of tool_choice
// required and named accept what they should; streamed tool-call deltas accumulate into the same
// calls as the whole text; the grammar cache compiles a grammar once.
#include <gtest/gtest.h>

#include <random>

#include "runtime/grammar/ebnf_parser.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/model/config.h"
#include "runtime/serving/openai_api.h"
#include "runtime/serving/structured_output.h"
#include "runtime/serving/tool_calls.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_models.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

const json kWeather = {{"type", "function"},
                       {"function",
                        {{"name", "get_weather"},
                         {"description", "The weather in a city"},
                         {"parameters",
                          {{"type", "object"},
                           {"properties", {{"city", {{"type", "string"}, {"maxLength", 8}}},
                                           {"unit", {{"enum", {"c", "f"}}}}}},
                           {"required", {"city"}}}}}}};
const json kTime = {{"type", "function"},
                    {"function", {{"name", "get-time_2"}, {"parameters", {{"type", "object"}, {"properties", json::object()}}}}}};

class StructuredOutput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    MakeModelOptions m;
    m.layers = 2;
    m.vocab = 512;
    m.max_position = 2048;  // room for the tool listing in the prompt
    dir_ = new std::string(MakeModel("structured-output", m));
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
  // The request's error, which must be a 400 on `param`.
  static ApiError Refused(const json& body, bool chat, const std::string& param) {
    const auto r = Parse(body, chat);
    if (!std::holds_alternative<ApiError>(r)) {
      ADD_FAILURE() << "accepted: " << body.dump();
      return {};
    }
    const ApiError& e = std::get<ApiError>(r);
    EXPECT_EQ(e.status, 400) << body.dump() << ": " << e.message;
    EXPECT_EQ(e.param, param) << body.dump() << ": " << e.message;
    EXPECT_EQ(e.message.find("json.exception"), std::string::npos) << e.message;
    return e;
  }
  static CompletionCall Accepted(const json& body, bool chat) {
    auto r = Parse(body, chat);
    if (auto* e = std::get_if<ApiError>(&r)) {
      ADD_FAILURE() << body.dump() << ": " << e->param << ": " << e->message;
      return {};
    }
    return std::get<CompletionCall>(std::move(r));
  }
  static inline std::string* dir_ = nullptr;
  static inline ModelSpec* spec_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
};

TEST_F(StructuredOutput, EveryConstraintShapeParsesOnBothEndpoints) {
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}};
  const std::vector<std::pair<std::string, json>> good = {
      {"response_format", {{"type", "json_object"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "a-b_1"}, {"schema", schema}, {"strict", true}}}}},
      {"guided_json", schema},
      {"guided_json", schema.dump()},
      {"guided_regex", "[a-z]{1,5}"},
      {"guided_choice", {"yes", "no"}},
      {"guided_grammar", "root ::= \"a\" | \"b\""},
      {"structured_outputs", {{"json", schema}}},
      {"structured_outputs", {{"regex", "x+"}}},
      {"structured_outputs", {{"choice", {"x"}}}},
      {"structured_outputs", {{"grammar", "root ::= \"x\""}}},
      {"structured_outputs", {{"json_object", true}}},
  };
  for (bool chat : {false, true})
    for (const auto& [field, value] : good) {
      json body = Base(chat);
      body[field] = value;
      const CompletionCall c = Accepted(body, chat);
      EXPECT_TRUE(c.constraint.grammar.has_value()) << field << " " << value.dump();
      EXPECT_EQ(c.constraint.param, field);
      EXPECT_EQ(c.constraint.tool_mode, ToolMode::kNone);
    }
  // "text" and nulls ask for nothing.
  json text = Base(true);
  text["response_format"] = {{"type", "text"}};
  text["guided_json"] = nullptr;
  text["tools"] = nullptr;
  text["tool_choice"] = nullptr;
  EXPECT_FALSE(Accepted(text, true).constraint.grammar.has_value());
}

TEST_F(StructuredOutput, BadShapesAre400sNamingTheField) {
  const json schema = {{"type", "object"}};
  const std::vector<std::pair<std::string, json>> bad = {
      {"response_format", "json"},
      {"response_format", json::object()},
      {"response_format", {{"type", "yaml"}}},
      {"response_format", {{"type", "json_schema"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", "x"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", schema}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "bad name!"}, {"schema", schema}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", std::string(65, 'a')}, {"schema", schema}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", 5}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", schema}, {"strict", "yes"}}}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", schema}, {"extra", 1}}}}},
      {"response_format", {{"type", "json_object"}, {"schema", schema}}},
      {"response_format", {{"type", "text"}, {"json_schema", schema}}},
      {"guided_json", 5},
      {"guided_json", "{not json"},
      {"guided_json", json::array()},
      {"guided_regex", 5},
      {"guided_regex", "(unclosed"},
      {"guided_choice", json::array()},
      {"guided_choice", {1, 2}},
      {"guided_choice", "yes"},
      {"guided_grammar", 5},
      {"guided_grammar", "root ::= (("},
      {"structured_outputs", json::object()},
      {"structured_outputs", {{"json", schema}, {"regex", "x"}}},
      {"structured_outputs", {{"structural_tag", "x"}}},
      {"structured_outputs", {{"json_object", "yes"}}},
      {"structured_outputs", {{"choice", json::array()}}},
      {"structured_outputs", "json"},
  };
  for (bool chat : {false, true})
    for (const auto& [field, value] : bad) {
      json body = Base(chat);
      body[field] = value;
      Refused(body, chat, field);
    }
}

TEST_F(StructuredOutput, UnsupportedSchemaKeywordIsNamed) {
  const json schema = {{"type", "object"}, {"properties", {{"tags", {{"type", "array"}, {"uniqueItems", true}}}}}};
  for (bool chat : {false, true}) {
    json a = Base(chat);
    a["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", schema}}}};
    EXPECT_NE(Refused(a, chat, "response_format").message.find("uniqueItems"), std::string::npos);
    json b = Base(chat);
    b["guided_json"] = {{"type", "object"}, {"patternProperties", json::object()}};
    EXPECT_NE(Refused(b, chat, "guided_json").message.find("patternProperties"), std::string::npos);
  }
  // In a tool's parameters, once the tool call is forced (auto needs no grammar).
  json tool = kWeather;
  tool["function"]["parameters"]["properties"]["city"]["not"] = {{"const", "x"}};
  json body = Base(true);
  body["tools"] = {tool};
  body["tool_choice"] = "required";
  EXPECT_NE(Refused(body, true, "tools").message.find("\"not\""), std::string::npos);
  body["tool_choice"] = "auto";
  Accepted(body, true);
}

TEST_F(StructuredOutput, TwoConstraintsAtOnceAre400) {
  const std::vector<std::pair<std::string, json>> one = {
      {"response_format", {{"type", "json_object"}}}, {"guided_json", {{"type", "object"}}},
      {"guided_regex", "a"}, {"guided_choice", {"a"}}, {"guided_grammar", "root ::= \"a\""},
      {"structured_outputs", {{"regex", "a"}}}};
  for (size_t i = 0; i < one.size(); ++i)
    for (size_t k = i + 1; k < one.size(); ++k) {
      json body = Base(false);
      body[one[i].first] = one[i].second;
      body[one[k].first] = one[k].second;
      const ApiError e = Refused(body, false, one[k].first);  // fields in the order checked: the later is named
      EXPECT_NE(e.message.find("cannot be combined"), std::string::npos) << e.message;
    }
  json body = Base(true);
  body["tools"] = {kWeather};
  body["tool_choice"] = "required";
  body["guided_regex"] = "a";
  Refused(body, true, "tool_choice");
}

TEST_F(StructuredOutput, ToolsAndToolChoiceAreValidated) {
  json tools = {kWeather, kTime};
  json body = Base(true);
  body["tools"] = tools;
  CompletionCall c = Accepted(body, true);
  EXPECT_EQ(c.constraint.tool_mode, ToolMode::kAuto);  // the default with tools
  EXPECT_FALSE(c.constraint.grammar.has_value());
  body["tool_choice"] = "none";
  EXPECT_EQ(Accepted(body, true).constraint.tool_mode, ToolMode::kNone);
  body["tool_choice"] = "required";
  body["parallel_tool_calls"] = false;
  c = Accepted(body, true);
  EXPECT_EQ(c.constraint.tool_mode, ToolMode::kRequired);
  EXPECT_TRUE(c.constraint.grammar.has_value());
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get-time_2"}}}};
  c = Accepted(body, true);
  EXPECT_EQ(c.constraint.tool_mode, ToolMode::kNamed);
  EXPECT_EQ(c.constraint.tool_name, "get-time_2");
  // The default template lists the tools (Hermes) in the prompt.
  EXPECT_NE(c.prompt_texts[0].find("<tools>"), std::string::npos);
  EXPECT_NE(c.prompt_texts[0].find("get_weather"), std::string::npos);

  auto with = [&](json t) {
    json b = Base(true);
    b["tools"] = std::move(t);
    return b;
  };
  json unnamed = kWeather;
  unnamed["function"].erase("name");
  json spaced = kWeather;
  spaced["function"]["name"] = "get weather";
  json long_name = kWeather;
  long_name["function"]["name"] = std::string(65, 'x');
  json array_params = kWeather;
  array_params["function"]["parameters"] = {{"type", "array"}};
  json string_params = kWeather;
  string_params["function"]["parameters"] = "{}";
  json not_function = kWeather;
  not_function["type"] = "retrieval";
  json extra = kWeather;
  extra["function"]["returns"] = "x";
  for (const json& t : {json::array(), json::array({unnamed}), json::array({spaced}), json::array({long_name}),
                        json::array({array_params}), json::array({string_params}), json::array({not_function}),
                        json::array({extra}), json::array({kWeather, kWeather}), json::array({"get_weather"})})
    Refused(with(t), true, "tools");
  Refused(with("x"), true, "tools");
  for (const json& choice : {json("sometimes"), json(5), json{{"type", "function"}},
                             json{{"type", "function"}, {"function", {{"name", "nope"}}}},
                             json{{"type", "tool"}, {"function", {{"name", "get_weather"}}}}}) {
    json b = with(tools);
    b["tool_choice"] = choice;
    Refused(b, true, "tool_choice");
  }
  json no_tools = Base(true);
  no_tools["tool_choice"] = "required";
  Refused(no_tools, true, "tool_choice");
  no_tools["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  Refused(no_tools, true, "tool_choice");
  json p = with(tools);
  p["parallel_tool_calls"] = "yes";
  Refused(p, true, "parallel_tool_calls");
  // Tools are for chat only.
  json completion = Base(false);
  completion["tools"] = tools;
  Refused(completion, false, "tools");
}

TEST_F(StructuredOutput, ToolHistoryIsAcceptedAndRenderedHermesStyle) {
  json body = Base(true);
  body["tools"] = {kWeather};
  body["messages"] = {
      {{"role", "system"}, {"content", "Be brief."}},
      {{"role", "user"}, {"content", "Weather in Paris?"}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls",
        {{{"id", "call_1"}, {"type", "function"},
          {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}}}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "18C"}},
      {{"role", "tool"}, {"tool_call_id", "call_2"}, {"content", "sunny"}},
  };
  const CompletionCall c = Accepted(body, true);
  const std::string& p = c.prompt_texts[0];
  EXPECT_EQ(p.rfind("<|im_start|>system\nBe brief.\n\n# Tools", 0), 0u) << p;
  EXPECT_NE(p.find("<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                   "\"Paris\"}}\n</tool_call><|im_end|>\n"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\nsunny\n"
                   "</tool_response><|im_end|>\n<|im_start|>assistant\n"),
            std::string::npos)
      << p;
  // The tools are shown in the client's key order (nlohmann::json would sort them).
  const ojson ordered = {{"model", "m"},
                         {"messages", ojson::array({{{"role", "user"}, {"content", "hi"}}})},
                         {"tools", ojson::array({{{"type", "function"},
                                                  {"function", {{"name", "f"},
                                                                {"parameters", {{"type", "object"},
                                                                                {"properties", {{"z", {{"type", "string"}}},
                                                                                                {"a", {{"type", "string"}}}}}}}}}}})}};
  ApiContext ctx{spec_, tokenizer_, "m", nullptr};
  auto r = ParseCompletionRequest(ordered.dump(), true, ctx);
  ASSERT_TRUE(std::holds_alternative<CompletionCall>(r));
  EXPECT_NE(std::get<CompletionCall>(r).prompt_texts[0].find(
                "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                "\"properties\":{\"z\":{\"type\":\"string\"},\"a\""),
            std::string::npos)
      << std::get<CompletionCall>(r).prompt_texts[0];
  // Without tools the template is plain ChatML, as before.
  EXPECT_EQ(RenderDefaultChatTemplate(json::array({{{"role", "user"}, {"content", "hi"}}})),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // A tool message needs its id; tool_calls belong to assistants; other roles need content.
  json missing_id = Base(true);
  missing_id["messages"].push_back({{"role", "tool"}, {"content", "x"}});
  Refused(missing_id, true, "messages");
  json user_calls = Base(true);
  user_calls["messages"][0]["tool_calls"] = json::array();
  Refused(user_calls, true, "messages");
  json null_user = Base(true);
  null_user["messages"][0]["content"] = nullptr;
  Refused(null_user, true, "messages");
  json bad_call = Base(true);
  bad_call["messages"].push_back({{"role", "assistant"}, {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", json::object()}}}}}}});
  Refused(bad_call, true, "messages");
}

// Seeded mutations of the constraint fields: every answer is a call or a 4xx, nothing throws.
TEST_F(StructuredOutput, SeededMutationsNeverEscapeAsExceptionsOr5xx) {
  std::mt19937 rng(7);
  const std::vector<json> values = {
      nullptr, true, 0, -1, 1e300, "", "x", "(", "[a-", "root ::= \"a\"", json::array(), json::array({"a", nullptr}),
      json::object(), json{{"type", "text"}}, json{{"type", "json_object"}}, json{{"type", "json_schema"}},
      json{{"type", "json_schema"}, {"json_schema", {{"name", "n"}, {"schema", {{"type", "object"}}}}}},
      json{{"type", "object"}, {"properties", {{"a", {{"$ref", "#/nope"}}}}}}, json{{"$ref", "#"}},
      json{{"type", "array"}, {"items", {{"type", "integer"}, {"minimum", 5}, {"maximum", 2}}}},
      json{{"json", {{"type", "string"}}}}, json{{"regex", "a|"}}, json{{"choice", {"a"}}},
      json::array({kWeather}), json::array({kWeather, kTime}), json::array({json{{"type", "function"}}}),
      "required", "none", "auto", json{{"type", "function"}, {"function", {{"name", "get_weather"}}}},
      json{{"type", "function"}, {"function", {{"name", 5}}}}};
  const std::vector<std::string> keys = {"response_format", "guided_json", "guided_regex", "guided_choice",
                                         "guided_grammar", "structured_outputs", "tools", "tool_choice",
                                         "parallel_tool_calls"};
  int accepted = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    const bool chat = rng() % 2;
    json body = Base(chat);
    for (int k = 0, n = 1 + rng() % 3; k < n; ++k) body[keys[rng() % keys.size()]] = values[rng() % values.size()];
    std::variant<CompletionCall, ApiError> r;
    ApiContext ctx{spec_, tokenizer_, "m", nullptr};
    ASSERT_NO_THROW(r = ParseCompletionRequest(body.dump(), chat, ctx)) << body.dump();
    if (auto* e = std::get_if<ApiError>(&r)) {
      EXPECT_EQ(e->status, 400) << body.dump() << ": " << e->message;
      EXPECT_FALSE(e->param.empty()) << body.dump() << ": " << e->message;
      ++refused;
    } else {
      ++accepted;
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 500);
}

TEST(ToolCallParsers, Hermes) {
  const auto parse = [](const std::string& t) { return ParseToolCalls(ToolCallFormat::kHermes, t); };
  auto one = parse("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  ASSERT_EQ(one.calls.size(), 1u);
  EXPECT_FALSE(one.content.has_value());
  EXPECT_EQ(one.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(one.calls[0].arguments), json({{"city", "Paris"}}));

  auto several = parse("Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
                       "<tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": {\"z\": [1, {\"w\": null}]}}}\n</tool_call>");
  ASSERT_EQ(several.calls.size(), 2u);
  EXPECT_EQ(several.content, "Let me check.\n");
  EXPECT_EQ(several.calls[1].name, "b");
  EXPECT_EQ(json::parse(several.calls[1].arguments), json::parse(R"({"y": {"z": [1, {"w": null}]}})"));

  auto unicode = parse("<tool_call>{\"name\": \"say\", \"arguments\": {\"text\": \"日本語 ünï \\u00e9\"}}</tool_call>");
  ASSERT_EQ(unicode.calls.size(), 1u);
  EXPECT_EQ(json::parse(unicode.calls[0].arguments)["text"], "日本語 ünï é");
  EXPECT_NE(unicode.calls[0].arguments.find("日本語"), std::string::npos);  // UTF-8 kept, not \u-escaped

  auto malformed = parse("Hi <tool_call>{\"name\": \"a\", \"arguments\": {</tool_call> there");
  EXPECT_TRUE(malformed.calls.empty());
  EXPECT_EQ(malformed.content, "Hi <tool_call>{\"name\": \"a\", \"arguments\": {</tool_call> there");
  auto no_name = parse("<tool_call>{\"arguments\": {}}</tool_call>");
  EXPECT_TRUE(no_name.calls.empty());
  auto plain = parse("just text, a < b");
  EXPECT_TRUE(plain.calls.empty());
  EXPECT_EQ(plain.content, "just text, a < b");
  EXPECT_EQ(parse("").content, "");
  // Unclosed at the end (the model stopped at EOS): still a call.
  auto unclosed = parse("<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n");
  ASSERT_EQ(unclosed.calls.size(), 1u);
  EXPECT_EQ(unclosed.calls[0].arguments, "{}");
  // Whitespace before the call is no content; a malformed block after a call is dropped.
  auto ws = parse("\n\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>junk</tool_call>");
  ASSERT_EQ(ws.calls.size(), 1u);
  EXPECT_FALSE(ws.content.has_value());
  // String arguments are taken as the JSON text they hold.
  auto str = parse("<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 1}\"}</tool_call>");
  ASSERT_EQ(str.calls.size(), 1u);
  EXPECT_EQ(str.calls[0].arguments, "{\"k\": 1}");
}

TEST(ToolCallParsers, Llama3Json) {
  const auto parse = [](const std::string& t) { return ParseToolCalls(ToolCallFormat::kLlama3Json, t); };
  auto one = parse("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
  ASSERT_EQ(one.calls.size(), 1u);
  EXPECT_FALSE(one.content.has_value());
  EXPECT_EQ(one.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(one.calls[0].arguments), json({{"city", "Paris"}}));
  auto tagged = parse("<|python_tag|>{\"name\": \"a\", \"parameters\": {\"s\": \"x;y}\"}}; {\"name\": \"b\", \"arguments\": {}}");
  ASSERT_EQ(tagged.calls.size(), 2u);
  EXPECT_EQ(json::parse(tagged.calls[0].arguments)["s"], "x;y}");
  EXPECT_EQ(tagged.calls[1].name, "b");
  auto unicode = parse(" {\"name\": \"é\", \"parameters\": {\"t\": \"日本\"}}");
  ASSERT_EQ(unicode.calls.size(), 1u);
  EXPECT_EQ(unicode.calls[0].name, "é");
  for (const std::string bad : {"Sure: {\"name\": \"a\", \"parameters\": {}}", "{\"name\": \"a\", \"parameters\": {}",
                                "{\"name\": \"a\"}", "{\"name\": 1, \"parameters\": {}}",
                                "{\"name\": \"a\", \"parameters\": {}} trailing", "hello", ""}) {
    auto r = parse(bad);
    EXPECT_TRUE(r.calls.empty()) << bad;
    EXPECT_EQ(r.content, bad);
  }
}

TEST(ToolCallParsers, FormatFromFlagAndTemplate) {
  EXPECT_EQ(*ResolveToolCallFormat("hermes", "<|python_tag|>"), ToolCallFormat::kHermes);
  EXPECT_EQ(*ResolveToolCallFormat("llama3_json", ""), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(*ResolveToolCallFormat("auto", "... <tool_call> ..."), ToolCallFormat::kHermes);
  EXPECT_EQ(*ResolveToolCallFormat("auto", "{% if message.role == 'ipython' %}"), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(*ResolveToolCallFormat("auto", "<|python_tag|>"), ToolCallFormat::kLlama3Json);
  EXPECT_EQ(*ResolveToolCallFormat("auto", ""), ToolCallFormat::kHermes);
  EXPECT_FALSE(ResolveToolCallFormat("mistral", "").ok());
}

// The text cut into pieces (random sizes, seeded) streamed through a ToolCallStream; the deltas
// accumulated as the OpenAI SDK does.
ToolCallOutput Streamed(ToolMode mode, ToolCallFormat format, const std::string& name, const std::string& text,
                        uint64_t cut_seed, uint64_t id_seed = 99) {
  std::mt19937 rng(static_cast<uint32_t>(cut_seed));
  ToolCallStream s(mode, format, name, id_seed);
  ToolCallOutput out;
  for (size_t at = 0; at < text.size();) {
    const size_t n = std::min<size_t>(text.size() - at, 1 + rng() % 7);
    const ToolStreamStep step = s.Add(text.substr(at, n));
    // Every first delta of a call carries id, type and name; later ones only arguments.
    for (const ToolCallDelta& d : step.calls) {
      const json j = d.ToJson();
      if (!d.id.empty()) {
        EXPECT_EQ(j["type"], "function");
        EXPECT_TRUE(j["function"].contains("name"));
        EXPECT_EQ(d.id.rfind("chatcmpl-tool-", 0), 0u);
        EXPECT_EQ(d.id.size(), 14u + 32u);
      } else {
        EXPECT_FALSE(j.contains("id"));
      }
    }
    AccumulateToolStep(step, &out);
    at += n;
  }
  AccumulateToolStep(s.Finish(), &out);
  return out;
}

void ExpectSame(const ToolCallOutput& a, const ToolCallOutput& b, const std::string& what) {
  EXPECT_EQ(a.content.value_or(""), b.content.value_or("")) << what;
  ASSERT_EQ(a.calls.size(), b.calls.size()) << what;
  for (size_t i = 0; i < a.calls.size(); ++i) {
    EXPECT_EQ(a.calls[i].id, b.calls[i].id) << what;
    EXPECT_EQ(a.calls[i].name, b.calls[i].name) << what;
    EXPECT_EQ(a.calls[i].arguments, b.calls[i].arguments) << what;
  }
}

TEST(ToolCallStreaming, DeltasAccumulateIntoTheWholeTextsCalls) {
  const std::vector<std::string> hermes = {
      "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>",
      "Let me see. <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": \"b\", "
      "\"arguments\": {\"q\": \"<tool_call> inside\"}}</tool_call> trailing",
      "no calls here, only < and <tool and <tool_cal",
      "Hi <tool_call>{broken</tool_call> then <tool_call>{\"name\": \"c\", \"arguments\": {\"u\": \"日本\"}}</tool_call>",
      "  \n<tool_call>{\"name\": \"a\", \"arguments\": {}}",
      "   ",
      "",
      "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>text after<tool_call>bad",
  };
  const std::vector<std::string> llama = {
      "{\"name\": \"a\", \"parameters\": {\"x\": [1, 2]}}",
      "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"s\": \"é\"}}",
      "  {\"name\": \"a\", \"parameters\": {} oops",
      "Hello {\"name\": \"a\"}",
      "<|python",
      " ",
  };
  for (uint64_t cut = 0; cut < 20; ++cut) {
    for (const std::string& t : hermes)
      ExpectSame(Streamed(ToolMode::kAuto, ToolCallFormat::kHermes, "", t, cut),
                 ToolCallsOfText(ToolMode::kAuto, ToolCallFormat::kHermes, "", 99, t), t);
    for (const std::string& t : llama)
      ExpectSame(Streamed(ToolMode::kAuto, ToolCallFormat::kLlama3Json, "", t, cut),
                 ToolCallsOfText(ToolMode::kAuto, ToolCallFormat::kLlama3Json, "", 99, t), t);
  }
  // The whole-text parse agrees with the parser (ids aside).
  const ToolCallOutput whole = ToolCallsOfText(ToolMode::kAuto, ToolCallFormat::kHermes, "", 1, hermes[1]);
  ASSERT_EQ(whole.calls.size(), 2u);
  EXPECT_EQ(whole.content, "Let me see. ");
  EXPECT_EQ(whole.calls[1].arguments, "{\"q\":\"<tool_call> inside\"}");
  EXPECT_NE(whole.calls[0].id, whole.calls[1].id);
}

TEST(ToolCallStreaming, RequiredArrayStreamsArgumentsAsGenerated) {
  const std::string text =
      "[ {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa\\\"ris}\", \"n\": [1, {\"a\": \"]\"}]}},\n"
      "{\"name\":\"get\\u002dtime\",\"parameters\":{}} ]";
  const ToolCallOutput whole = ToolCallsOfText(ToolMode::kRequired, ToolCallFormat::kHermes, "", 5, text);
  ASSERT_EQ(whole.calls.size(), 2u);
  EXPECT_FALSE(whole.content.has_value());
  EXPECT_EQ(whole.calls[0].name, "get_weather");
  EXPECT_EQ(whole.calls[0].arguments, "{\"city\": \"Pa\\\"ris}\", \"n\": [1, {\"a\": \"]\"}]}");
  EXPECT_EQ(whole.calls[1].name, "get-time");
  EXPECT_EQ(whole.calls[1].arguments, "{}");
  for (uint64_t cut = 0; cut < 30; ++cut)
    ExpectSame(Streamed(ToolMode::kRequired, ToolCallFormat::kHermes, "", text, cut, 5), whole, "required");
  // Parameters first, name after: the arguments wait for the name.
  const std::string swapped = "[{\"parameters\": {\"k\": true}, \"name\": \"f\"}]";
  const ToolCallOutput s = ToolCallsOfText(ToolMode::kRequired, ToolCallFormat::kHermes, "", 5, swapped);
  ASSERT_EQ(s.calls.size(), 1u);
  EXPECT_EQ(s.calls[0].name, "f");
  EXPECT_EQ(s.calls[0].arguments, "{\"k\": true}");
  // Arguments arrive before the array ends: streamed as generated.
  ToolCallStream st(ToolMode::kRequired, ToolCallFormat::kHermes, "", 5);
  EXPECT_TRUE(st.Add("[{\"name\": \"get_weather\", \"par").calls.size() == 1u);
  const ToolStreamStep mid = st.Add("ameters\": {\"city\": \"Pa");
  ASSERT_EQ(mid.calls.size(), 1u);
  EXPECT_EQ(mid.calls[0].arguments, "{\"city\": \"Pa");
  EXPECT_TRUE(st.made_calls());
}

TEST(ToolCallStreaming, NamedFunctionIsTheWholeText) {
  const std::string text = "{\"city\": \"Paris\", \"unit\": \"c\"}";
  const ToolCallOutput whole = ToolCallsOfText(ToolMode::kNamed, ToolCallFormat::kHermes, "get_weather", 3, text);
  ASSERT_EQ(whole.calls.size(), 1u);
  EXPECT_FALSE(whole.content.has_value());
  EXPECT_EQ(whole.calls[0].name, "get_weather");
  EXPECT_EQ(whole.calls[0].arguments, text);
  for (uint64_t cut = 0; cut < 10; ++cut)
    ExpectSame(Streamed(ToolMode::kNamed, ToolCallFormat::kHermes, "get_weather", text, cut, 3), whole, "named");
  // Same seed, same ids; another seed, others.
  EXPECT_EQ(ToolCallsOfText(ToolMode::kNamed, ToolCallFormat::kHermes, "f", 3, "{}").calls[0].id, whole.calls[0].id);
  EXPECT_NE(ToolCallsOfText(ToolMode::kNamed, ToolCallFormat::kHermes, "f", 4, "{}").calls[0].id, whole.calls[0].id);
}

// A vocabulary of the 256 single bytes and an end-of-sequence token: a grammar's sentences can be
// fed byte by byte.
std::shared_ptr<const grammar::TokenVocabulary> ByteVocabulary() {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(std::string(1, static_cast<char>(b)));
  bytes.push_back("");  // 256: EOS
  return std::make_shared<grammar::TokenVocabulary>(bytes, std::vector<int>{256});
}

bool Matches(const std::shared_ptr<const grammar::CompiledGrammar>& g, const std::string& text) {
  grammar::GrammarMatcher m(g);
  for (unsigned char c : text)
    if (!m.AcceptToken(c)) return false;
  return m.CanTerminate();
}

TEST(ToolSchemas, RequiredAndNamedGrammarsAcceptTheirCalls) {
  const ojson tools = ojson::parse(json::array({kWeather, kTime}).dump());
  const ojson required = RequiredToolsSchema(tools, true);
  EXPECT_EQ(required["type"], "array");
  EXPECT_EQ(required["minItems"], 1);
  EXPECT_FALSE(required.contains("maxItems"));
  EXPECT_EQ(required["items"]["anyOf"].size(), 2u);
  EXPECT_EQ(required["items"]["anyOf"][0]["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(required["items"]["anyOf"][0]["required"], ojson({"name", "parameters"}));
  EXPECT_EQ(required["items"]["anyOf"][0]["additionalProperties"], false);
  EXPECT_EQ(RequiredToolsSchema(tools, false)["maxItems"], 1);

  auto vocab = ByteVocabulary();
  auto g = grammar::JsonSchemaToGrammar(required);
  ASSERT_TRUE(g.ok()) << g.status();
  auto compiled = grammar::CompileGrammar(*g, vocab);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_TRUE(Matches(*compiled, R"([{"name": "get_weather", "parameters": {"city": "Paris"}}])"));
  EXPECT_TRUE(Matches(*compiled, R"([{"name":"get-time_2","parameters":{}},{"name":"get_weather","parameters":{"city":"x","unit":"f"}}])"));
  EXPECT_FALSE(Matches(*compiled, R"([])"));
  EXPECT_FALSE(Matches(*compiled, R"([{"name": "other", "parameters": {}}])"));
  EXPECT_FALSE(Matches(*compiled, R"([{"name": "get_weather", "parameters": {"city": "Paris"}, "x": 1}])"));
  EXPECT_FALSE(Matches(*compiled, R"([{"name": "get_weather", "parameters": {"city": "far too long"}}])"));

  auto named = grammar::JsonSchemaToGrammar(ToolParametersSchema(tools[0]));
  ASSERT_TRUE(named.ok()) << named.status();
  auto nc = grammar::CompileGrammar(*named, vocab);
  ASSERT_TRUE(nc.ok()) << nc.status();
  EXPECT_TRUE(Matches(*nc, R"({"city": "Paris", "unit": "c"})"));
  EXPECT_FALSE(Matches(*nc, R"({"unit": "c"})"));
  // No parameters: the empty object only.
  const ojson bare = {{"type", "function"}, {"function", {{"name", "ping"}}}};
  auto empty = grammar::CompileGrammar(*grammar::JsonSchemaToGrammar(ToolParametersSchema(bare)), vocab);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(Matches(*empty, "{}"));
  EXPECT_FALSE(Matches(*empty, R"({"a": 1})"));
}

TEST(GrammarCache, CompilesOnceAndDropsTheLeastRecentlyUsed) {
  std::atomic<int> notified{0};
  GrammarCache cache(ByteVocabulary(), 2, [&] { ++notified; });
  const grammar::Grammar a = grammar::ChoiceGrammar({"yes", "no"});
  const grammar::Grammar b = grammar::ChoiceGrammar({"x"});
  const grammar::Grammar c = grammar::ChoiceGrammar({"y"});
  auto first = cache.GetBlocking(a);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(Matches(*first, "yes"));
  auto again = cache.GetBlocking(grammar::ChoiceGrammar({"yes", "no"}));  // equal text: the same compiled grammar
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->get(), again->get());
  EXPECT_EQ(cache.compiles(), 1);
  ASSERT_TRUE(cache.GetBlocking(b).ok());
  ASSERT_TRUE(cache.GetBlocking(a).ok());  // a is now the most recent
  ASSERT_TRUE(cache.GetBlocking(c).ok());  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.compiles(), 3);
  ASSERT_TRUE(cache.GetBlocking(a).ok());
  EXPECT_EQ(cache.compiles(), 3);
  ASSERT_TRUE(cache.GetBlocking(b).ok());
  EXPECT_EQ(cache.compiles(), 4);
  // The worker calls back right after it answers: wait for it.
  for (int i = 0; i < 1000 && notified.load() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(notified.load(), 4);
  // Many threads asking for one new grammar at once: one compile.
  std::vector<std::thread> threads;
  std::vector<const grammar::CompiledGrammar*> got(8);
  const grammar::Grammar d = grammar::ChoiceGrammar({"d", "dd"});
  for (int i = 0; i < 8; ++i) threads.emplace_back([&, i] { got[i] = cache.GetBlocking(d)->get(); });
  for (auto& t : threads) t.join();
  for (auto* p : got) EXPECT_EQ(p, got[0]);
  EXPECT_EQ(cache.compiles(), 5);
}

}  // namespace
}  // namespace strata::testing
