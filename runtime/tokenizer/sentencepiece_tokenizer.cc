#include "runtime/tokenizer/sentencepiece_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/added_tokens.h"

namespace strata {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's whitespace

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer() : sp_(std::make_unique<SentencePieceLibrary>()) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(const std::string& path) {
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  if (std::string error; !t->sp_->Load(path, &error))
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a SentencePiece model: ", error));
  for (int id = 0; id < t->sp_->size(); ++id)
    if (t->sp_->is_control(id) || t->sp_->is_unknown(id)) {
      AddedToken a;
      a.content = t->sp_->piece(id);
      a.id = id;
      a.special = true;
      t->special_.push_back(a);
    }
  // Whether the model puts a space in front of the text (normalizer_spec.add_dummy_prefix): seen
  // in how it segments a lone letter.
  const std::vector<std::string> pieces = t->sp_->EncodePieces("a");
  t->dummy_prefix_ = !pieces.empty() && pieces[0].rfind(kSpace, 0) == 0;
  return t;
}

int SentencePieceTokenizer::vocab_size() const { return sp_->size(); }

int SentencePieceTokenizer::bos_id() const { return sp_->bos_id(); }

bool SentencePieceTokenizer::IsSpecial(int id) const { return id >= 0 && id < sp_->size() && sp_->is_control(id); }

int SentencePieceTokenizer::TokenId(const std::string& token) const {
  const int id = sp_->id_of(token);
  return id >= 0 && id < sp_->size() && sp_->piece(id) == token ? id : -1;
}

std::vector<int> SentencePieceTokenizer::Encode(const std::string& text) const {
  std::vector<int> out;
  for (const TextPart& part : SplitAddedTokens(text, special_)) {
    if (part.id >= 0) {
      out.push_back(part.id);
      continue;
    }
    const std::vector<int> ids = sp_->Encode(part.text);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

std::string SentencePieceTokenizer::DecodeToken(int id, bool skip_special, bool first) const {
  if (id < 0 || id >= sp_->size()) return "";
  const std::string& piece = sp_->piece(id);
  if (sp_->is_control(id)) return skip_special ? "" : piece;
  if (sp_->is_unknown(id)) return piece;
  if (sp_->is_byte(id)) {  // "<0xNN>"
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, kSpace) == 0) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  if (first && dummy_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace strata
