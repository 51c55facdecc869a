#include "runtime/serving/tool_calls.h"

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using json = nlohmann::json;

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>", kPythonTag = "<|python_tag|>";

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

bool AllSpace(std::string_view s) {
  for (char c : s)
    if (!IsSpace(c)) return false;
  return true;
}

std::string_view LeftTrim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  return s;
}

// Arguments as JSON text: an object is serialized (UTF-8 kept), a string (some models quote
// their arguments) taken as it is, nothing is "{}".
std::optional<std::string> ArgumentsText(const json& call, const char* field) {
  if (!call.contains(field)) return std::nullopt;
  const json& a = call[field];
  if (a.is_object()) return a.dump(-1, ' ', false, json::error_handler_t::replace);
  if (a.is_string()) return a.get<std::string>();
  return std::nullopt;
}

// One Hermes call body: a JSON object with a string "name" and an "arguments" object (or string).
std::optional<ToolCall> ParseHermesCall(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  ToolCall call;
  call.name = j["name"].get<std::string>();
  auto args = ArgumentsText(j, "arguments");
  if (!args && j.contains("parameters")) args = ArgumentsText(j, "parameters");
  if (!args && (j.contains("arguments") || j.contains("parameters"))) return std::nullopt;
  call.arguments = args.value_or("{}");
  return call;
}

// Where the JSON object starting at s[0] == '{' ends (one past its '}'), or npos when it does
// not end in s. Strings and escapes are skipped; the object is validated by parsing it after.
size_t ObjectEnd(std::string_view s) {
  int depth = 0;
  bool in_string = false, escape = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') ++depth;
    else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
  }
  return std::string_view::npos;
}

// Llama 3.1: optional <|python_tag|>, then objects {"name": ..., "parameters": {...}} separated
// by ';'. Anything else anywhere makes the whole text content (nothing is half-parsed).
std::optional<std::vector<ToolCall>> ParseLlama3Calls(std::string_view text) {
  std::string_view rest = LeftTrim(text);
  if (rest.starts_with(kPythonTag)) rest = LeftTrim(rest.substr(kPythonTag.size()));
  std::vector<ToolCall> calls;
  while (true) {
    if (rest.empty() || rest.front() != '{') return std::nullopt;
    const size_t end = ObjectEnd(rest);
    if (end == std::string_view::npos) return std::nullopt;
    const json j = json::parse(rest.substr(0, end), nullptr, false);
    if (j.is_discarded() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
    auto args = ArgumentsText(j, "parameters");
    if (!args) args = ArgumentsText(j, "arguments");
    if (!args) return std::nullopt;
    calls.push_back(ToolCall{"", j["name"].get<std::string>(), *args});
    rest = LeftTrim(rest.substr(end));
    if (rest.empty()) return calls;
    if (rest.front() != ';') return std::nullopt;
    rest = LeftTrim(rest.substr(1));
    if (rest.empty()) return calls;  // a trailing ';'
  }
}

// The length of the longest end of `s` that is a proper prefix of `marker` (it may still grow
// into the marker).
size_t PartialMarker(std::string_view s, std::string_view marker) {
  for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
  return 0;
}

// Adds argument text to the last delta when it is the same call's (one delta per piece).
void AppendArguments(ToolStreamStep* out, int index, std::string_view text) {
  if (!out->calls.empty() && out->calls.back().index == index) {
    out->calls.back().arguments += text;
  } else {
    out->calls.push_back(ToolCallDelta{index, "", "", std::string(text)});
  }
}

}  // namespace

absl::StatusOr<ToolCallFormat> ResolveToolCallFormat(std::string_view flag, std::string_view template_source) {
  if (flag == "hermes") return ToolCallFormat::kHermes;
  if (flag == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (flag != "auto")
    return absl::InvalidArgumentError(
        absl::StrCat("--tool-call-parser must be hermes, llama3_json or auto, not '", std::string(flag), "'"));
  if (template_source.find(kOpen) != std::string_view::npos) return ToolCallFormat::kHermes;
  if (template_source.find(kPythonTag) != std::string_view::npos ||
      template_source.find("ipython") != std::string_view::npos)
    return ToolCallFormat::kLlama3Json;
  return ToolCallFormat::kHermes;
}

ToolCallOutput ParseToolCalls(ToolCallFormat format, const std::string& text) {
  ToolCallOutput out;
  if (format == ToolCallFormat::kLlama3Json) {
    auto calls = ParseLlama3Calls(text);
    if (calls) {
      out.calls = std::move(*calls);
    } else {
      out.content = text;
    }
    return out;
  }
  // Hermes: content is the text before the first valid call (a malformed block there included);
  // whatever is not a valid call after it is dropped. An unclosed last block runs to the end.
  std::string content;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(kOpen, pos);
    if (open == std::string::npos) {
      if (out.calls.empty()) content += text.substr(pos);
      break;
    }
    if (out.calls.empty()) content += text.substr(pos, open - pos);
    const size_t body = open + kOpen.size();
    const size_t close = text.find(kClose, body);
    const size_t end = close == std::string::npos ? text.size() : close + kClose.size();
    auto call = ParseHermesCall(std::string_view(text).substr(body, (close == std::string::npos ? text.size() : close) - body));
    if (call) {
      out.calls.push_back(std::move(*call));
    } else if (out.calls.empty()) {
      content += text.substr(open, end - open);
    }
    pos = end;
  }
  if (out.calls.empty() || !AllSpace(content)) out.content = content;
  return out;
}

