#include "runtime/tokenizer/sentencepiece_library.h"

#include <sentencepiece_processor.h>

namespace strata {

SentencePieceLibrary::SentencePieceLibrary() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SentencePieceLibrary::~SentencePieceLibrary() = default;

bool SentencePieceLibrary::Load(const std::string& path, std::string* error) {
  const auto st = sp_->Load(path);
  if (!st.ok()) *error = st.ToString();
  return st.ok();
}

std::vector<int> SentencePieceLibrary::Encode(const std::string& text) const {
  std::vector<int> ids;
  sp_->Encode(text, &ids);
  return ids;
}

std::vector<std::string> SentencePieceLibrary::EncodePieces(const std::string& text) const {
  std::vector<std::string> pieces;
  sp_->Encode(text, &pieces);
  return pieces;
}

int SentencePieceLibrary::size() const { return sp_->GetPieceSize(); }
const std::string& SentencePieceLibrary::piece(int id) const { return sp_->IdToPiece(id); }
int SentencePieceLibrary::id_of(const std::string& piece) const { return sp_->PieceToId(piece); }
bool SentencePieceLibrary::is_control(int id) const { return sp_->IsControl(id); }
bool SentencePieceLibrary::is_unknown(int id) const { return sp_->IsUnknown(id); }
bool SentencePieceLibrary::is_byte(int id) const { return sp_->IsByte(id); }
int SentencePieceLibrary::bos_id() const { return sp_->bos_id(); }

}  // namespace strata
