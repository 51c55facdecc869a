#include "runtime/serving/openai_api.h"

#include <cmath>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using json = nlohmann::json;

ApiError Bad(const std::string& param, const std::string& message, int status = 400, const std::string& code = "") {
  ApiError e;
  e.status = status;
  e.param = param;
  e.message = message;
  e.code = code;
  return e;
}

// The request schema: every field either endpoint accepts, its JSON type, its range, and which
// endpoints take it (OpenAI's fields and vLLM's extras). A field sent as null is absent. Anything
// not listed is refused, as OpenAI does. Values are checked here before any step reads them, so
// no later read can meet a wrong type (and throw).
enum class Kind { kBool, kInt, kNumber, kString, kObject, kArray, kStringOrArray, kAny };
constexpr int kCompletions = 1, kChat = 2, kBoth = 3;
constexpr double kNoLimit = 1e300;
struct Field {
  const char* name;
  Kind kind;
  int endpoints;
  double min = -kNoLimit, max = kNoLimit;  // numbers; inclusive
  bool exclusive_min = false;
};
constexpr Field kSchema[] = {
    {"model", Kind::kString, kBoth},
    {"prompt", Kind::kAny, kCompletions},  // a string, token ids, or a list of either: ParseCompletionPrompt
    {"messages", Kind::kArray, kChat},
    {"max_tokens", Kind::kInt, kBoth, 1},
    {"max_completion_tokens", Kind::kInt, kChat, 1},
    {"temperature", Kind::kNumber, kBoth, 0, 100},
    {"top_p", Kind::kNumber, kBoth, 0, 1, true},
    {"top_k", Kind::kInt, kBoth, -1},
    {"min_p", Kind::kNumber, kBoth, 0, 1},
    {"seed", Kind::kInt, kBoth},
    {"stop", Kind::kStringOrArray, kBoth},
    {"stop_token_ids", Kind::kArray, kBoth},
    {"stream", Kind::kBool, kBoth},
    {"stream_options", Kind::kObject, kBoth},
    {"logprobs", Kind::kAny, kBoth},  // an integer 0-20 for completions (vLLM's max_logprobs; OpenAI: 5), a boolean for chat
    {"top_logprobs", Kind::kInt, kChat, 0, 20},
    {"echo", Kind::kBool, kCompletions},
    {"n", Kind::kInt, kBoth, 1, 128},
    {"best_of", Kind::kInt, kCompletions, 1, 128},
    {"user", Kind::kString, kBoth},
    {"presence_penalty", Kind::kNumber, kBoth, -2, 2},
    {"frequency_penalty", Kind::kNumber, kBoth, -2, 2},
    {"repetition_penalty", Kind::kNumber, kBoth, 0, 2, true},
    {"logit_bias", Kind::kObject, kBoth},
    {"min_tokens", Kind::kInt, kBoth, 0},
    {"suffix", Kind::kString, kCompletions},
    {"ignore_eos", Kind::kBool, kBoth},
    {"return_token_ids", Kind::kBool, kBoth},
    {"include_stop_str_in_output", Kind::kBool, kBoth},
    {"skip_special_tokens", Kind::kBool, kBoth},
    // Structured output (structured_output.h checks the shapes inside) and tools.
    {"response_format", Kind::kObject, kBoth},
    {"guided_json", Kind::kAny, kBoth},  // a schema object, or a string holding one
    {"guided_regex", Kind::kString, kBoth},
    {"guided_choice", Kind::kArray, kBoth},
    {"guided_grammar", Kind::kString, kBoth},
    {"structured_outputs", Kind::kObject, kBoth},
    {"tools", Kind::kArray, kChat},
    {"tool_choice", Kind::kAny, kChat},  // "none" | "auto" | "required" | {"type": "function", ...}
    {"parallel_tool_calls", Kind::kBool, kChat},
};

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kBool: return "a boolean";
    case Kind::kInt: return "an integer";
    case Kind::kNumber: return "a number";
    case Kind::kString: return "a string";
    case Kind::kObject: return "an object";
    case Kind::kArray: return "an array";
    case Kind::kStringOrArray: return "a string or an array";
    case Kind::kAny: return "a value";
  }
  return "a value";
}

bool HasKind(const json& v, Kind k) {
  switch (k) {
    case Kind::kBool: return v.is_boolean();
    case Kind::kInt: return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()) &&
                                                      std::abs(v.get<double>()) < 9e15);
    case Kind::kNumber: return v.is_number();
    case Kind::kString: return v.is_string();
    case Kind::kObject: return v.is_object();
    case Kind::kArray: return v.is_array();
    case Kind::kStringOrArray: return v.is_string() || v.is_array();
    case Kind::kAny: return true;
  }
  return false;
}

