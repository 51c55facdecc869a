#include "runtime/serving/structured_output.h"

#include <cctype>
#include <set>

#include "absl/strings/str_cat.h"
#include "runtime/grammar/ebnf_parser.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/grammar/regex_grammar.h"

namespace strata {
namespace {

// Ordered: a schema's properties are generated in the order the client wrote them.
using json = nlohmann::ordered_json;
using Result = std::variant<OutputConstraint, ConstraintError>;

ConstraintError Err(const std::string& param, std::string message) { return ConstraintError{param, std::move(message)}; }

// OpenAI's rule for function and schema names.
bool ValidName(const json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// A grammar, or the converter's error as a 400 on `param` (its message names the keyword).
std::variant<grammar::Grammar, ConstraintError> Converted(absl::StatusOr<grammar::Grammar> g, const std::string& param,
                                                          const std::string& what) {
  if (!g.ok()) return Err(param, absl::StrCat(what, ": ", g.status().message()));
  return *std::move(g);
}

std::variant<grammar::Grammar, ConstraintError> FromSchema(const json& schema, const std::string& param) {
  if (!schema.is_object() && !schema.is_boolean())
    return Err(param, absl::StrCat("'", param, "' must be a JSON schema (an object)"));
  return Converted(grammar::JsonSchemaToGrammar(schema), param, "unsupported JSON schema");
}

// guided_json and structured_outputs.json: a schema, or a string holding one.
std::variant<grammar::Grammar, ConstraintError> FromSchemaOrString(const json& v, const std::string& param) {
  if (v.is_string()) {
    const json parsed = json::parse(v.get<std::string>(), nullptr, false);
    if (parsed.is_discarded()) return Err(param, absl::StrCat("'", param, "' is not valid JSON"));
    return FromSchema(parsed, param);
  }
  return FromSchema(v, param);
}

std::variant<grammar::Grammar, ConstraintError> FromRegex(const json& v, const std::string& param) {
  if (!v.is_string()) return Err(param, absl::StrCat("'", param, "' must be a string"));
  return Converted(grammar::RegexToGrammar(v.get<std::string>()), param, "unsupported regular expression");
}

std::variant<grammar::Grammar, ConstraintError> FromChoice(const json& v, const std::string& param) {
  const ConstraintError shape = Err(param, absl::StrCat("'", param, "' must be a non-empty array of strings"));
  if (!v.is_array() || v.empty()) return shape;
  std::vector<std::string> choices;
  for (const json& c : v) {
    if (!c.is_string()) return shape;
    choices.push_back(c.get<std::string>());
  }
  return grammar::ChoiceGrammar(choices);
}

std::variant<grammar::Grammar, ConstraintError> FromEbnf(const json& v, const std::string& param) {
  if (!v.is_string()) return Err(param, absl::StrCat("'", param, "' must be a string"));
  return Converted(grammar::ParseEbnf(v.get<std::string>()), param, "grammar");
}

// OpenAI's json_object mode promises an object.
std::variant<grammar::Grammar, ConstraintError> AnyObject() { return grammar::AnyJsonGrammar(); }

std::variant<grammar::Grammar, ConstraintError> FromResponseFormat(const json& rf) {
  const std::string p = "response_format";
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    return Err(p, "'response_format' must be an object with a string 'type'");
  const std::string type = rf["type"];
  for (const auto& [key, value] : rf.items())
    if (key != "type" && !(key == "json_schema" && type == "json_schema") && !value.is_null())
      return Err(p, absl::StrCat("unknown field 'response_format.", key, "'"));
  if (type == "json_object") return AnyObject();
  if (type != "json_schema")
    return Err(p, absl::StrCat("'response_format.type' must be 'text', 'json_object' or 'json_schema', not '", type, "'"));
  if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
    return Err(p, "'response_format.json_schema' must be an object");
  const json& js = rf["json_schema"];
  for (const auto& [key, value] : js.items())
    if (key != "name" && key != "schema" && key != "strict" && key != "description" && !value.is_null())
      return Err(p, absl::StrCat("unknown field 'response_format.json_schema.", key, "'"));
  if (!js.contains("name") || !ValidName(js["name"]))
    return Err(p, "'response_format.json_schema.name' must be 1 to 64 letters, digits, '_' or '-'");
  if (js.contains("strict") && !js["strict"].is_null() && !js["strict"].is_boolean())
    return Err(p, "'response_format.json_schema.strict' must be a boolean");
  if (js.contains("description") && !js["description"].is_null() && !js["description"].is_string())
    return Err(p, "'response_format.json_schema.description' must be a string");
  if (!js.contains("schema") || js["schema"].is_null()) return Err(p, "'response_format.json_schema.schema' is required");
  // strict: false is served like strict: true (the grammar is always enforced), as vLLM does.
  return FromSchema(js["schema"], p);
}

// vLLM's structured_outputs: exactly one of its kinds.
std::variant<grammar::Grammar, ConstraintError> FromStructuredOutputs(const json& so) {
  const std::string p = "structured_outputs";
  if (!so.is_object()) return Err(p, "'structured_outputs' must be an object");
  std::optional<std::variant<grammar::Grammar, ConstraintError>> got;
  for (const auto& [key, value] : so.items()) {
    if (value.is_null()) continue;
    if (key == "json_object" && value.is_boolean() && !value.get<bool>()) continue;
    std::variant<grammar::Grammar, ConstraintError> one;
    if (key == "json") {
      one = FromSchemaOrString(value, p);
    } else if (key == "regex") {
      one = FromRegex(value, p);
    } else if (key == "choice") {
      one = FromChoice(value, p);
    } else if (key == "grammar") {
      one = FromEbnf(value, p);
    } else if (key == "json_object") {
      if (!value.is_boolean()) return Err(p, "'structured_outputs.json_object' must be a boolean");
      one = AnyObject();
    } else {
      return Err(p, absl::StrCat("'structured_outputs.", key,
                                 "' is not supported (supported: json, regex, choice, grammar, json_object)"));
    }
    if (got) return Err(p, "'structured_outputs' must set exactly one of json, regex, choice, grammar, json_object");
    got = std::move(one);
  }
  if (!got) return Err(p, "'structured_outputs' must set one of json, regex, choice, grammar, json_object");
  return std::move(*got);
}

// tools: [{"type": "function", "function": {"name", "description", "parameters", "strict"}}].
std::optional<ConstraintError> CheckTools(const json& tools) {
  const std::string p = "tools";
  if (!tools.is_array() || tools.empty() || tools.size() > 128)
    return Err(p, "'tools' must be an array of 1 to 128 tools");
  std::set<std::string> names;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const std::string at = absl::StrCat("tools[", i, "]");
    if (!t.is_object() || t.value("type", json()) != "function" || !t.contains("function") || !t["function"].is_object())
      return Err(p, absl::StrCat("'", at, "' must be {\"type\": \"function\", \"function\": {...}}"));
    for (const auto& [key, value] : t.items())
      if (key != "type" && key != "function") return Err(p, absl::StrCat("unknown field '", at, ".", key, "'"));
    const json& f = t["function"];
    for (const auto& [key, value] : f.items())
      if (key != "name" && key != "description" && key != "parameters" && key != "strict" && !value.is_null())
        return Err(p, absl::StrCat("unknown field '", at, ".function.", key, "'"));
    if (!f.contains("name") || !ValidName(f["name"]))
      return Err(p, absl::StrCat("'", at, ".function.name' must be 1 to 64 letters, digits, '_' or '-'"));
    if (!names.insert(f["name"].get<std::string>()).second)
      return Err(p, absl::StrCat("two tools are named '", f["name"].get<std::string>(), "'"));
    if (f.contains("description") && !f["description"].is_null() && !f["description"].is_string())
      return Err(p, absl::StrCat("'", at, ".function.description' must be a string"));
    if (f.contains("strict") && !f["strict"].is_null() && !f["strict"].is_boolean())
      return Err(p, absl::StrCat("'", at, ".function.strict' must be a boolean"));
    if (f.contains("parameters") && !f["parameters"].is_null()) {
      const json& params = f["parameters"];
      if (!params.is_object() || (params.contains("type") && params["type"] != "object"))
        return Err(p, absl::StrCat("'", at, ".function.parameters' must be a JSON schema of type 'object'"));
    }
  }
  return std::nullopt;
}

// tool_choice and its grammar; `c->tools` is set when tools were given.
std::optional<ConstraintError> ParseToolChoice(const json& body, OutputConstraint* c) {
  const bool have_tools = !c->tools.is_null();
  c->tool_mode = have_tools ? ToolMode::kAuto : ToolMode::kNone;
  if (!body.contains("tool_choice") || body["tool_choice"].is_null()) return std::nullopt;
  const json& tc = body["tool_choice"];
  const std::string p = "tool_choice";
  if (tc.is_string()) {
    const std::string s = tc;
    if (s == "none") {
      c->tool_mode = ToolMode::kNone;
    } else if (s == "auto") {
      // auto without tools is no tools.
    } else if (s == "required") {
      if (!have_tools) return Err(p, "'tool_choice' 'required' needs 'tools'");
      c->tool_mode = ToolMode::kRequired;
    } else {
      return Err(p, absl::StrCat("'tool_choice' must be 'none', 'auto', 'required' or a function, not '", s, "'"));
    }
    return std::nullopt;
  }
  if (!tc.is_object() || tc.value("type", json()) != "function" || !tc.contains("function") ||
      !tc["function"].is_object() || !tc["function"].contains("name") || !tc["function"]["name"].is_string())
    return Err(p, "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
  const std::string name = tc["function"]["name"];
  if (!have_tools) return Err(p, "'tool_choice' names a function but no 'tools' were given");
  for (const json& t : c->tools)
    if (t["function"]["name"] == name) {
      c->tool_mode = ToolMode::kNamed;
      c->tool_name = name;
      return std::nullopt;
    }
  return Err(p, absl::StrCat("'tool_choice' names the function '", name, "', which is not in 'tools'"));
}

const json* ToolNamed(const json& tools, const std::string& name) {
  for (const json& t : tools)
    if (t["function"]["name"] == name) return &t;
  return nullptr;
}

}  // namespace

nlohmann::ordered_json ToolParametersSchema(const json& tool) {
  const json& f = tool["function"];
  // OpenAI: no parameters is an empty parameter list.
  if (!f.contains("parameters") || f["parameters"].is_null())
    return json{{"type", "object"}, {"properties", json::object()}, {"additionalProperties", false}};
  json params = f["parameters"];
  if (!params.contains("type")) params["type"] = "object";
  return params;
}

nlohmann::ordered_json RequiredToolsSchema(const json& tools, bool parallel_tool_calls) {
  json any_of = json::array();
  for (const json& t : tools)
    any_of.push_back({{"type", "object"},
                      {"properties", {{"name", {{"const", t["function"]["name"]}}}, {"parameters", ToolParametersSchema(t)}}},
                      {"required", {"name", "parameters"}},
                      {"additionalProperties", false}});
  json schema = {{"type", "array"}, {"minItems", 1}, {"items", {{"anyOf", any_of}}}};
  if (!parallel_tool_calls) schema["maxItems"] = 1;
  return schema;
}

std::variant<OutputConstraint, ConstraintError> ParseOutputConstraint(const json& body, bool chat) {
  OutputConstraint c;
  if (!body.is_object()) return c;
  // The one constraint field, if any (response_format "text" asks for nothing).
  static const char* const kFields[] = {"response_format", "guided_json",   "guided_regex",
                                        "guided_choice",   "guided_grammar", "structured_outputs"};
  const char* field = nullptr;
  for (const char* f : kFields) {
    if (!body.contains(f) || body[f].is_null()) continue;
    if (std::string(f) == "response_format" && body[f].is_object() && body[f].value("type", json()) == "text") {
      if (body[f].size() > 1) return Err(f, "'response_format' of type 'text' takes no other field");
      continue;
    }
    if (field != nullptr)
      return Err(f, absl::StrCat("'", field, "' and '", f, "' cannot be combined: send one output constraint"));
    field = f;
  }
  if (field != nullptr) {
    const std::string f = field;
    const json& v = body[f];
    std::variant<grammar::Grammar, ConstraintError> g;
    if (f == "response_format") g = FromResponseFormat(v);
    else if (f == "guided_json") g = FromSchemaOrString(v, f);
    else if (f == "guided_regex") g = FromRegex(v, f);
    else if (f == "guided_choice") g = FromChoice(v, f);
    else if (f == "guided_grammar") g = FromEbnf(v, f);
    else g = FromStructuredOutputs(v);
    if (auto* e = std::get_if<ConstraintError>(&g)) return *e;
    c.grammar = std::get<grammar::Grammar>(std::move(g));
    c.param = f;
  }
  if (!chat) return c;
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null() &&
      !body["parallel_tool_calls"].is_boolean())
    return Err("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
  if (body.contains("tools") && !body["tools"].is_null()) {
    if (auto e = CheckTools(body["tools"])) return *e;
    c.tools = body["tools"];
  }
  if (auto e = ParseToolChoice(body, &c)) return *e;
  if (c.tool_mode == ToolMode::kRequired || c.tool_mode == ToolMode::kNamed) {
    if (c.grammar)
      return Err("tool_choice", absl::StrCat("a required or named 'tool_choice' cannot be combined with '", c.param,
                                             "': the tool call is the output's shape"));
    const json schema = c.tool_mode == ToolMode::kRequired
                            ? RequiredToolsSchema(c.tools, body.value("parallel_tool_calls", true))
                            : ToolParametersSchema(*ToolNamed(c.tools, c.tool_name));
    auto g = Converted(grammar::JsonSchemaToGrammar(schema), "tools", "unsupported JSON schema in 'tools'");
    if (auto* e = std::get_if<ConstraintError>(&g)) return *e;
    c.grammar = std::get<grammar::Grammar>(std::move(g));
    c.param = "tools";
  }
  return c;
}

GrammarCache::GrammarCache(std::shared_ptr<const grammar::TokenVocabulary> vocab, size_t capacity,
                           std::function<void()> on_compiled)
    : vocab_(std::move(vocab)), capacity_(std::max<size_t>(1, capacity)), on_compiled_(std::move(on_compiled)) {
  worker_ = std::thread([this] { Work(); });
}

GrammarCache::~GrammarCache() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  // Whoever still waits on a queued grammar gets an answer, not a broken promise.
  for (Job& j : jobs_) j.promise.set_value(absl::UnavailableError("the server is shutting down"));
}

std::shared_future<GrammarCache::Result> GrammarCache::Get(const grammar::Grammar& g) {
  std::string key = g.ToString();
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.at);
    return it->second.result;
  }
  Job job{g, {}};
  std::shared_future<Result> result = job.promise.get_future().share();
  lru_.push_front(key);
  entries_.emplace(std::move(key), Entry{result, lru_.begin()});
  while (entries_.size() > capacity_) {  // an evicted grammar still being compiled finishes for its waiters
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  jobs_.push_back(std::move(job));
  cv_.notify_one();
  return result;
}

size_t GrammarCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

int64_t GrammarCache::compiles() const {
  std::lock_guard<std::mutex> lock(mu_);
  return compiles_;
}

void GrammarCache::Work() {
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++compiles_;
    }
    Result r = absl::InternalError("grammar compilation failed");
    try {
      r = grammar::CompileGrammar(job.grammar, vocab_);
    } catch (const std::exception& e) {  // out of memory on a huge grammar: that request fails, not the server
      r = absl::ResourceExhaustedError(absl::StrCat("grammar compilation failed: ", e.what()));
    }
    job.promise.set_value(std::move(r));
    if (on_compiled_) on_compiled_();
  }
}

}  // namespace strata
