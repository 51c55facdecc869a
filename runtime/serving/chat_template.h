// File: runtime/serving/chat_template.h
// Hugging Face chat templates (`chat_template` in tokenizer_config.json) are Jinja. Debian ships
// no C++ Jinja engine, so this is the subset those templates use: text, {{ }}, {% %} and {# #}
// with '-' whitespace control; for (with loop.index/index0/first/last/length), if/elif/else,
// set; literals, variables, attributes, indexing and slices; + - * / % ~ comparisons, and/or/not,
// in / not in, is [not] defined/none/string/mapping; filters trim, length, upper, lower, tojson,
// string; calls raise_exception(), .strip() .lstrip() .rstrip() .startswith() .endswith()
// .upper() .lower() .split() .items(). Anything else is a parse or render error, never a guess.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata {

class ChatTemplate {
 public:
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(const std::string& source);
  ~ChatTemplate();
  // Renders with `context` (messages, add_generation_prompt, bos_token, eos_token, ...).
  absl::StatusOr<std::string> Render(const nlohmann::json& context) const;

  struct Node;

 private:
  ChatTemplate() = default;
  std::unique_ptr<Node> root_;
};

// The chat template of a model directory's tokenizer_config.json with its bos/eos strings, or
// null when there is none. A template that does not parse is an error naming the file.
struct ModelChatTemplate {
  std::unique_ptr<ChatTemplate> tmpl;
  std::string bos_token, eos_token;
};
absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir);

}  // namespace strata
