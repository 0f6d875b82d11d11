// Tokenizer: text <-> token ids exactly as Hugging Face transformers'
// AutoTokenizer (tokenizers backend) does for Llama-family models.
//
// Built from tokenizer.json + tokenizer_config.json (FromHfJson) or from the
// tokenizer a GGUF file stores in its metadata (FromGguf, mirroring
// transformers' GGUF loader). Encoding runs the tokenizers-crate pipeline:
//   added tokens split out -> normalizer -> pre-tokenizer -> BPE model ->
//   post-processor (BOS/EOS when add_special_tokens).
// A Tokenizer is immutable and cheap to copy (shared state); Encode and
// Decode may run concurrently from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace lserve {

class GgufFile;
struct TokenizerState;

// The named special tokens (tokenizer_config.json's bos_token, ...), as the
// chat template context and the engine need them.
struct SpecialTokenStrings {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> pad_token;
};

class Tokenizer {
 public:
  // `tokenizer_config_json` is "" when the file is absent. `model_type` is
  // config.json's model_type when known ("" otherwise): transformers picks
  // the tokenizer class from it in a few cases (e.g. "mistral").
  static Result<Tokenizer> FromHfJson(std::string_view tokenizer_json,
                                      std::string_view tokenizer_config_json,
                                      std::string_view model_type = "");
  // tokenizer.ggml.model "gpt2" (byte-level BPE) or "llama" (SentencePiece).
  static Result<Tokenizer> FromGguf(const GgufFile& file);

  // HF tokenizer(text, add_special_tokens=...)["input_ids"]. Text that is
  // not well-formed UTF-8 is an InvalidArgument.
  Result<std::vector<int32_t>> Encode(std::string_view text, bool add_special_tokens = true) const;

  // HF tokenizer.decode(ids, skip_special_tokens=...). Like HF, ids that no
  // token has (negative, >= vocab_size(), or holes) are skipped; the result
  // is always well-formed UTF-8.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // One past the largest token id (the size of an embedding table that can
  // hold every id). Ids below it may be holes (IdToToken gives nullopt).
  int32_t vocab_size() const;
  // HF len(tokenizer): model vocabulary plus added tokens not in it.
  int32_t num_tokens() const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token's string as stored (byte-level spelling for GPT-2 style
  // vocabularies, e.g. "Ġhello"); nullopt for ids no token has.
  std::optional<std::string> IdToToken(int32_t id) const;
  // True for added tokens marked special (skipped by skip_special_tokens).
  bool IsSpecial(int32_t id) const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> unk_id() const;
  const SpecialTokenStrings& special_tokens() const;
  // Whether Encode(..., true) adds BOS / EOS around the text.
  bool adds_bos() const;
  bool adds_eos() const;
  // The transformers class the behaviour follows ("TokenizersBackend",
  // "LlamaTokenizer", ...), for diagnostics.
  const std::string& loaded_as() const;

 private:
  friend class IncrementalDecoder;
  explicit Tokenizer(std::shared_ptr<const TokenizerState> state) : state_(std::move(state)) {}
  std::shared_ptr<const TokenizerState> state_;
};

// Streaming detokenization. Push() returns the text that the ids so far
// have completed; Flush() the rest. Chunks never split a UTF-8 character,
// and the concatenation of all chunks equals tokenizer.Decode(all ids)
// exactly (leading-space stripping, byte-fallback runs and multi-byte
// characters split across tokens included). Each Push decodes only a small
// window of recent ids (the prefix/read offsets of vLLM's
// detokenize_incrementally), so a token costs O(1) amortised.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  std::string Push(int32_t id);
  std::string Flush();

 private:
  std::string DecodeWindow(size_t begin, size_t end) const;
  bool MustWait() const;

  std::shared_ptr<const TokenizerState> state_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // ids_[0] is the window start (older ids are dropped)
  size_t read_offset_ = 0;    // ids before it have been emitted
  std::string prefix_text_;   // Decode(ids_[0, read_offset_))
};

}  // namespace lserve
