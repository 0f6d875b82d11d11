// Tokenizer::FromGguf: the tokenizer a GGUF file stores in its metadata,
// built the way transformers' GGUF loader builds it
// (integrations/gguf/gguf_tokenizer_mapping.py), which is the reference the
// conformance fixtures come from:
//   gpt2  -> GPT2Tokenizer(vocab, merges): byte-level BPE, ByteLevel
//            pre-tokenizer (GPT-2 split pattern) and decoder;
//   llama -> LlamaTokenizer(vocab, merges): SentencePiece-style BPE with byte
//            fallback, Metaspace (prepend "first", no split); the merges are
//            the file's, or derived from the piece scores when absent
//            (generate_merges).
// Then: CONTROL tokens become special added tokens and USER_DEFINED ones
// plain added tokens; tokenizer.ggml.pre selects a split pattern for the
// pre-tokenizers transformers knows; bos/eos/unk/pad and add_bos_token /
// add_eos_token come from the tokenizer.ggml keys (a llama vocabulary adds
// BOS unless the file says otherwise).
//
// Divergences from llama.cpp (which the reference does not follow either):
// "smollm" and the other pre-tokenizers outside transformers' table keep
// GPT-2's pattern (llama.cpp splits digits one by one for smollm); SPM
// vocabularies get the prefix space only at the start of the text (llama.cpp
// also adds it after every special token), and tokenizer.ggml.add_space_prefix
// is ignored.
#include <algorithm>
#include <cmath>

#include "core/utf8.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_state.h"
#include "tokenizer/unicode.h"