// Drops null fields (absent), refuses unknown ones and wrong types or ranges, and turns integral
// floats of integer fields into integers.
std::optional<ApiError> ApplySchema(json& j, bool chat) {
  const int endpoint = chat ? kChat : kCompletions;
  for (auto it = j.begin(); it != j.end();) {
    if (it->is_null()) {
      it = j.erase(it);
      continue;
    }
    ++it;
  }
  for (auto& [key, value] : j.items()) {
    const Field* f = nullptr;
    for (const Field& c : kSchema)
      if (key == c.name && (c.endpoints & endpoint)) f = &c;
    if (f == nullptr) return Bad(key, absl::StrCat("unknown field '", key, "'"));
    if (!HasKind(value, f->kind)) return Bad(key, absl::StrCat("'", key, "' must be ", KindName(f->kind)));
    if (f->kind == Kind::kInt && value.is_number_float()) value = static_cast<int64_t>(value.get<double>());
    if (f->kind == Kind::kInt || f->kind == Kind::kNumber) {
      const double v = value.get<double>();
      const bool low = f->exclusive_min ? !(v > f->min) : !(v >= f->min);
      if (low || !(v <= f->max))
        return Bad(key, f->max < kNoLimit
                            ? absl::StrCat("'", key, "' must be in ", f->exclusive_min ? "(" : "[", f->min, ", ", f->max, "]")
                            : absl::StrCat("'", key, "' must be at least ", f->min));
    }
  }
  return std::nullopt;
}

}  // namespace

