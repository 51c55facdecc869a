// File: runtime/tokenizer/gguf_tokenizer.h
// The tokenizer of a GGUF model from its metadata alone, as the tokenizer.json Hugging Face
// `tokenizers` would load and the tokenizer_config.json beside it (special tokens, add_bos_token,
// add_eos_token, the chat template), so that the one tokenizer.json pipeline (JsonTokenizer) runs
// it. tokenizer.ggml.model "gpt2" (byte-level BPE: tokens, merges, token types) with the
// pre-tokenizer llama.cpp's tokenizer.ggml.pre names (gpt-2 and its aliases, smollm and the
// digit-first family, llama3/llama-bpe, qwen2, default), and "llama" (SentencePiece BPE: pieces
// and scores, merges derived from the scores as transformers' LlamaConverter does, byte fallback,
// add_space_prefix); CONTROL tokens become special added tokens, USER_DEFINED ones plain added
// tokens. Other models and pre-tokenizers are refused by name.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/model/gguf_file.h"

namespace strata {

struct GgufTokenizerFiles {
  std::string tokenizer_json;
  nlohmann::json tokenizer_config;  // bos_token, eos_token, unk_token, pad_token, add_*_token, chat_template
};

absl::StatusOr<GgufTokenizerFiles> TokenizerFilesFromGguf(const GgufModel& model);

}  // namespace strata