std::string ToolCallIds::Next() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "chatcmpl-tool-";
  for (int half = 0; half < 2; ++half) {
    uint64_t v = rng_();
    for (int i = 0; i < 16; ++i, v >>= 4) id += kHex[v & 15];
  }
  return id;
}

json ToolCallDelta::ToJson() const {
  json d = {{"index", index}};
  json function = {{"arguments", arguments}};
  if (!id.empty()) {
    d["id"] = id;
    d["type"] = "function";
    function["name"] = name;
  }
  d["function"] = std::move(function);
  return d;
}

ToolCallStream::ToolCallStream(ToolMode mode, ToolCallFormat format, std::string named_function, uint64_t id_seed)
    : mode_(mode), format_(format), named_function_(std::move(named_function)), ids_(id_seed) {}

// Content before any call; leading whitespace is held back (a call after it makes it vanish,
// as in the whole-text parse), and after a call nothing is content.
void ToolCallStream::Content(std::string text, ToolStreamStep* out) {
  if (calls_ > 0 || text.empty()) return;
  if (!content_started_ && AllSpace(text)) {
    pending_space_ += text;
    return;
  }
  content_started_ = true;
  out->content += pending_space_ + text;
  pending_space_.clear();
}

void ToolCallStream::WholeCall(const ToolCall& call, ToolStreamStep* out) {
  pending_space_.clear();
  out->calls.push_back(ToolCallDelta{calls_++, ids_.Next(), call.name, call.arguments});
}

void ToolCallStream::DrainHermes(bool final, ToolStreamStep* out) {
  while (true) {
    if (!in_call_) {
      const size_t open = held_.find(kOpen);
      if (open != std::string::npos) {
        Content(held_.substr(0, open), out);
        held_.erase(0, open + kOpen.size());
        in_call_ = true;
        continue;
      }
      const size_t keep = final ? 0 : PartialMarker(held_, kOpen);
      Content(held_.substr(0, held_.size() - keep), out);
      held_.erase(0, held_.size() - keep);
      return;
    }
    const size_t close = held_.find(kClose);
    if (close == std::string::npos && !final) return;
    const std::string body = close == std::string::npos ? held_ : held_.substr(0, close);
    const std::string raw = std::string(kOpen) + body + (close == std::string::npos ? "" : std::string(kClose));
    held_.erase(0, close == std::string::npos ? held_.size() : close + kClose.size());
    in_call_ = false;
    if (auto call = ParseHermesCall(body)) {
      WholeCall(*call, out);
    } else {
      Content(raw, out);
    }
  }
}

// Llama 3.1 answers either begin with a call or hold none: decide on the first visible text;
// a call is held to the end and parsed whole (a malformed one is content after all).
void ToolCallStream::DrainLlama3(bool final, ToolStreamStep* out) {
  if (llama_ == 0) {
    const std::string_view t = LeftTrim(held_);
    if (!t.empty() && (t.front() == '{' || t.starts_with(kPythonTag))) {
      llama_ = 2;
    } else if (!final && (t.empty() || kPythonTag.starts_with(t))) {
      return;  // cannot tell yet
    } else {
      llama_ = 1;
    }
  }
  if (llama_ == 1) {
    Content(std::move(held_), out);
    held_.clear();
    return;
  }
  if (!final) return;
  if (auto calls = ParseLlama3Calls(held_)) {
    for (const ToolCall& c : *calls) WholeCall(c, out);
  } else {
    content_started_ = true;  // the whole text, its leading whitespace included
    out->content += pending_space_ + held_;
  }
  held_.clear();
}

ToolStreamStep ToolCallStream::Add(const std::string& piece) {
  ToolStreamStep out;
  switch (mode_) {
    case ToolMode::kNone:
      out.content = piece;
      break;
    case ToolMode::kNamed:
      if (calls_ == 0) {
        out.calls.push_back(ToolCallDelta{calls_++, ids_.Next(), named_function_, piece});
      } else if (!piece.empty()) {
        out.calls.push_back(ToolCallDelta{0, "", "", piece});
      }
      break;
    case ToolMode::kRequired:
      ScanRequired(piece, &out);
      break;
    case ToolMode::kAuto:
      held_ += piece;
      if (format_ == ToolCallFormat::kHermes) {
        DrainHermes(false, &out);
      } else {
        DrainLlama3(false, &out);
      }
      break;
  }
  return out;
}

ToolStreamStep ToolCallStream::Finish() {
  ToolStreamStep out;
  if (mode_ == ToolMode::kNamed && calls_ == 0) out.calls.push_back(ToolCallDelta{calls_++, ids_.Next(), named_function_, ""});
  if (mode_ == ToolMode::kAuto) {
    if (format_ == ToolCallFormat::kHermes) {
      DrainHermes(true, &out);
    } else {
      DrainLlama3(true, &out);
    }
    if (calls_ == 0 && !pending_space_.empty()) {  // whitespace only, and no call: it was content
      out.content += pending_space_;
      pending_space_.clear();
    }
  }
  return out;
}