json ErrorBody(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

json ModelsBody(const std::string& served_model_name, int64_t created, int64_t max_model_len) {
  json m = {{"id", served_model_name}, {"object", "model"}, {"created", created}, {"owned_by", "strata"}};
  if (max_model_len > 0) m["max_model_len"] = max_model_len;
  return {{"object", "list"}, {"data", json::array({m})}};
}

ApiError EngineRefusal(const absl::Status& status, bool chat) {
  const bool too_long = absl::StrContains(status.message(), "context length");
  return ApiError{400, std::string(status.message()), "invalid_request_error", chat ? "messages" : "prompt",
                  too_long ? "context_length_exceeded" : ""};
}

namespace {

using ojson = nlohmann::ordered_json;

// In the client's key order (Dump would sort the keys).
std::string DumpOrdered(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// A message's content as text: a string, text parts joined, or nothing (null).
std::string ContentText(const ojson& m) {
  if (!m.contains("content") || m["content"].is_null()) return "";
  if (m["content"].is_string()) return m["content"].get<std::string>();
  std::string joined;
  for (const ojson& part : m["content"]) joined += part.value("text", "");
  return joined;
}

// An assistant's tool call as Hermes writes it; arguments that are JSON text go in as they are.
std::string HermesCall(const ojson& tool_call) {
  const ojson& f = tool_call.contains("function") ? tool_call["function"] : tool_call;
  std::string args = "{}";
  if (f.contains("arguments") && f["arguments"].is_string()) {
    const std::string& a = f["arguments"].get_ref<const std::string&>();
    args = ojson::parse(a, nullptr, false).is_discarded() ? DumpOrdered(ojson(a)) : a;
  } else if (f.contains("arguments") && !f["arguments"].is_null()) {
    args = DumpOrdered(f["arguments"]);
  }
  return "\n<tool_call>\n{\"name\": " + DumpOrdered(f.value("name", ojson(""))) + ", \"arguments\": " + args + "}\n</tool_call>";
}

}  // namespace

std::string RenderDefaultChatTemplate(const ojson& messages, const ojson& tools) {
  std::string out;
  size_t i = 0;
  if (tools.is_array() && !tools.empty()) {
    out += "<|im_start|>system\n";
    if (!messages.empty() && messages[0].value("role", "") == "system") {
      out += ContentText(messages[0]) + "\n\n";
      i = 1;
    }
    out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
           "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const ojson& t : tools) out += "\n" + DumpOrdered(t);
    out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
           "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
           "<args-json-object>}\n</tool_call><|im_end|>\n";
  }
  for (; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string role = m["role"].get<std::string>();
    if (role == "tool") {  // consecutive results share one user turn
      const bool first = i == 0 || messages[i - 1]["role"] != "tool";
      const bool last = i + 1 == messages.size() || messages[i + 1]["role"] != "tool";
      out += (first ? "<|im_start|>user" : "") + std::string("\n<tool_response>\n") + ContentText(m) +
             "\n</tool_response>" + (last ? "<|im_end|>\n" : "");
      continue;
    }
    if (role == "assistant" && m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
      const std::string content = ContentText(m);
      out += "<|im_start|>assistant" + (content.empty() ? "" : "\n" + content);
      for (const ojson& tc : m["tool_calls"]) out += HermesCall(tc);
      out += "<|im_end|>\n";
      continue;
    }
    out += "<|im_start|>" + role + "\n" + ContentText(m) + "<|im_end|>\n";
  }
  return out + "<|im_start|>assistant\n";
}

namespace {

// A field of `j` that was sent (ApplySchema dropped the nulls).
bool Given(const json& j, const char* f) { return j.contains(f); }

// The served model, and the options Strata does not implement (refused, never ignored).
std::optional<ApiError> CheckModelAndSupport(const json& j, const ApiContext& ctx) {
  if (!j.contains("model")) return Bad("model", "'model' is required and must be a string");
  if (j["model"].get<std::string>() != ctx.served_model_name)
    return Bad("model", absl::StrCat("the model '", j["model"].get<std::string>(), "' does not exist; this server serves '",
                                     ctx.served_model_name, "'"),
               404, "model_not_found");
  if (j.contains("suffix")) return Bad("suffix", "'suffix' is not supported");
  return std::nullopt;
}

std::variant<std::vector<int>, ApiError> Encode(const std::string& text, bool chat, const ApiContext& ctx) {
  if (ctx.tokenizer == nullptr) return Bad(chat ? "messages" : "prompt", "the model has no tokenizer: send token ids");
  return ctx.tokenizer->Encode(text);
}

std::optional<ApiError> CheckMessages(const json& j) {
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
    return Bad("messages", "'messages' must be a non-empty array");
  for (const json& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return Bad("messages", "each message needs a string 'role'");
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool")
      return Bad("messages", absl::StrCat("unknown role '", role, "'"));
    // An assistant's content may be null or absent (a message that only calls tools).
    const bool no_content = !m.contains("content") || m["content"].is_null();
    if (!(no_content && role == "assistant") && (no_content || !(m["content"].is_string() || m["content"].is_array())))
      return Bad("messages", "each message needs 'content' (a string or a list of text parts)");
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (role != "assistant" || !m["tool_calls"].is_array())
        return Bad("messages", "'tool_calls' must be an array, on assistant messages only");
      for (const json& tc : m["tool_calls"])
        if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object() ||
            !tc["function"].contains("name") || !tc["function"]["name"].is_string() ||
            !tc["function"].contains("arguments") || !tc["function"]["arguments"].is_string() ||
            (tc.contains("id") && !tc["id"].is_string()))
          return Bad("messages", "each tool call needs 'function' with a string 'name' and string 'arguments'");
    }
    if (role == "tool" && (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()))
      return Bad("messages", "a 'tool' message needs a string 'tool_call_id'");
    if (!no_content && m["content"].is_array())
      for (const json& p : m["content"])
        if (!p.is_object() || p.value("type", "") != "text" || !p.contains("text") || !p["text"].is_string())
          return Bad("messages", "only text content parts are supported");
  }
  return std::nullopt;
}

// The chat rendered with the model's template (content parts joined: templates expect strings;
// tool-call arguments as objects, which templates pass through tojson, as vLLM does), or
// Strata's default one. `body` is re-read in its own key order: Python keeps insertion order, and
// a tool's parameters are shown to the model in the order the client wrote them.
std::variant<std::string, ApiError> RenderChat(const json& j, const std::string& body, const ApiContext& ctx) {
  ojson ordered = ojson::parse(body, nullptr, false);
  if (ordered.is_discarded() || !ordered.is_object() || !ordered.contains("messages") || !ordered["messages"].is_array())
    return Bad("messages", "'messages' must be a non-empty array");
  const ojson tools = ordered.contains("tools") ? ordered["tools"] : ojson();
  if (!ctx.chat || !ctx.chat->tmpl) return RenderDefaultChatTemplate(ordered["messages"], tools);
  ojson messages = ojson::array();
  for (const ojson& m : ordered["messages"]) {
    ojson copy = m;
    if (m.contains("content") && m["content"].is_array()) copy["content"] = ContentText(m);
    if (m.contains("tool_calls") && m["tool_calls"].is_array())
      for (ojson& tc : copy["tool_calls"]) {
        ojson& args = tc["function"]["arguments"];
        if (args.is_string()) {
          ojson parsed = ojson::parse(args.get<std::string>(), nullptr, false);
          if (parsed.is_object()) args = std::move(parsed);
        }
      }
    messages.push_back(std::move(copy));
  }
  ojson context = {{"messages", messages},
                   {"add_generation_prompt", j.value("add_generation_prompt", true)},
                   {"bos_token", ctx.chat->bos_token},
                   {"eos_token", ctx.chat->eos_token}};
  if (tools.is_array()) context["tools"] = tools;
  auto rendered = ctx.chat->tmpl->RenderOrdered(context);
  if (!rendered.ok()) return Bad("messages", std::string(rendered.status().message()));
  return *rendered;
}

std::optional<ApiError> ParseChatPrompt(const json& j, const std::string& body, const ApiContext& ctx,
                                        CompletionCall* c) {
  if (auto e = CheckMessages(j)) return e;
  auto text = RenderChat(j, body, ctx);
  if (auto* e = std::get_if<ApiError>(&text)) return *e;
  auto ids = Encode(std::get<std::string>(text), true, ctx);
  if (auto* e = std::get_if<ApiError>(&ids)) return *e;
  c->prompts.push_back(std::get<std::vector<int>>(std::move(ids)));
  c->prompt_texts.push_back(std::get<std::string>(std::move(text)));
  return std::nullopt;
}

std::optional<ApiError> AddPromptIds(const json& list, const ApiContext& ctx, CompletionCall* c) {
  std::vector<int> ids;
  for (const json& t : list) {
    if (!t.is_number_integer()) return Bad("prompt", "token ids must be integers");
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id >= ctx.spec->vocab_size)
      return Bad("prompt", absl::StrCat("token id ", id, " is outside the vocabulary (0..", ctx.spec->vocab_size - 1, ")"));
    ids.push_back(static_cast<int>(id));
  }
  c->prompt_texts.push_back(ctx.tokenizer ? ctx.tokenizer->Decode(ids) : "");
  c->prompts.push_back(std::move(ids));
  return std::nullopt;
}

