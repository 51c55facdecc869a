// File: runtime/serving/chat_template.h
// Hugging Face chat templates (`chat_template` in tokenizer_config.json) are Jinja. Debian ships
// no C++ Jinja engine, so this is the subset those templates use, rendered as transformers does
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, its tojson): text, {{ }}, {% %}
// and {# #} with '-' whitespace control; for (with an `if` filter and loop.index/index0/first/
// last/length/revindex/previtem/nextitem), if/elif/else, set (also a namespace's attribute);
// literals, variables, attributes, indexing and slices (strings by code point); + - * / // % ~,
// comparisons, and/or/not, in / not in, inline if-else; tests (is [not]) defined, undefined,
// none, string, mapping, iterable, sequence, number, integer, float, boolean, true, false,
// equalto/eq/ne/lt/gt/le/ge, in, lower, upper; filters trim, length/count, upper, lower, title,
// capitalize, replace, tojson, string, default, items, list, first, last, join, select, reject,
// selectattr, rejectattr, map; calls namespace(), range(), raise_exception(), and methods
// strip/lstrip/rstrip/startswith/endswith/upper/lower/title/capitalize/split/replace/join on
// strings, items/keys/values/get on mappings. Anything else is a parse or render error, never a
// guess. Case mapping is ASCII-only (non-ASCII text is refused).
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
  // Renders with `context` (messages, add_generation_prompt, bos_token, eos_token, tools, ...).
  // nlohmann::json sorts mapping keys; Python keeps insertion order, which `items()`, `for k in d`
  // and tojson show. RenderOrdered keeps the order the request had; Render is for callers that
  // hold a sorted json.
  absl::StatusOr<std::string> Render(const nlohmann::json& context) const;
  absl::StatusOr<std::string> RenderOrdered(const nlohmann::ordered_json& context) const;

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
  std::string source;  // the template's text: --tool-call-parser auto reads the model's format from it
};
absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir);

}  // namespace strata