// tool_choice required: the text is the JSON array the grammar forced. Each element's "name" is
// read whole; its "parameters" value is streamed as argument text as it arrives (held until the
// name is known, should the grammar put it first). The grammar guarantees the JSON is valid, so
// this follows only its structure: the element objects are at depth 2.
void ToolCallStream::ScanRequired(const std::string& piece, ToolStreamStep* out) {
  Scan& s = scan_;
  enum Capture { kNothing, kName, kArgs };
  auto capture = [&]() {
    if (s.value_depth != 2) return kNothing;
    return s.key == "name" ? kName : s.key == "parameters" ? kArgs : kNothing;
  };
  auto start_call = [&]() {
    if (s.started) return;
    s.started = true;
    const json name = json::parse(s.name_raw, nullptr, false);
    out->calls.push_back(ToolCallDelta{calls_++, ids_.Next(), name.is_string() ? name.get<std::string>() : "",
                                       s.args_pending});
    s.args_pending.clear();
  };
  auto take = [&](char c) {
    switch (capture()) {
      case kName: s.name_raw += c; break;
      case kArgs:
        if (s.started) {
          AppendArguments(out, calls_ - 1, std::string_view(&c, 1));
        } else {
          s.args_pending += c;
        }
        break;
      case kNothing: break;
    }
  };
  auto end_value = [&]() {
    const bool was_name = capture() == kName;
    s.value_depth = -1;
    s.value_is_string = false;
    if (was_name) start_call();
  };
  for (const char c : piece) {
    const bool at_element = s.stack.size() == 2 && s.stack.back() == '{';
    if (s.in_string) {
      if (s.in_key) {
        s.key += c;
      } else {
        take(c);
      }
      if (s.escape) {
        s.escape = false;
      } else if (c == '\\') {
        s.escape = true;
      } else if (c == '"') {
        s.in_string = false;
        if (s.in_key) {
          s.in_key = false;
          const json k = json::parse(s.key, nullptr, false);
          s.key = k.is_string() ? k.get<std::string>() : "";
        } else if (at_element && s.value_depth == 2) {
          end_value();  // a string value of the element
        }
      }
      continue;
    }
    // A number, true, false or null value of the element ends at the next delimiter.
    if (at_element && s.value_depth == 2 && !s.value_is_string && (c == ',' || c == '}' || IsSpace(c))) end_value();
    if (at_element && s.value_depth < 0) {  // between the element's keys and values
      if (c == '"' && s.expect_key) {
        s.in_string = s.in_key = true;
        s.key = "\"";
      } else if (c == ':') {
        s.expect_key = false;
      } else if (c == ',') {
        s.expect_key = true;
      } else if (c == '}') {
        s.stack.pop_back();
        start_call();  // an element without a name still makes a call
      } else if (!IsSpace(c)) {
        s.value_depth = 2;
        s.value_is_string = c == '"';
        take(c);
        if (c == '"') s.in_string = true;
        if (c == '{' || c == '[') s.stack.push_back(c);
      }
      continue;
    }
    take(c);
    if (c == '"') {
      s.in_string = true;
    } else if (c == '{' || c == '[') {
      s.stack.push_back(c);
      if (s.stack.size() == 2 && c == '{') {  // a new element
        s.expect_key = true;
        s.key.clear();
        s.name_raw.clear();
        s.args_pending.clear();
        s.started = false;
      }
    } else if ((c == '}' || c == ']') && !s.stack.empty()) {
      s.stack.pop_back();
      if (s.value_depth == 2 && s.stack.size() == 2) end_value();  // the element's object or array value
    }
  }
}

void AccumulateToolStep(const ToolStreamStep& step, ToolCallOutput* out) {
  if (!step.content.empty()) out->content = out->content.value_or("") + step.content;
  for (const ToolCallDelta& d : step.calls) {
    if (d.index >= static_cast<int>(out->calls.size())) out->calls.resize(d.index + 1);
    ToolCall& c = out->calls[d.index];
    if (!d.id.empty()) {
      c.id = d.id;
      c.name = d.name;
    }
    c.arguments += d.arguments;
  }
}

ToolCallOutput ToolCallsOfText(ToolMode mode, ToolCallFormat format, const std::string& named_function,
                               uint64_t id_seed, const std::string& text) {
  if (mode == ToolMode::kAuto) {
    ToolCallOutput out = ParseToolCalls(format, text);
    ToolCallIds ids(id_seed);
    for (ToolCall& c : out.calls) c.id = ids.Next();
    return out;
  }
  if (mode == ToolMode::kNone) return ToolCallOutput{text, {}};
  ToolCallStream stream(mode, format, named_function, id_seed);
  ToolCallOutput out;
  AccumulateToolStep(stream.Add(text), &out);
  AccumulateToolStep(stream.Finish(), &out);
  return out;
}

}  // namespace strata