// A text prompt gets the tokenizer's BOS and EOS (add_bos_token / add_eos_token, or the
// post-processor's template), as vLLM's add_special_tokens does for completions; token-id prompts
// and chats (whose templates write them) are taken as they are.
std::optional<ApiError> AddPromptText(const std::string& text, const ApiContext& ctx, CompletionCall* c) {
  auto ids = Encode(text, false, ctx);
  if (auto* e = std::get_if<ApiError>(&ids)) return *e;
  c->prompts.push_back(ctx.tokenizer->WithSpecialTokens(std::move(std::get<std::vector<int>>(ids))));
  c->prompt_texts.push_back(text);
  return std::nullopt;
}

// "prompt": a string, a list of token ids, or a list of either (one choice each).
std::optional<ApiError> ParseCompletionPrompt(const json& j, const ApiContext& ctx, CompletionCall* c) {
  if (!j.contains("prompt")) return Bad("prompt", "'prompt' is required");
  const json& p = j["prompt"];
  const ApiError shape = Bad("prompt", "'prompt' must be a string, a list of token ids, or a list of either");
  if (p.is_string()) return AddPromptText(p.get<std::string>(), ctx, c);
  if (!p.is_array() || p.empty()) return shape;
  if (p[0].is_number()) return AddPromptIds(p, ctx, c);
  for (const json& item : p) {
    std::optional<ApiError> err = item.is_string()  ? AddPromptText(item.get<std::string>(), ctx, c)
                                  : item.is_array() ? AddPromptIds(item, ctx, c)
                                                    : std::optional<ApiError>(shape);
    if (err) return err;
  }
  if (c->prompts.size() > 64) return Bad("prompt", "at most 64 prompts per request");
  return std::nullopt;
}

// Prompt lengths and max_tokens against the context.
std::optional<ApiError> ParseLengths(const json& j, bool chat, const ApiContext& ctx, CompletionCall* c) {
  for (const auto& ids : c->prompts)
    if (ids.empty()) return Bad(chat ? "messages" : "prompt", "the prompt is empty");
  const int context = ctx.spec->max_position_embeddings;
  size_t longest = 0;
  for (const auto& ids : c->prompts) longest = std::max(longest, ids.size());
  if (static_cast<int64_t>(longest) >= context)
    return Bad(chat ? "messages" : "prompt",
               absl::StrCat("the prompt has ", longest, " tokens; the context length is ", context), 400,
               "context_length_exceeded");
  const char* max_field = chat && j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  int64_t max_tokens = chat ? context - static_cast<int64_t>(longest) : 16;
  if (Given(j, max_field)) {
    if (!j[max_field].is_number_integer()) return Bad(max_field, absl::StrCat("'", max_field, "' must be an integer"));
    max_tokens = j[max_field].get<int64_t>();
    if (max_tokens < 1) return Bad(max_field, absl::StrCat("'", max_field, "' must be at least 1"));
    if (static_cast<int64_t>(longest) + max_tokens > context)
      return Bad(max_field,
                 absl::StrCat("the prompt (", longest, " tokens) plus ", max_field, " (", max_tokens,
                              ") exceeds the context length ", context),
                 400, "context_length_exceeded");
  }
  c->base.max_tokens = static_cast<int>(max_tokens);
  return std::nullopt;
}