namespace lserve {
namespace {

using nlohmann::json;

constexpr int32_t kTokenTypeControl = 3;
constexpr int32_t kTokenTypeUserDefined = 4;
// generate_merges tries every split of every piece (quadratic in its
// length); pieces longer than this yield no merges. SentencePiece's
// max_piece_length is 16.
constexpr size_t kMaxMergedPieceCodePoints = 64;

constexpr std::string_view kTekkenSplit =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt4oSplit =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// tokenizer.ggml.pre -> the split pattern transformers installs; an empty
// pattern keeps the tokenizer class's own pre-tokenizer. Names not listed
// are refused.
struct PreTokenizerName {
  std::string_view name;
  std::string_view pattern;
};
const PreTokenizerName kPreTokenizers[] = {
    {"default", ""},          {"gpt2", ""},           {"smollm", ""},          {"starcoder", ""},
    {"refact", ""},           {"olmo", ""},           {"command-r", ""},       {"codeshell", ""},
    {"llama3", kLlama3SplitPattern}, {"llama-v3", kLlama3SplitPattern}, {"llama-bpe", kLlama3SplitPattern},
    {"falcon3", kLlama3SplitPattern}, {"pixtral", kLlama3SplitPattern}, {"dbrx", kLlama3SplitPattern},
    {"smaug-bpe", kLlama3SplitPattern}, {"tekken", kTekkenSplit}, {"qwen2", kQwen2SplitPattern},
    {"deepseek-r1-qwen", kQwen2SplitPattern}, {"megrez", kQwen2SplitPattern}, {"gpt-4o", kGpt4oSplit},
    {"llama4", kGpt4oSplit},
};

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

// transformers' generate_merges(vocab, vocab_scores): every split of every
// piece into two vocabulary pieces, ordered by the piece's score (then the
// lengths of the halves, longest first), ties kept in vocabulary order.
Result<std::vector<std::pair<std::string, std::string>>> GenerateMerges(
    std::span<const std::string_view> tokens, const StringMap<int32_t>& vocab, const std::vector<float>& scores) {
  struct Candidate {
    std::string left, right;
    double score;
    size_t left_len, right_len;
  };
  if (scores.size() < tokens.size()) {
    return InvalidArgument("GGUF: tokenizer.ggml.scores has fewer entries than tokenizer.ggml.tokens");
  }
  // dict(zip(tokens, scores)): first position of a piece, its last score.
  StringMap<size_t> first_index;
  std::vector<size_t> order;
  std::vector<double> piece_score(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (std::isnan(scores[i])) return InvalidArgument("GGUF: tokenizer.ggml.scores contains NaN");
    auto [it, inserted] = first_index.emplace(std::string(tokens[i]), i);
    if (inserted) order.push_back(i);
    piece_score[it->second] = scores[i];
  }
  std::vector<Candidate> merges;
  std::vector<Candidate> local;
  for (const size_t i : order) {
    const std::string_view piece = tokens[i];
    if (CodePointCount(piece) > kMaxMergedPieceCodePoints) continue;
    local.clear();
    size_t k = 0;
    while (k < piece.size()) {
      k += unicode::SequenceLength(static_cast<uint8_t>(piece[k]));
      if (k >= piece.size()) break;
      const std::string_view l = piece.substr(0, k), r = piece.substr(k);
      if (vocab.find(l) != vocab.end() && vocab.find(r) != vocab.end()) {
        local.push_back({std::string(l), std::string(r), piece_score[i], CodePointCount(l), CodePointCount(r)});
      }
    }
    std::stable_sort(local.begin(), local.end(), [&](const Candidate& a, const Candidate& b) {
      const int32_t al = vocab.find(a.left)->second, bl = vocab.find(b.left)->second;
      if (al != bl) return al < bl;
      return vocab.find(a.right)->second < vocab.find(b.right)->second;
    });
    for (Candidate& c : local) merges.push_back(std::move(c));
  }
  // sorted(..., key=(score, len(l), len(r)), reverse=True) is stable.
  std::stable_sort(merges.begin(), merges.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    return a.right_len > b.right_len;
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (Candidate& c : merges) out.emplace_back(std::move(c.left), std::move(c.right));
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> FileMerges(std::span<const std::string_view> merges) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string_view m = merges[i];
    const size_t space = m.find(' ');
    if (space == std::string_view::npos || m.find(' ', space + 1) != std::string_view::npos) {
      return InvalidArgument("GGUF: tokenizer.ggml.merges entry " + std::to_string(i) +
                             " is not two tokens separated by a space");
    }
    out.emplace_back(std::string(m.substr(0, space)), std::string(m.substr(space + 1)));
  }
  return out;
}

bool InByteAlphabet(std::string_view token) {
  size_t i = 0;
  while (i < token.size()) {
    if (byte_level::CharToByte(unicode::NextCodePoint(token, &i)) < 0) return false;
  }
  return true;
}

AddedToken MakeAdded(std::string content, bool special) {
  AddedToken t;
  t.content = std::move(content);
  t.special = special;
  t.normalized = false;
  return t;
}

}  // namespace

Result<Tokenizer> Tokenizer::FromGguf(const GgufFile& file) {
  LSERVE_ASSIGN_OR_RETURN(std::string kind, file.GetString("tokenizer.ggml.model"));
  if (kind != "gpt2" && kind != "llama") {
    return Unimplemented("GGUF tokenizer model \"" + kind + "\" is not supported (only gpt2 and llama)");
  }
  if (kind == "llama" && file.Find("general.architecture") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(std::string arch, file.GetString("general.architecture"));
    // transformers rebuilds these SentencePiece vocabularies differently.
    if (arch == "gemma" || arch == "gemma2" || arch == "gemma3" || arch == "phi3") {
      return Unimplemented("GGUF tokenizer of architecture \"" + arch + "\" is not supported");
    }
  }
  LSERVE_ASSIGN_OR_RETURN(std::span<const std::string_view> tokens, file.GetStringArray("tokenizer.ggml.tokens"));
  if (tokens.empty()) return InvalidArgument("GGUF: tokenizer.ggml.tokens is empty");
  if (static_cast<int64_t>(tokens.size()) >= kMaxTokenId) {
    return InvalidArgument("GGUF: tokenizer.ggml.tokens has too many entries");
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!utf8::IsValid(tokens[i])) {
      return InvalidArgument("GGUF: token " + std::to_string(i) + " is not valid UTF-8");
    }
  }
  std::vector<int32_t> types;
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(types, file.GetI32Array("tokenizer.ggml.token_type"));
  }
  std::string pre = "default";
  if (file.Find("tokenizer.ggml.pre") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(pre, file.GetString("tokenizer.ggml.pre"));
  }
  const PreTokenizerName* pre_entry = nullptr;
  for (const PreTokenizerName& p : kPreTokenizers) {
    if (p.name == pre) pre_entry = &p;
  }
  if (pre_entry == nullptr) {
    return Unimplemented("GGUF tokenizer.ggml.pre \"" + pre + "\" is not supported");
  }
  const bool byte_level_vocab = kind == "gpt2";

  // The vocabulary: {token: index}, a later duplicate winning. Byte-level
  // tokens outside the byte alphabet are respelled in it.
  StringMap<int32_t> vocab;
  vocab.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string spelled(tokens[i]);
    if (byte_level_vocab && !InByteAlphabet(spelled)) spelled = byte_level::BytesToChars(spelled);
    vocab[spelled] = static_cast<int32_t>(i);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (file.Find("tokenizer.ggml.merges") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(std::span<const std::string_view> raw, file.GetStringArray("tokenizer.ggml.merges"));
    LSERVE_ASSIGN_OR_RETURN(merges, FileMerges(raw));
  } else {
    LSERVE_ASSIGN_OR_RETURN(std::vector<float> scores, file.GetF32Array("tokenizer.ggml.scores"));
    LSERVE_ASSIGN_OR_RETURN(merges, GenerateMerges(tokens, vocab, scores));
  }
  BpeOptions options;
  if (!byte_level_vocab) {
    options.fuse_unk = true;
    options.byte_fallback = true;
  }
  Result<BpeModel> model = BpeModel::Build(vocab, merges, options);
  if (!model.ok()) return model.status().Annotate("GGUF tokenizer");

  TransformersLoadPlan plan;
  plan.loaded_as = byte_level_vocab ? "GPT2Tokenizer (GGUF)" : "LlamaTokenizer (GGUF)";
  plan.model = std::move(model).value();
  json& doc = plan.tokenizer;
  doc = json::object();
  doc["added_tokens"] = json::array();
  // GPT2Tokenizer / LlamaTokenizer built with their defaults.
  SetClassComponents(byte_level_vocab ? TokenizerClass::kGpt2 : TokenizerClass::kLlama,
                     /*add_prefix_space=*/!byte_level_vocab, /*legacy=*/false, &doc);
  if (!pre_entry->pattern.empty()) doc["pre_tokenizer"] = SplitThenByteLevel(pre_entry->pattern, false);

  // Added tokens, in the order transformers adds them.
  std::vector<std::string> added_contents;
  auto add = [&](AddedToken t) {
    if (std::find(added_contents.begin(), added_contents.end(), t.content) != added_contents.end()) return;
    added_contents.push_back(t.content);
    plan.extra_tokens.push_back(std::move(t));
  };
  // 1. The class's default named tokens (bos, eos, unk).
  if (byte_level_vocab) {
    add(MakeAdded("<|endoftext|>", true));
  } else {
    add(MakeAdded("<s>", true));
    add(MakeAdded("</s>", true));
    add(MakeAdded("<unk>", true));
  }
  // 2. CONTROL tokens as special tokens (a byte-level one outside the byte
  //    alphabet is a mislabel and skipped); 3. USER_DEFINED ones as plain
  //    added tokens when the vocabulary has them.
  const size_t typed = std::min(types.size(), tokens.size());
  for (size_t i = 0; i < typed; ++i) {
    if (types[i] == kTokenTypeControl && (!byte_level_vocab || InByteAlphabet(tokens[i]))) {
      // Re-adding with other properties overrides an earlier entry.
      AddedToken t = MakeAdded(std::string(tokens[i]), true);
      plan.extra_tokens.push_back(t);
      added_contents.push_back(t.content);
    }
  }
  for (size_t i = 0; i < typed; ++i) {
    if (types[i] != kTokenTypeUserDefined) continue;
    const std::string content(tokens[i]);
    const bool known = vocab.find(content) != vocab.end() ||
                       std::find(added_contents.begin(), added_contents.end(), content) != added_contents.end();
    if (known) {
      plan.extra_tokens.push_back(MakeAdded(content, false));
      added_contents.push_back(content);
    }
  }
  // 4. The file's named tokens, added as special when not added yet.
  auto named = [&](std::string_view key) -> Result<std::optional<std::string>> {
    if (file.Find(key) == nullptr) return std::optional<std::string>();
    LSERVE_ASSIGN_OR_RETURN(uint64_t id, file.GetUInt(key));
    if (id >= tokens.size()) {
      return InvalidArgument("GGUF: " + std::string(key) + " " + std::to_string(id) + " is not a token id");
    }
    return std::optional<std::string>(std::string(tokens[id]));
  };
  LSERVE_ASSIGN_OR_RETURN(plan.specials.bos_token, named("tokenizer.ggml.bos_token_id"));
  LSERVE_ASSIGN_OR_RETURN(plan.specials.eos_token, named("tokenizer.ggml.eos_token_id"));
  LSERVE_ASSIGN_OR_RETURN(plan.specials.unk_token, named("tokenizer.ggml.unknown_token_id"));
  LSERVE_ASSIGN_OR_RETURN(plan.specials.pad_token, named("tokenizer.ggml.padding_token_id"));
  for (const auto* token : {&plan.specials.bos_token, &plan.specials.eos_token, &plan.specials.unk_token,
                            &plan.specials.pad_token}) {
    if (*token) add(MakeAdded(**token, true));
  }

  plan.rebuild_post_processor = true;
  plan.add_bos = !byte_level_vocab;  // transformers: setdefault("add_bos_token", True) for llama
  if (file.Find("tokenizer.ggml.add_bos_token") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(plan.add_bos, file.GetBool("tokenizer.ggml.add_bos_token"));
  }
  if (file.Find("tokenizer.ggml.add_eos_token") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(plan.add_eos, file.GetBool("tokenizer.ggml.add_eos_token"));
  }
  Result<std::shared_ptr<const TokenizerState>> state = BuildTokenizerState(std::move(plan));
  if (!state.ok()) return state.status().Annotate("GGUF tokenizer");
  return Tokenizer(std::move(state).value());
}

}  // namespace lserve
