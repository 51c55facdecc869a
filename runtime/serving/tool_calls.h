// File: runtime/serving/tool_calls.h
// Tool calls in a chat answer's text: the parsers of the formats models are trained on (Hermes,
// Llama 3.1 JSON), and the streaming side, which turns text pieces into OpenAI's tool_calls
// deltas as they arrive. Which calls a text holds depends on tool_choice (vLLM's semantics):
//   auto      the model chose: `format`'s markers are looked for; text before the first call is
//             content; a malformed call is content (before any valid call) or dropped (after).
//   required  the grammar forced a JSON array [{"name": N, "parameters": {...}}, ...].
//   named     the grammar forced the named function's arguments object: the whole text.
// The streamed deltas of a text, concatenated as the OpenAI SDK does, always equal the calls
// that the whole text gives at once (tests/runtime/serving/structured_output_test.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace strata {

enum class ToolCallFormat {
  kHermes,      // <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> (Qwen2.5, Hermes)
  kLlama3Json,  // [<|python_tag|>]{"name": ..., "parameters": {...}}; several separated by ';'
};

// --tool-call-parser: "hermes", "llama3_json", or "auto": from the chat template's text
// (<tool_call> -> hermes; <|python_tag|> or ipython -> llama3_json; else hermes).
absl::StatusOr<ToolCallFormat> ResolveToolCallFormat(std::string_view flag, std::string_view template_source);

// Which tool calls a request asked for (tool_choice; kNone also when no tools were given).
enum class ToolMode { kNone, kAuto, kRequired, kNamed };

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text of the arguments object
};

// A whole answer: its content (null when there is none beside the calls) and the calls.
struct ToolCallOutput {
  std::optional<std::string> content;
  std::vector<ToolCall> calls;
};

// tool_choice auto: the calls in `text` under `format` (ids left empty).
ToolCallOutput ParseToolCalls(ToolCallFormat format, const std::string& text);

// "chatcmpl-tool-" + 32 hex digits, from a seeded generator: a request with a seed gets the same
// ids streamed or not.
class ToolCallIds {
 public:
  explicit ToolCallIds(uint64_t seed) : rng_(seed) {}
  std::string Next();

 private:
  std::mt19937_64 rng_;
};

// One delta of one call, as OpenAI streams it: the first carries the id, type and name (and
// maybe arguments), later ones argument text only.
struct ToolCallDelta {
  int index = 0;
  std::string id, name;  // empty after the first delta of a call
  std::string arguments;
  nlohmann::json ToJson() const;
};

// What a text piece turned into: content to stream, and tool-call deltas.
struct ToolStreamStep {
  std::string content;
  std::vector<ToolCallDelta> calls;
};

// Streams one choice's tool calls. Feed the text pieces in order (after stop strings), then
// Finish once. Content that may still turn into a call is held back until it cannot.
class ToolCallStream {
 public:
  ToolCallStream(ToolMode mode, ToolCallFormat format, std::string named_function, uint64_t id_seed);
  ToolStreamStep Add(const std::string& piece);
  ToolStreamStep Finish();
  // A call was made (the finish reason becomes "tool_calls" for auto and required).
  bool made_calls() const { return calls_ > 0; }

 private:
  void Content(std::string text, ToolStreamStep* out);
  void WholeCall(const ToolCall& call, ToolStreamStep* out);
  void DrainHermes(bool final, ToolStreamStep* out);
  void DrainLlama3(bool final, ToolStreamStep* out);
  void ScanRequired(const std::string& piece, ToolStreamStep* out);

  ToolMode mode_;
  ToolCallFormat format_;
  std::string named_function_;
  ToolCallIds ids_;
  int calls_ = 0;
  std::string held_;              // auto: text not yet known to be content or a call
  bool in_call_ = false;          // hermes: past a <tool_call> whose end has not come
  int llama_ = 0;                 // llama3_json: 0 undecided, 1 content, 2 a call (held to the end)
  std::string pending_space_;     // auto: leading whitespace, dropped if calls follow
  bool content_started_ = false;  // auto: some content was streamed

  // required: a scanner of the JSON array [{"name": ..., "parameters": {...}}, ...].
  struct Scan {
    std::vector<char> stack;  // '[' and '{' open
    bool in_string = false, escape = false;
    bool expect_key = false;  // in an element object, a key (not a value) comes next
    std::string key;          // the element's current key (while reading it: its raw text)
    bool in_key = false;
    int value_depth = -1;     // stack depth where the element's current value started (-1: none)
    bool value_is_string = false;
    std::string name_raw;     // the "name" value's JSON text
    std::string args_pending; // parameters text seen before the name
    bool args_open = false;   // inside the "parameters" value
    bool started = false;     // this element's first delta went out
  } scan_;
};

// Adds a streamed step to an answer the way the OpenAI SDK accumulates deltas (content
// concatenated; a call's first delta opens it, later ones append argument text).
void AccumulateToolStep(const ToolStreamStep& step, ToolCallOutput* out);

// The whole (non-streamed) answer of `text` under `mode`, ids from `id_seed` as the stream
// gives them: auto parses with ParseToolCalls, required scans the array as the stream does,
// named is the text as the function's arguments, none is the text as content.
ToolCallOutput ToolCallsOfText(ToolMode mode, ToolCallFormat format, const std::string& named_function,
                               uint64_t id_seed, const std::string& text);

}  // namespace strata