// logit_bias ({"token id": bias in [-100, 100]}), stop_token_ids, min_tokens, n and best_of.
std::optional<ApiError> ParseTokenLists(const json& j, const ApiContext& ctx, CompletionCall* c) {
  const int vocab = ctx.spec->vocab_size;
  if (Given(j, "logit_bias"))
    for (const auto& [key, value] : j["logit_bias"].items()) {
      int64_t id = -1;
      if (!absl::SimpleAtoi(key, &id) || id < 0 || id >= vocab)
        return Bad("logit_bias", absl::StrCat("'logit_bias' key '", key, "' is not a token id in 0..", vocab - 1));
      if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100))
        return Bad("logit_bias", absl::StrCat("'logit_bias' of token ", key, " must be a number in [-100, 100]"));
      c->base.sampling.logit_bias.push_back({static_cast<int>(id), static_cast<float>(value.get<double>())});
    }
  if (Given(j, "stop_token_ids"))
    for (const json& t : j["stop_token_ids"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= vocab)
        return Bad("stop_token_ids", absl::StrCat("'stop_token_ids' must be token ids in 0..", vocab - 1));
      c->base.stop_token_ids.push_back(static_cast<int>(t.get<int64_t>()));
    }
  c->base.min_tokens = static_cast<int>(j.value("min_tokens", int64_t{0}));
  if (c->base.min_tokens > c->base.max_tokens)
    return Bad("min_tokens", absl::StrCat("'min_tokens' (", c->base.min_tokens, ") exceeds max_tokens (",
                                          c->base.max_tokens, ")"));
  c->n = static_cast<int>(j.value("n", int64_t{1}));
  c->best_of = static_cast<int>(j.value("best_of", int64_t{c->n}));
  if (c->best_of < c->n) return Bad("best_of", "'best_of' must be at least n");
  if (c->prompts.size() * static_cast<size_t>(c->best_of) > 256)
    return Bad(c->best_of > c->n ? "best_of" : "n", "at most 256 sequences (prompts x best_of) per request");
  return std::nullopt;
}

