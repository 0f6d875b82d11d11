#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/utf8.h"
#include "tokenizer/json_util.h"
#include "tokenizer/tokenizer_state.h"

namespace lserve {
namespace {

using nlohmann::json;

// tokenizer.json's "added_tokens": [{"id", "content", "single_word",
// "lstrip", "rstrip", "normalized", "special"}, ...]. The crate ignores the
// declared ids (each token takes its vocabulary id or the next free one),
// so only their type is checked here.
Result<std::vector<AddedToken>> ParseAddedTokens(const json& doc) {
  std::vector<AddedToken> tokens;
  const json* list = json_util::Find(doc, "added_tokens");
  if (list == nullptr) return tokens;
  if (!list->is_array()) return InvalidArgument("tokenizer.json: \"added_tokens\" must be an array");
  tokens.reserve(list->size());
  for (const json& entry : *list) {
    constexpr std::string_view kWhere = "tokenizer.json added_tokens entry";
    if (!entry.is_object()) return InvalidArgument(std::string(kWhere) + " must be an object");
    if (const json* id = json_util::Find(entry, "id")) {
      LSERVE_RETURN_IF_ERROR(json_util::AsTokenId(*id, int64_t{1} << 32, kWhere).status());
    }
    LSERVE_ASSIGN_OR_RETURN(AddedToken t, ParseAddedTokenObject(entry, /*default_special=*/false, kWhere));
    tokens.push_back(std::move(t));
  }
  return tokens;
}

// Rust's TokenizerImpl::token_to_id: added tokens first, then the model.
std::optional<int32_t> LookUp(const TokenizerState& s, std::string_view token) {
  if (auto id = s.added.TokenToId(token)) return id;
  return s.model.TokenToId(token);
}

}  // namespace

const std::string* TokenizerState::DecodeString(int32_t id) const {
  if (const std::string* s = added.DecodeString(id)) return s;
  return model.IdToToken(id);
}

bool TokenizerState::Dropped(int32_t id, bool skip_special) const {
  const std::string* s = DecodeString(id);
  return s == nullptr || (skip_special && added.IsSpecialContent(*s));
}

Result<std::shared_ptr<const TokenizerState>> BuildTokenizerState(TransformersLoadPlan plan) {
  const json& doc = plan.tokenizer;
  if (!doc.is_object()) return InvalidArgument("tokenizer.json must be a JSON object");
  if (const json* version = json_util::Find(doc, "version")) {
    if (!version->is_string() || version->get<std::string>() != "1.0") {
      return InvalidArgument("tokenizer.json: unknown version " + version->dump());
    }
  }
  auto state = std::make_shared<TokenizerState>();
  if (plan.model) {
    state->model = std::move(*plan.model);
  } else {
    const json* model = json_util::Find(doc, "model");
    if (model == nullptr) return InvalidArgument("tokenizer.json has no \"model\"");
    Result<BpeModel> bpe = BpeModel::FromJson(*model);
    if (!bpe.ok()) return bpe.status().Annotate("tokenizer.json");
    state->model = std::move(bpe).value();
  }
  if (const json* n = json_util::Find(doc, "normalizer")) {
    Result<std::unique_ptr<Normalizer>> parsed = ParseNormalizer(*n);
    if (!parsed.ok()) return parsed.status().Annotate("tokenizer.json");
    state->normalizer = std::move(parsed).value();
  }
  if (const json* p = json_util::Find(doc, "pre_tokenizer")) {
    Result<std::unique_ptr<PreTokenizer>> parsed = ParsePreTokenizer(*p);
    if (!parsed.ok()) return parsed.status().Annotate("tokenizer.json");
    state->pre_tokenizer = std::move(parsed).value();
  }
  if (const json* d = json_util::Find(doc, "decoder")) {
    Result<std::unique_ptr<Decoder>> parsed = ParseDecoder(*d, &state->decoder_traits);
    if (!parsed.ok()) return parsed.status().Annotate("tokenizer.json");
    state->decoder = std::move(parsed).value();
  }
  {
    Result<std::vector<AddedToken>> added = ParseAddedTokens(doc);
    if (!added.ok()) return added.status();
    LSERVE_RETURN_IF_ERROR(state->added.Add(*added, state->model, state->normalizer.get()).status());
    LSERVE_RETURN_IF_ERROR(state->added.Add(plan.extra_tokens, state->model, state->normalizer.get()).status());
  }
  state->added.set_encode_special_tokens(plan.split_special_tokens);
  state->id_limit = std::max(state->model.id_limit(), state->added.id_limit());

  state->specials = plan.specials;
  auto id_of = [&](const std::optional<std::string>& token) -> std::optional<int32_t> {
    return token ? LookUp(*state, *token) : std::nullopt;
  };
  state->bos_id = id_of(plan.specials.bos_token);
  state->eos_id = id_of(plan.specials.eos_token);
  state->unk_id = id_of(plan.specials.unk_token);
  state->pad_id = id_of(plan.specials.pad_token);

  if (plan.rebuild_post_processor) {
    // transformers' update_post_processor(): a missing BOS/EOS is not added;
    // a named token outside the vocabulary maps to the unknown token's id.
    auto template_id = [&](const std::optional<std::string>& token, const std::optional<int32_t>& id,
                           bool add) -> std::optional<int32_t> {
      if (!add || !token) return std::nullopt;
      return id ? id : state->unk_id;
    };
    state->post_processor = MakeBosEosProcessor(template_id(plan.specials.bos_token, state->bos_id, plan.add_bos),
                                                template_id(plan.specials.eos_token, state->eos_id, plan.add_eos));
  } else if (const json* pp = json_util::Find(doc, "post_processor")) {
    Result<std::unique_ptr<PostProcessor>> parsed = ParsePostProcessor(*pp, state->id_limit);
    if (!parsed.ok()) return parsed.status().Annotate("tokenizer.json");
    state->post_processor = std::move(parsed).value();
  }
  if (state->post_processor) {
    std::vector<int32_t> probe;
    state->post_processor->Process(&probe, true);
    state->adds_bos = state->bos_id && !probe.empty() && probe.front() == *state->bos_id;
    state->adds_eos = state->eos_id && !probe.empty() && probe.back() == *state->eos_id;
  }
  state->loaded_as = plan.loaded_as;
  return std::shared_ptr<const TokenizerState>(std::move(state));
}

Result<Tokenizer> Tokenizer::FromHfJson(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                                        std::string_view model_type) {
  LSERVE_ASSIGN_OR_RETURN(json doc, json_util::Parse(tokenizer_json, "tokenizer.json"));
  json config = json::object();
  if (!tokenizer_config_json.empty()) {
    LSERVE_ASSIGN_OR_RETURN(config, json_util::Parse(tokenizer_config_json, "tokenizer_config.json"));
    if (!config.is_object()) return InvalidArgument("tokenizer_config.json must be a JSON object");
  }
  LSERVE_ASSIGN_OR_RETURN(TransformersLoadPlan plan, PlanHfLoad(std::move(doc), config, model_type));
  LSERVE_ASSIGN_OR_RETURN(std::shared_ptr<const TokenizerState> state, BuildTokenizerState(std::move(plan)));
  return Tokenizer(std::move(state));
}

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  if (!utf8::IsValid(text)) return InvalidArgument("text to tokenize is not valid UTF-8");
  const TokenizerState& s = *state_;
  std::vector<Piece> pieces;
  LSERVE_RETURN_IF_ERROR(s.added.Split(text, s.normalizer.get(), &pieces));
  if (s.pre_tokenizer) LSERVE_RETURN_IF_ERROR(s.pre_tokenizer->PreTokenize(&pieces));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Piece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
    } else {
      LSERVE_RETURN_IF_ERROR(s.model.Tokenize(piece.text, &ids));
    }
  }
  if (s.post_processor) s.post_processor->Process(&ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const TokenizerState& s = *state_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    if (s.Dropped(id, skip_special_tokens)) continue;
    tokens.push_back(*s.DecodeString(id));
  }
  return RunDecoder(s.decoder.get(), std::move(tokens));
}

