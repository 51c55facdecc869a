#include "runtime/serving/openai_api.h"

#include <set>

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

// Fields each endpoint accepts; anything else is refused rather than silently ignored.
const std::set<std::string>& KnownFields(bool chat) {
  static const std::set<std::string> completion = {
      "model",       "prompt",   "max_tokens", "temperature",      "top_p",           "top_k",
      "seed",        "stop",     "stream",     "stream_options",   "logprobs",        "echo",
      "n",           "user",     "best_of",    "presence_penalty", "frequency_penalty", "logit_bias",
      "suffix",      "ignore_eos", "return_token_ids"};
  static const std::set<std::string> chat_fields = {
      "model",   "messages", "max_tokens", "max_completion_tokens", "temperature",      "top_p",
      "top_k",   "seed",     "stop",       "stream",                "stream_options",   "logprobs",
      "top_logprobs", "n",   "user",       "presence_penalty",      "frequency_penalty", "logit_bias",
      "ignore_eos", "return_token_ids"};
  return chat ? chat_fields : completion;
}

}  // namespace

json ErrorBody(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

std::string RenderDefaultChatTemplate(const json& messages) {
  std::string out;
  for (const json& m : messages) {
    std::string content;
    if (m["content"].is_string()) {
      content = m["content"].get<std::string>();
    } else {
      for (const json& part : m["content"]) content += part.value("text", "");
    }
    out += "<|im_start|>" + m["role"].get<std::string>() + "\n" + content + "<|im_end|>\n";
  }
  return out + "<|im_start|>assistant\n";
}

std::variant<CompletionCall, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                              const ApiContext& ctx) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Bad("", "the request body is not valid JSON");
  if (!j.is_object()) return Bad("", "the request body must be a JSON object");
  for (const auto& [key, value] : j.items())
    if (!KnownFields(chat).count(key)) return Bad(key, absl::StrCat("unknown field '", key, "'"));

  CompletionCall c;
  c.chat = chat;
  // Types first: a wrong type is a 400 naming the field.
  auto number = [&](const char* f) { return j.contains(f) && !j[f].is_null() && !j[f].is_number(); };
  for (const char* f : {"max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "n",
                        "presence_penalty", "frequency_penalty", "best_of"})
    if (number(f)) return Bad(f, absl::StrCat("'", f, "' must be a number"));
  for (const char* f : {"stream", "echo", "ignore_eos", "return_token_ids"})
    if (j.contains(f) && !j[f].is_null() && !j[f].is_boolean()) return Bad(f, absl::StrCat("'", f, "' must be a boolean"));

  if (!j.contains("model") || !j["model"].is_string()) return Bad("model", "'model' is required and must be a string");
  if (j["model"].get<std::string>() != ctx.served_model_name)
    return Bad("model", absl::StrCat("the model '", j["model"].get<std::string>(), "' does not exist; this server serves '",
                                     ctx.served_model_name, "'"),
               404, "model_not_found");

  if (j.value("n", 1) != 1) return Bad("n", "only n = 1 is supported");
  if (j.contains("best_of") && !j["best_of"].is_null() && j["best_of"].get<double>() != 1)
    return Bad("best_of", "only best_of = 1 is supported");
  for (const char* f : {"presence_penalty", "frequency_penalty"})
    if (j.contains(f) && !j[f].is_null() && j[f].get<double>() != 0) return Bad(f, absl::StrCat("'", f, "' is not supported"));
  if (j.contains("logit_bias") && !j["logit_bias"].is_null() && !j["logit_bias"].empty())
    return Bad("logit_bias", "'logit_bias' is not supported");
  if (j.contains("suffix") && !j["suffix"].is_null()) return Bad("suffix", "'suffix' is not supported");

  // Prompts.
  auto encode = [&](const std::string& text) -> std::variant<std::vector<int>, ApiError> {
    if (ctx.tokenizer == nullptr)
      return Bad(chat ? "messages" : "prompt", "the model has no tokenizer: send token ids");
    return ctx.tokenizer->Encode(text);
  };
  if (chat) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
      return Bad("messages", "'messages' must be a non-empty array");
    for (const json& m : j["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        return Bad("messages", "each message needs a string 'role'");
      const std::string role = m["role"];
      if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool")
        return Bad("messages", absl::StrCat("unknown role '", role, "'"));
      if (!m.contains("content") || !(m["content"].is_string() || m["content"].is_array()))
        return Bad("messages", "each message needs 'content' (a string or a list of text parts)");
      if (m["content"].is_array())
        for (const json& p : m["content"])
          if (!p.is_object() || p.value("type", "") != "text" || !p.contains("text") || !p["text"].is_string())
            return Bad("messages", "only text content parts are supported");
    }
    std::string text;
    if (ctx.chat && ctx.chat->tmpl) {
      json messages = json::array();  // content parts joined: templates expect strings
      for (const json& m : j["messages"]) {
        json copy = m;
        if (m["content"].is_array()) {
          std::string joined;
          for (const json& part : m["content"]) joined += part["text"].get<std::string>();
          copy["content"] = joined;
        }
        messages.push_back(copy);
      }
      auto rendered = ctx.chat->tmpl->Render({{"messages", messages}, {"add_generation_prompt", true},
                                              {"bos_token", ctx.chat->bos_token}, {"eos_token", ctx.chat->eos_token}});
      if (!rendered.ok()) return Bad("messages", std::string(rendered.status().message()));
      text = *rendered;
    } else {
      text = RenderDefaultChatTemplate(j["messages"]);
    }
    auto ids = encode(text);
    if (auto* e = std::get_if<ApiError>(&ids)) return *e;
    c.prompts.push_back(std::get<std::vector<int>>(ids));
    c.prompt_texts.push_back(text);
  } else {
    if (!j.contains("prompt")) return Bad("prompt", "'prompt' is required");
    const json& p = j["prompt"];
    auto add_ids = [&](const json& list) -> std::optional<ApiError> {
      std::vector<int> ids;
      for (const json& t : list) {
        if (!t.is_number_integer()) return Bad("prompt", "token ids must be integers");
        const int64_t id = t.get<int64_t>();
        if (id < 0 || id >= ctx.spec->vocab_size)
          return Bad("prompt", absl::StrCat("token id ", id, " is outside the vocabulary (0..", ctx.spec->vocab_size - 1, ")"));
        ids.push_back(static_cast<int>(id));
      }
      c.prompt_texts.push_back(ctx.tokenizer ? ctx.tokenizer->Decode(ids) : "");
      c.prompts.push_back(std::move(ids));
      return std::nullopt;
    };
    auto add_text = [&](const std::string& s) -> std::optional<ApiError> {
      auto ids = encode(s);
      if (auto* e = std::get_if<ApiError>(&ids)) return *e;
      c.prompts.push_back(std::get<std::vector<int>>(ids));
      c.prompt_texts.push_back(s);
      return std::nullopt;
    };
    std::optional<ApiError> err;
    if (p.is_string()) {
      err = add_text(p.get<std::string>());
    } else if (p.is_array() && !p.empty() && p[0].is_number()) {
      err = add_ids(p);
    } else if (p.is_array() && !p.empty()) {
      for (const json& item : p) {
        if (item.is_string()) err = add_text(item.get<std::string>());
        else if (item.is_array()) err = add_ids(item);
        else err = Bad("prompt", "'prompt' must be a string, a list of token ids, or a list of either");
        if (err) break;
      }
    } else {
      err = Bad("prompt", "'prompt' must be a string, a list of token ids, or a list of either");
    }
    if (err) return *err;
    if (c.prompts.size() > 64) return Bad("prompt", "at most 64 prompts per request");
  }
  for (const auto& ids : c.prompts)
    if (ids.empty()) return Bad(chat ? "messages" : "prompt", "the prompt is empty");

  // Lengths against the context.
  const int context = ctx.spec->max_position_embeddings;
  size_t longest = 0;
  for (const auto& ids : c.prompts) longest = std::max(longest, ids.size());
  if (static_cast<int64_t>(longest) >= context)
    return Bad(chat ? "messages" : "prompt",
               absl::StrCat("the prompt has ", longest, " tokens; the context length is ", context), 400,
               "context_length_exceeded");
  const char* max_field = chat && j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  int64_t max_tokens = chat ? context - static_cast<int64_t>(longest) : 16;
  if (j.contains(max_field) && !j[max_field].is_null()) {
    if (!j[max_field].is_number_integer()) return Bad(max_field, absl::StrCat("'", max_field, "' must be an integer"));
    max_tokens = j[max_field].get<int64_t>();
    if (max_tokens < 1) return Bad(max_field, absl::StrCat("'", max_field, "' must be at least 1"));
    if (static_cast<int64_t>(longest) + max_tokens > context)
      return Bad(max_field,
                 absl::StrCat("the prompt (", longest, " tokens) plus ", max_field, " (", max_tokens,
                              ") exceeds the context length ", context),
                 400, "context_length_exceeded");
  }
  c.base.max_tokens = static_cast<int>(max_tokens);

  // Sampling.
  const double temperature = j.contains("temperature") && !j["temperature"].is_null() ? j["temperature"].get<double>() : 1.0;
  if (!(temperature >= 0 && temperature <= 100)) return Bad("temperature", "'temperature' must be in [0, 100]");
  const double top_p = j.contains("top_p") && !j["top_p"].is_null() ? j["top_p"].get<double>() : 1.0;
  if (!(top_p > 0 && top_p <= 1)) return Bad("top_p", "'top_p' must be in (0, 1]");
  int64_t top_k = 0;
  if (j.contains("top_k") && !j["top_k"].is_null()) {
    if (!j["top_k"].is_number_integer()) return Bad("top_k", "'top_k' must be an integer");
    top_k = j["top_k"].get<int64_t>();
    if (top_k == -1) top_k = 0;  // vLLM's "all"
    if (top_k < 0 || top_k > ctx.spec->vocab_size) return Bad("top_k", "'top_k' must be -1, 0 or up to the vocabulary size");
  }
  c.base.sampling.temperature = static_cast<float>(temperature);
  c.base.sampling.top_p = static_cast<float>(top_p);
  c.base.sampling.top_k = static_cast<int>(top_k);
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) return Bad("seed", "'seed' must be an integer");
    c.base.sampling.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
  }
  c.base.ignore_eos = j.value("ignore_eos", false);

  // Stop strings.
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& s = j["stop"];
    if (s.is_string()) {
      c.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const json& x : s) {
        if (!x.is_string()) return Bad("stop", "'stop' must be a string or a list of up to 4 strings");
        c.stop.push_back(x.get<std::string>());
      }
    } else {
      return Bad("stop", "'stop' must be a string or a list of up to 4 strings");
    }
    for (const std::string& s2 : c.stop)
      if (s2.empty()) return Bad("stop", "stop strings must not be empty");
    if (!c.stop.empty() && ctx.tokenizer == nullptr) return Bad("stop", "stop strings need a tokenizer");
  }
  c.stream = j.value("stream", false);
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    if (!j["stream_options"].is_object()) return Bad("stream_options", "'stream_options' must be an object");
    c.include_usage = j["stream_options"].value("include_usage", false);
  }
  if (j.contains("logprobs") && !j["logprobs"].is_null()) {
    if (chat) {
      if (!j["logprobs"].is_boolean()) return Bad("logprobs", "'logprobs' must be a boolean");
      c.logprobs = j["logprobs"].get<bool>() ? 0 : -1;
    } else {
      if (!j["logprobs"].is_number_integer()) return Bad("logprobs", "'logprobs' must be an integer");
      const int64_t lp = j["logprobs"].get<int64_t>();
      if (lp < 0 || lp > 5) return Bad("logprobs", "'logprobs' must be in [0, 5]");
      c.logprobs = static_cast<int>(lp);
    }
  }
  c.echo = j.value("echo", false);
  c.return_token_ids = j.value("return_token_ids", false);
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
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
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

}  // namespace strata