std::optional<ApiError> ParseSampling(const json& j, const ApiContext& ctx, CompletionCall* c) {
  // Defaults: the checkpoint's generation_config.json, else OpenAI's.
  const ModelSpec& m = *ctx.spec;
  const double temperature = Given(j, "temperature")        ? j["temperature"].get<double>()
                             : m.default_temperature >= 0 ? m.default_temperature
                                                          : 1.0;
  if (!(temperature >= 0 && temperature <= 100)) return Bad("temperature", "'temperature' must be in [0, 100]");
  const double top_p = Given(j, "top_p") ? j["top_p"].get<double>() : m.default_top_p > 0 ? m.default_top_p : 1.0;
  if (!(top_p > 0 && top_p <= 1)) return Bad("top_p", "'top_p' must be in (0, 1]");
  int64_t top_k = m.default_top_k > 0 ? m.default_top_k : 0;
  if (Given(j, "top_k")) {
    if (!j["top_k"].is_number_integer()) return Bad("top_k", "'top_k' must be an integer");
    top_k = j["top_k"].get<int64_t>();
    if (top_k == -1) top_k = 0;  // vLLM's "all"
    if (top_k < 0 || top_k > ctx.spec->vocab_size) return Bad("top_k", "'top_k' must be -1, 0 or up to the vocabulary size");
  }
  c->base.sampling.temperature = static_cast<float>(temperature);
  c->base.sampling.top_p = static_cast<float>(top_p);
  c->base.sampling.top_k = static_cast<int>(top_k);
  if (Given(j, "seed")) {
    if (!j["seed"].is_number_integer()) return Bad("seed", "'seed' must be an integer");
    c->base.sampling.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
    c->tool_id_seed = c->base.sampling.seed;  // a seeded request gets the same tool-call ids every time
  } else {
    c->tool_id_seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  c->base.ignore_eos = j.value("ignore_eos", false);
  c->base.sampling.min_p = static_cast<float>(j.value("min_p", 0.0));
  c->base.sampling.presence_penalty = static_cast<float>(j.value("presence_penalty", 0.0));
  c->base.sampling.frequency_penalty = static_cast<float>(j.value("frequency_penalty", 0.0));
  c->base.sampling.repetition_penalty = static_cast<float>(j.value("repetition_penalty", 1.0));
  return ParseTokenLists(j, ctx, c);
}

std::optional<ApiError> ParseStop(const json& j, const ApiContext& ctx, CompletionCall* c) {
  if (!Given(j, "stop")) return std::nullopt;
  const json& s = j["stop"];
  const ApiError shape = Bad("stop", "'stop' must be a string or a list of up to 4 strings");
  if (s.is_string()) {
    c->stop.push_back(s.get<std::string>());
  } else if (s.is_array() && s.size() <= 4) {
    for (const json& x : s) {
      if (!x.is_string()) return shape;
      c->stop.push_back(x.get<std::string>());
    }
  } else {
    return shape;
  }
  for (const std::string& text : c->stop)
    if (text.empty()) return Bad("stop", "stop strings must not be empty");
  if (!c->stop.empty() && ctx.tokenizer == nullptr) return Bad("stop", "stop strings need a tokenizer");
  return std::nullopt;
}

// stream, stream_options, logprobs, echo, return_token_ids.
std::optional<ApiError> ParseOutputOptions(const json& j, bool chat, CompletionCall* c) {
  c->stream = j.value("stream", false);
  if (Given(j, "stream_options")) {
    for (const auto& [key, value] : j["stream_options"].items()) {
      if (key != "include_usage" && key != "continuous_usage_stats")
        return Bad("stream_options", absl::StrCat("unknown field 'stream_options.", key, "'"));
      if (!value.is_null() && !value.is_boolean())
        return Bad("stream_options", absl::StrCat("'stream_options.", key, "' must be a boolean"));
    }
    const json& u = j["stream_options"].contains("include_usage") ? j["stream_options"]["include_usage"] : json();
    c->include_usage = u.is_boolean() && u.get<bool>();
  }
  if (Given(j, "logprobs")) {
    if (chat) {
      if (!j["logprobs"].is_boolean()) return Bad("logprobs", "'logprobs' must be a boolean");
      c->logprobs = j["logprobs"].get<bool>() ? static_cast<int>(j.value("top_logprobs", int64_t{0})) : -1;
    } else {
      if (!j["logprobs"].is_number_integer()) return Bad("logprobs", "'logprobs' must be an integer");
      const int64_t lp = j["logprobs"].get<int64_t>();
      if (lp < 0 || lp > 20) return Bad("logprobs", "'logprobs' must be in [0, 20]");
      c->logprobs = static_cast<int>(lp);
    }
  }
  if (chat && Given(j, "top_logprobs") && c->logprobs < 0)
    return Bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  c->base.top_logprobs = std::max(c->logprobs, 0);
  c->base.logprob = c->logprobs >= 0 || c->best_of > c->n;  // what the response or the ranking reads
  c->echo = j.value("echo", false);
  c->return_token_ids = j.value("return_token_ids", false);
  c->include_stop_str_in_output = j.value("include_stop_str_in_output", false);
  c->skip_special_tokens = j.value("skip_special_tokens", true);
  if (c->stream && c->best_of > c->n) return Bad("best_of", "'best_of' > n cannot be streamed");
  return std::nullopt;
}

// response_format, guided_*, structured_outputs, tools and tool_choice (structured_output.h).
std::optional<ApiError> ParseConstraint(const std::string& body, bool chat, const ApiContext& ctx, CompletionCall* c) {
  auto parsed = ParseOutputConstraint(ojson::parse(body, nullptr, false), chat);
  if (auto* e = std::get_if<ConstraintError>(&parsed)) return Bad(e->param, e->message);
  c->constraint = std::get<OutputConstraint>(std::move(parsed));
  c->tool_format = ctx.tool_format;
  if (c->constraint.grammar && ctx.tokenizer == nullptr)
    return Bad(c->constraint.param, "structured outputs need the model's tokenizer");
  return std::nullopt;
}

}  // namespace

std::variant<CompletionCall, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                              const ApiContext& ctx) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Bad("", "the request body is not valid JSON");
  if (!j.is_object()) return Bad("", "the request body must be a JSON object");
  CompletionCall c;
  c.chat = chat;
  // In this order: a wrong type is a 400 naming the field before any value is looked at.
  if (auto e = ApplySchema(j, chat)) return *e;
  if (auto e = CheckModelAndSupport(j, ctx)) return *e;
  // Before the prompt: the tools are checked before the template shows them to the model.
  if (auto e = ParseConstraint(body, chat, ctx, &c)) return *e;
  if (auto e = chat ? ParseChatPrompt(j, body, ctx, &c) : ParseCompletionPrompt(j, ctx, &c)) return *e;
  if (auto e = ParseLengths(j, chat, ctx, &c)) return *e;
  if (auto e = ParseSampling(j, ctx, &c)) return *e;
  if (auto e = ParseStop(j, ctx, &c)) return *e;
  if (auto e = ParseOutputOptions(j, chat, &c)) return *e;
  return c;
}

std::string StopAwareText::Release() {
  // Hold back the longest tail of held_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > hold; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopAwareText::Add(int token) {
  if (stopped_) return "";
  held_ += dec_.Add(token);
  size_t cut = std::string::npos, cut_end = 0;
  for (const std::string& s : stop_)
    if (const size_t at = held_.find(s); at < cut) {
      cut = at;
      cut_end = at + s.size();
    }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, include_stop_ ? cut_end : cut);
    held_.clear();
    return out;
  }
  return Release();
}

