// Bytes as text to encode, and as token ids to decode, whole and incrementally: never a crash.
// Byte-level BPE is lossless: decoding the encoding of any text gives the text back.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizer = std::move(strata::Tokenizer::Load(STRATA_FUZZ_DIR)).value();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int> ids = tokenizer->Encode(text);
  if (tokenizer->Decode(ids) != text) std::abort();
  std::vector<int> raw;
  for (size_t i = 0; i + 1 < size; i += 2) raw.push_back((data[i] | (data[i + 1] << 8)) % 600 - 50);  // some invalid
  (void)tokenizer->Decode(raw);
  strata::IncrementalDecoder dec(tokenizer.get());
  for (int id : raw) (void)dec.Add(id);
  return 0;
}
