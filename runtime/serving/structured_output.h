// File: runtime/serving/structured_output.h
// From a request body to the grammar its output must follow (OpenAI's and vLLM's ways of asking
// for one), and the cache of compiled grammars the server shares across requests.
//
// Constraints, at most one per request:
//   response_format     {"type": "text"} (none) | {"type": "json_object"} |
//                       {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
//   guided_json         a JSON schema (an object, or a string holding one)         (vLLM)
//   guided_regex        a regular expression (runtime/grammar/regex_grammar.h)     (vLLM)
//   guided_choice       a non-empty array of strings: exactly one of them          (vLLM)
//   guided_grammar      EBNF (runtime/grammar/ebnf_parser.h)                       (vLLM)
//   structured_outputs  {"json" | "regex" | "choice" | "grammar" | "json_object"}   (vLLM >= 0.10)
// and, on chat, tools with tool_choice "required" (a JSON array of calls) or a named function
// (its parameters object). JSON schemas become grammars by runtime/grammar/json_schema_grammar.h;
// what it does not support is a 400 naming the keyword.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/grammar/grammar.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/serving/tool_calls.h"

namespace strata {

// What a request asks of its output's shape.
struct OutputConstraint {
  std::optional<grammar::Grammar> grammar;  // none: unconstrained
  std::string param;                        // the field the grammar came from (compile errors name it)
  ToolMode tool_mode = ToolMode::kNone;     // chat with tools: tool_choice (default auto)
  std::string tool_name;                    // tool_choice's named function
  nlohmann::ordered_json tools;             // the validated tools as sent; null when none
};

// A 400 naming the offending field.
struct ConstraintError {
  std::string param;
  std::string message;
};

// Reads the constraint fields of a request body (nulls already removed) for /v1/completions or
// (chat) /v1/chat/completions. Checks every shape itself: a wrong one is an error, never a throw.
// Ordered: schemas' properties are generated in the client's order (nlohmann::json sorts keys).
std::variant<OutputConstraint, ConstraintError> ParseOutputConstraint(const nlohmann::ordered_json& body, bool chat);

// The JSON schemas of tool_choice "required" (an array, at least one call, at most one when
// parallel_tool_calls is false, each {"name": one tool's name, "parameters": its schema}) and of
// a named function (its parameters). `tools` are validated tools.
nlohmann::ordered_json RequiredToolsSchema(const nlohmann::ordered_json& tools, bool parallel_tool_calls);
nlohmann::ordered_json ToolParametersSchema(const nlohmann::ordered_json& tool);

// Compiled grammars by their text (Grammar::ToString), least recently used dropped beyond
// `capacity`: a schema that many requests share compiles once. Compiling takes 10-500 ms, so it
// runs on a worker thread of the cache's own, never on the caller's (the HTTP loop); `on_compiled`
// is called from that thread after each compile. Thread-safe.
class GrammarCache {
 public:
  using Result = absl::StatusOr<std::shared_ptr<const grammar::CompiledGrammar>>;
  GrammarCache(std::shared_ptr<const grammar::TokenVocabulary> vocab, size_t capacity = 64,
               std::function<void()> on_compiled = nullptr);
  ~GrammarCache();
  GrammarCache(const GrammarCache&) = delete;
  GrammarCache& operator=(const GrammarCache&) = delete;

  // The grammar compiled, or being compiled (the future is ready once it is). Errors (a grammar
  // past the compiler's limits) are kept too: the same grammar fails the same way.
  std::shared_future<Result> Get(const grammar::Grammar& g);
  // Get and wait: for tests and tools.
  Result GetBlocking(const grammar::Grammar& g) { return Get(g).get(); }

  size_t size() const;
  int64_t compiles() const;  // grammars compiled so far (misses)

 private:
  struct Job {
    grammar::Grammar grammar;
    std::promise<Result> promise;
  };
  void Work();

  std::shared_ptr<const grammar::TokenVocabulary> vocab_;
  size_t capacity_;
  std::function<void()> on_compiled_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::string> lru_;  // keys, most recent first
  struct Entry {
    std::shared_future<Result> result;
    std::list<std::string>::iterator at;
  };
  std::unordered_map<std::string, Entry> entries_;
  std::deque<Job> jobs_;
  int64_t compiles_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace strata