std::string StopAwareText::Finish() {
  if (stopped_) return "";
  std::string out = held_ + dec_.Flush();
  held_.clear();
  return out;
}

namespace {

// The body as a JSON object whose fields are all in `known` (nulls dropped), or the error.
std::variant<json, ApiError> ParseObject(const std::string& body, const std::set<std::string>& known) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Bad("", "the request body is not valid JSON");
  if (!j.is_object()) return Bad("", "the request body must be a JSON object");
  for (auto it = j.begin(); it != j.end();) it = it->is_null() ? j.erase(it) : std::next(it);
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) return Bad(key, absl::StrCat("unknown field '", key, "'"));
  if (j.contains("model") && (!j["model"].is_string()))
    return Bad("model", "'model' must be a string");
  return j;
}

}  // namespace

std::variant<json, ApiError> TokenizeRequest(const std::string& body, const ApiContext& ctx) {
  auto parsed =
      ParseObject(body, {"model", "prompt", "messages", "tools", "add_special_tokens", "add_generation_prompt"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  json& j = std::get<json>(parsed);
  if (ctx.tokenizer == nullptr) return Bad("prompt", "the model has no tokenizer");
  for (const char* f : {"add_special_tokens", "add_generation_prompt"})
    if (j.contains(f) && !j[f].is_boolean()) return Bad(f, absl::StrCat("'", f, "' must be a boolean"));
  std::string text;
  if (j.contains("messages")) {
    if (auto e = CheckMessages(j)) return *e;
    if (j.contains("tools") && !j["tools"].is_array()) return Bad("tools", "'tools' must be an array");
    auto rendered = RenderChat(j, body, ctx);
    if (auto* e = std::get_if<ApiError>(&rendered)) return *e;
    text = std::get<std::string>(rendered);
  } else {
    if (!j.contains("prompt") || !j["prompt"].is_string()) return Bad("prompt", "'prompt' must be a string");
    text = j["prompt"].get<std::string>();
  }
  // vLLM's defaults: a prompt gets the tokenizer's special tokens, a rendered chat (whose template
  // wrote them) does not.
  std::vector<int> ids = ctx.tokenizer->Encode(text);
  if (j.value("add_special_tokens", !j.contains("messages"))) ids = ctx.tokenizer->WithSpecialTokens(std::move(ids));
  return json{{"count", ids.size()}, {"max_model_len", ctx.spec->max_position_embeddings}, {"tokens", ids},
              {"token_strs", nullptr}};
}

std::variant<json, ApiError> DetokenizeRequest(const std::string& body, const ApiContext& ctx) {
  auto parsed = ParseObject(body, {"model", "tokens"});
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const json& j = std::get<json>(parsed);
  if (ctx.tokenizer == nullptr) return Bad("tokens", "the model has no tokenizer");
  if (!j.contains("tokens") || !j["tokens"].is_array()) return Bad("tokens", "'tokens' must be a list of token ids");
  std::vector<int> ids;
  for (const json& t : j["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= ctx.spec->vocab_size)
      return Bad("tokens", absl::StrCat("token ids must be integers in 0..", ctx.spec->vocab_size - 1));
    ids.push_back(static_cast<int>(t.get<int64_t>()));
  }
  return json{{"prompt", ctx.tokenizer->Decode(ids)}};
}

json LogprobsBody(const CompletionCall& call, const std::vector<float>& logprobs, const std::vector<std::string>& texts,
                  const std::vector<std::vector<std::pair<std::string, float>>>& top) {
  if (call.logprobs < 0) return nullptr;
  auto top_of = [&](size_t i) { return i < top.size() ? top[i] : std::vector<std::pair<std::string, float>>{}; };
  if (call.chat) {
    json content = json::array();
    for (size_t i = 0; i < logprobs.size(); ++i) {
      json alternatives = json::array();
      for (const auto& [text, lp] : top_of(i)) alternatives.push_back({{"token", text}, {"logprob", lp}});
      content.push_back({{"token", i < texts.size() ? texts[i] : ""}, {"logprob", logprobs[i]},
                         {"top_logprobs", alternatives}});
    }
    return {{"content", content}};
  }
  json offsets = json::array(), tops = json::array();
  size_t at = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    offsets.push_back(at);
    at += texts[i].size();
    json alternatives = json::object();
    for (const auto& [text, lp] : top_of(i))
      if (!alternatives.contains(text)) alternatives[text] = lp;
    tops.push_back(alternatives);
  }
  return {{"tokens", texts}, {"token_logprobs", logprobs}, {"top_logprobs", call.logprobs > 0 ? tops : json(nullptr)},
          {"text_offset", offsets}};
}

json UsageBody(const CompletionCall& call, const std::vector<ChoiceState>& choices) {
  int64_t p = 0, g = 0;
  for (const auto& ids : call.prompts) p += static_cast<int64_t>(ids.size());
  for (const ChoiceState& c : choices) g += static_cast<int64_t>(c.tokens.size());
  return json{{"prompt_tokens", p}, {"completion_tokens", g}, {"total_tokens", p + g}};
}

json CompletionBody(const CompletionCall& call, const ResponseHeader& h, const std::vector<const ChoiceState*>& chosen,
                    const std::vector<ChoiceState>& all) {
  json out = json::array();
  for (size_t i = 0; i < chosen.size(); ++i) {
    const ChoiceState& c = *chosen[i];
    json ch = {{"index", i}, {"finish_reason", c.finish_reason},
               {"logprobs", LogprobsBody(call, c.logprobs, c.token_texts, c.top)}};
    if (call.chat && call.constraint.tool_mode != ToolMode::kNone) {
      // The same seed per choice as its stream would use: the same ids either way.
      const uint64_t seed = call.tool_id_seed + static_cast<uint64_t>(&c - all.data());
      const ToolCallOutput t = ToolCallsOfText(call.constraint.tool_mode, call.tool_format, call.constraint.tool_name,
                                               seed, c.out);
      json message = {{"role", "assistant"}, {"content", t.content ? json(*t.content) : json(nullptr)}};
      if (!t.calls.empty()) {
        json calls = json::array();
        for (const ToolCall& tc : t.calls)
          calls.push_back({{"id", tc.id}, {"type", "function"},
                           {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
        message["tool_calls"] = std::move(calls);
      }
      ch["message"] = std::move(message);
      ch["finish_reason"] = ToolFinishReason(call, c.finish_reason, !t.calls.empty());
    } else if (call.chat) {
      ch["message"] = {{"role", "assistant"}, {"content", c.out}};
    } else {
      ch["text"] = (call.echo ? call.prompt_texts[i / call.n] : "") + c.out;
    }
    if (call.return_token_ids) ch["token_ids"] = c.tokens;
    out.push_back(ch);
  }
  return {{"id", h.id}, {"object", call.chat ? "chat.completion" : "text_completion"}, {"created", h.created},
          {"model", h.model}, {"choices", out}, {"usage", UsageBody(call, all)}};
}

json StreamChunk(const CompletionCall& call, const ResponseHeader& h, json choice) {
  return {{"id", h.id}, {"object", call.chat ? "chat.completion.chunk" : "text_completion"}, {"created", h.created},
          {"model", h.model}, {"choices", json::array({std::move(choice)})}};
}

json OpeningDelta(const CompletionCall& call, size_t index) {
  if (call.chat) {
    // A forced tool call has no content (null, as OpenAI streams it).
    const ToolMode m = call.constraint.tool_mode;
    const json content = m == ToolMode::kRequired || m == ToolMode::kNamed ? json(nullptr) : json("");
    return {{"index", index}, {"delta", {{"role", "assistant"}, {"content", content}}}, {"logprobs", nullptr},
            {"finish_reason", nullptr}};
  }
  return {{"index", index}, {"text", call.echo ? call.prompt_texts[index / call.n] : ""}, {"logprobs", nullptr},
          {"finish_reason", nullptr}};
}

json PieceDelta(const CompletionCall& call, int index, const std::string& piece, json logprobs, int token) {
  json ch = call.chat ? json{{"index", index}, {"delta", {{"content", piece}}}, {"logprobs", logprobs},
                             {"finish_reason", nullptr}}
                      : json{{"index", index}, {"text", piece}, {"logprobs", logprobs}, {"finish_reason", nullptr}};
  if (call.return_token_ids && token >= 0) ch["token_ids"] = {token};
  return ch;
}

json FinishDelta(const CompletionCall& call, int index, const std::string& reason) {
  if (call.chat)
    return {{"index", index}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", reason}};
  return {{"index", index}, {"text", ""}, {"logprobs", nullptr}, {"finish_reason", reason}};
}

json ToolCallsDelta(int index, const std::vector<ToolCallDelta>& calls) {
  json list = json::array();
  for (const ToolCallDelta& d : calls) list.push_back(d.ToJson());
  return {{"index", index}, {"delta", {{"tool_calls", std::move(list)}}}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
}

std::string ToolFinishReason(const CompletionCall& call, const std::string& reason, bool made_calls) {
  const ToolMode m = call.constraint.tool_mode;
  if (made_calls && reason == "stop" && (m == ToolMode::kAuto || m == ToolMode::kRequired)) return "tool_calls";
  return reason;
}

json UsageChunk(const CompletionCall& call, const ResponseHeader& h, json usage) {
  return {{"id", h.id}, {"object", call.chat ? "chat.completion.chunk" : "text_completion"}, {"created", h.created},
          {"model", h.model}, {"choices", json::array()}, {"usage", std::move(usage)}};
}

}  // namespace strata
