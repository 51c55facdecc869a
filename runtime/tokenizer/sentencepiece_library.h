// File: runtime/tokenizer/sentencepiece_library.h
// The one translation unit that includes libsentencepiece's header. That header declares its own
// `absl::string_view` (an alias of std::string_view), which collides with Debian's Abseil, so
// nothing here may include Abseil: plain std types only.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace strata {

class SentencePieceLibrary {
 public:
  SentencePieceLibrary();
  ~SentencePieceLibrary();
  // False (with the library's message in *error) when `path` is not a SentencePiece model.
  bool Load(const std::string& path, std::string* error);
  std::vector<int> Encode(const std::string& text) const;
  std::vector<std::string> EncodePieces(const std::string& text) const;
  int size() const;
  const std::string& piece(int id) const;
  int id_of(const std::string& piece) const;  // the unknown id when absent
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  bool is_byte(int id) const;
  int bos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace strata