int32_t Tokenizer::vocab_size() const { return state_->id_limit; }

int32_t Tokenizer::num_tokens() const {
  size_t overlapping = 0;
  for (const auto& [id, token] : state_->added.tokens()) {
    if (state_->model.TokenToId(token.content)) ++overlapping;
  }
  return static_cast<int32_t>(state_->model.size() + state_->added.size() - overlapping);
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const { return LookUp(*state_, token); }

std::optional<std::string> Tokenizer::IdToToken(int32_t id) const {
  const std::string* s = state_->DecodeString(id);
  if (s == nullptr) return std::nullopt;
  return *s;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const std::string* s = state_->DecodeString(id);
  return s != nullptr && state_->added.IsSpecialContent(*s);
}

std::optional<int32_t> Tokenizer::bos_id() const { return state_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return state_->eos_id; }
std::optional<int32_t> Tokenizer::pad_id() const { return state_->pad_id; }
std::optional<int32_t> Tokenizer::unk_id() const { return state_->unk_id; }
const SpecialTokenStrings& Tokenizer::special_tokens() const { return state_->specials; }
bool Tokenizer::adds_bos() const { return state_->adds_bos; }
bool Tokenizer::adds_eos() const { return state_->adds_eos; }
const std::string& Tokenizer::loaded_as() const { return state_->loaded_as; }

}  // namespace lserve
