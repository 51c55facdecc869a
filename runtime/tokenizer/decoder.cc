#include "runtime/tokenizer/decoder.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"
#include "runtime/tokenizer/tokenizer_parts.h"

namespace strata {

using json = nlohmann::json;

absl::StatusOr<Decoder> Decoder::FromJson(const json& j) {
  Decoder d;
  if (j.is_null()) return d;
  bool fused = false;
  RETURN_IF_ERROR(Add(j, &fused, &d.steps_));
  return d;
}

Decoder Decoder::ByteLevel() {
  Decoder d;
  Step s{};
  s.kind = Step::Kind::kByteLevel;
  d.steps_.push_back(s);
  return d;
}

Decoder Decoder::Metaspace(const std::string& replacement, bool prepends) {
  Decoder d;
  Step s{};
  s.kind = Step::Kind::kMetaspace;
  s.from = replacement;
  s.prepends = prepends;
  d.steps_.push_back(s);
  return d;
}

absl::Status Decoder::Add(const json& j, bool* fused, std::vector<Step>* steps) {
  if (!j.is_object()) return absl::InvalidArgumentError("tokenizer.json: a decoder is not an object");
  const std::string type = j.value("type", "");
  Step s{};
  if (type == "Sequence") {
    for (const json& child : j.at("decoders")) RETURN_IF_ERROR(Add(child, fused, steps));
    return absl::OkStatus();
  } else if (type == "Replace") {
    s.kind = Step::Kind::kReplace;
    s.to = j.at("content").get<std::string>();
    const json& pat = j.at("pattern");
    if (pat.contains("String")) {
      s.from = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      ASSIGN_OR_RETURN(s.regex, PcreRegex::Compile(pat["Regex"].get<std::string>(), "tokenizer.json: Replace decoder"));
    } else {
      return absl::InvalidArgumentError("tokenizer.json: Replace decoder without a String or Regex pattern");
    }
  } else if (type == "ByteFallback") {
    s.kind = Step::Kind::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = Step::Kind::kFuse;
    *fused = true;
  } else if (type == "Strip") {
    s.kind = Step::Kind::kStrip;
    s.content = j.at("content").get<std::string>();
    s.start = j.value("start", 0);
    s.stop = j.value("stop", 0);
    s.after_fuse = *fused;
    if (s.after_fuse && s.stop > 0)
      return absl::UnimplementedError("tokenizer.json: a Strip decoder with stop > 0 after Fuse is not supported");
  } else if (type == "Metaspace") {
    s.kind = Step::Kind::kMetaspace;
    s.from = j.value("replacement", "\xE2\x96\x81");
    const std::string scheme = j.value("prepend_scheme", j.value("add_prefix_space", true) ? "always" : "never");
    s.prepends = scheme != "never";
  } else if (type == "ByteLevel") {
    s.kind = Step::Kind::kByteLevel;
    *fused = true;  // Hugging Face's ByteLevel decoder returns the tokens joined
  } else {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: decoder '", type, "' is not supported"));
  }
  steps->push_back(std::move(s));
  return absl::OkStatus();
}

std::string Decoder::Decode(const std::string& piece, bool first) const {
  std::string t = piece;
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::Kind::kReplace: {
        const auto hits = s.regex ? s.regex->FindAll(t) : FindLiteral(t, s.from);
        std::string out;
        size_t at = 0;
        for (const auto& [b, e] : hits) {
          out.append(t, at, b - at);
          out += s.to;
          at = e;
        }
        out.append(t, at, std::string::npos);
        t = std::move(out);
        break;
      }
      case Step::Kind::kByteFallback:
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && std::isxdigit(t[3]) && std::isxdigit(t[4]))
          t = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
        break;
      case Step::Kind::kFuse:
        break;  // tokens are concatenated anyway
      case Step::Kind::kStrip: {
        // Up to `start` leading and `stop` trailing copies of `content` (per token, or once at
        // the start of the joined text after a Fuse).
        size_t b = 0, e = t.size();
        const size_t n = s.content.size();
        if (!s.after_fuse || first)
          for (int i = 0; i < s.start && n && t.compare(b, n, s.content) == 0; ++i) b += n;
        for (int i = 0; i < s.stop && n && e >= b + n && t.compare(e - n, n, s.content) == 0; ++i) e -= n;
        t = t.substr(b, e - b);
        break;
      }
      case Step::Kind::kMetaspace: {
        // Hugging Face drops every replacement character of the first token (when a prefix was
        // prepended), and turns the others into spaces.
        std::string out;
        const auto hits = FindLiteral(t, s.from);
        size_t at = 0;
        for (const auto& [b, e] : hits) {
          out.append(t, at, b - at);
          if (!(first && s.prepends)) out += ' ';
          at = e;
        }
        out.append(t, at, std::string::npos);
        t = std::move(out);
        break;
      }
      case Step::Kind::kByteLevel: {
        // Each character back to its byte; a token with a character outside the table stays as
        // it is (Hugging Face's rule).
        std::string out;
        bool all = true;
        for (const std::string& ch : Utf8Chars(t)) {
          const int b = ByteLevelByte(ch);
          if (b < 0) {
            all = false;
            break;
          }
          out += static_cast<char>(b);
        }
        if (all) t = std::move(out);
        break;
      }
    }
  }
  return t;
}

}  // namespace strata
