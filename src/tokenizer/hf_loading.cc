// transformers' AutoTokenizer rules (v5 "tokenizers" backend): how
// tokenizer_config.json (and config.json's model_type) change the tokenizer
// that tokenizer.json alone describes. Mirrored from
// models/auto/tokenization_auto.py, tokenization_utils_tokenizers.py
// (TokenizersBackend.__init__, update_post_processor) and the Llama, GPT-2
// and Qwen2 tokenizer classes. Where transformers and the raw `tokenizers`
// library differ, lserve follows transformers:
//   - LlamaTokenizer, GPT2Tokenizer and Qwen2Tokenizer rebuild the
//     normalizer, pre-tokenizer, decoder and model options from their own
//     code; only the vocabulary, merges and post-processor come from the file.
//   - add_bos_token / add_eos_token in the config are ignored (transformers
//     drops them when tokenizer.json exists): the file's post-processor rules.
//   - the named special tokens (bos/eos/unk/pad/...) and the config's
//     added_tokens_decoder are added to the backend as added tokens, so e.g.
//     a bos_token that only the model vocabulary has starts being matched
//     in text as a special token.
// Not modelled: classes other than the three above (their tokenizer.json is
// used as is, as for TokenizersBackend), mistral-common, and the regex patch
// transformers applies to some >100k-token Mistral vocabularies.
#include <algorithm>
#include <string>

#include "tokenizer/json_util.h"
#include "tokenizer/tokenizer_state.h"

namespace lserve {
namespace {

using nlohmann::json;

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581

std::string StripFast(std::string name) {
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Fast") == 0) name.resize(name.size() - 4);
  return name;
}

// The class transformers registers for a config.json model_type ("" when
// none). Only the types lserve serves are listed.
std::string RegisteredClass(std::string_view model_type) {
  if (model_type == "mistral" || model_type == "mixtral") return "TokenizersBackend";
  if (model_type == "qwen2" || model_type == "qwen2_moe" || model_type == "qwen3") return "Qwen2Tokenizer";
  if (model_type == "gpt2" || model_type == "starcoder2") return "GPT2Tokenizer";
  return "";
}

bool HasType(const json* component, std::string_view type, std::string_view list_key) {
  if (component == nullptr || !component->is_object()) return false;
  const json* t = json_util::Find(*component, "type");
  if (t != nullptr && t->is_string() && t->get<std::string>() == type) return true;
  if (const json* list = json_util::Find(*component, list_key); list != nullptr && list->is_array()) {
    for (const json& item : *list) {
      const json* it = json_util::Find(item, "type");
      if (it != nullptr && it->is_string() && it->get<std::string>() == type) return true;
    }
  }
  return false;
}

bool IsByteLevelDocument(const json& tokenizer) {
  return HasType(json_util::Find(tokenizer, "pre_tokenizer"), "ByteLevel", "pretokenizers") ||
         HasType(json_util::Find(tokenizer, "decoder"), "ByteLevel", "decoders");
}

// AutoTokenizer.from_pretrained's choice of class.
TokenizerClass ChooseClass(const json& tokenizer, const json& config, std::string_view model_type,
                           std::string* name) {
  std::string hub;
  if (const json* c = json_util::Find(config, "tokenizer_class"); c != nullptr && c->is_string()) {
    hub = StripFast(c->get<std::string>());
  }
  const std::string registered = RegisteredClass(model_type);
  const bool incorrect_hub_class = model_type == "qwen2";
  std::string chosen = hub;
  if (hub == "LlamaTokenizer" && !incorrect_hub_class && IsByteLevelDocument(tokenizer)) {
    chosen = "TokenizersBackend";  // "tokenizer_class is LlamaTokenizer but tokenizer.json is ByteLevel"
  } else if (!hub.empty() && !registered.empty() && registered != hub) {
    chosen = registered == "TokenizersBackend" ? registered : (incorrect_hub_class ? registered : hub);
  } else if (hub.empty() && !registered.empty()) {
    chosen = registered;
  }
  *name = chosen;
  if (chosen == "LlamaTokenizer") return TokenizerClass::kLlama;
  if (chosen == "GPT2Tokenizer") return TokenizerClass::kGpt2;
  if (chosen == "Qwen2Tokenizer") return TokenizerClass::kQwen2;
  if (chosen.empty() || chosen == "TokenizersBackend" || chosen == "PreTrainedTokenizer" ||
      chosen == "PreTrainedTokenizerFast") {
    *name = "TokenizersBackend";
  } else {
    // A class whose own __init__ is not modelled: its tokenizer.json is used as is.
    *name = "TokenizersBackend (" + chosen + " not modelled)";
  }
  return TokenizerClass::kBackend;
}

Result<bool> ConfigBool(const json& config, std::string_view key, bool fallback) {
  const json* v = json_util::Find(config, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return json_util::TypeError("tokenizer_config.json", key, "a boolean");
  return v->get<bool>();
}

// A token as tokenizer_config.json spells it: a string, or an AddedToken
// object ({"content": ..., "lstrip": ..., ...}, maybe with "__type").
Result<AddedToken> ParseConfigToken(const json& v, bool default_special, std::string_view where) {
  AddedToken t;
  if (v.is_string()) {
    t.content = v.get<std::string>();
    t.special = default_special;
    t.normalized = !t.special;
    return t;
  }
  if (!v.is_object()) return InvalidArgument(std::string(where) + " must be a string or an AddedToken object");
  return ParseAddedTokenObject(v, default_special, where);
}

// The BPE vocabulary and merges of the file, in the shape the tokenizer
// classes pass them to a fresh BPE model.
Result<json> RebuiltModel(const json& tokenizer, TokenizerClass cls) {
  const json* model = json_util::Find(tokenizer, "model");
  if (model == nullptr || !model->is_object()) return InvalidArgument("tokenizer.json has no \"model\"");
  const json* vocab = json_util::Find(*model, "vocab");
  const json* merges = json_util::Find(*model, "merges");
  json rebuilt = {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab ? *vocab : json::object()},
                  {"merges", merges ? *merges : json::array()}};
  if (cls == TokenizerClass::kLlama) {
    rebuilt["fuse_unk"] = true;
    rebuilt["byte_fallback"] = true;
  } else {
    rebuilt["fuse_unk"] = false;
    rebuilt["byte_fallback"] = false;
  }
  return rebuilt;
}

Status RebuildForClass(TokenizerClass cls, const json& config, json* tokenizer) {
  if (cls == TokenizerClass::kBackend) return Status::Ok();
  LSERVE_ASSIGN_OR_RETURN(json model, RebuiltModel(*tokenizer, cls));
  (*tokenizer)["model"] = std::move(model);
  (*tokenizer)["added_tokens"] = json::array();
  // LlamaTokenizer prepends a space unless told otherwise; the others do not.
  LSERVE_ASSIGN_OR_RETURN(bool add_prefix_space,
                          ConfigBool(config, "add_prefix_space", cls == TokenizerClass::kLlama));
  LSERVE_ASSIGN_OR_RETURN(bool legacy, ConfigBool(config, "legacy", false));
  SetClassComponents(cls, add_prefix_space, legacy, tokenizer);
  return Status::Ok();
}

// The class defaults of the named special tokens when the config has none.
void ClassDefaults(TokenizerClass cls, std::vector<std::pair<std::string, json>>* named) {
  auto set_default = [&](const std::string& key, const char* value) {
    for (auto& [k, v] : *named) {
      if (k == key) return;
    }
    named->emplace_back(key, value == nullptr ? json(nullptr) : json(value));
  };
  switch (cls) {
    case TokenizerClass::kLlama:
      set_default("unk_token", "<unk>");
      set_default("bos_token", "<s>");
      set_default("eos_token", "</s>");
      break;
    case TokenizerClass::kGpt2:
      set_default("unk_token", "<|endoftext|>");
      set_default("bos_token", "<|endoftext|>");
      set_default("eos_token", "<|endoftext|>");
      break;
    case TokenizerClass::kQwen2:
      set_default("unk_token", "<|endoftext|>");
      set_default("eos_token", "<|endoftext|>");
      set_default("pad_token", "<|endoftext|>");
      break;
    case TokenizerClass::kBackend:
      break;
  }
}

}  // namespace

Result<AddedToken> ParseAddedTokenObject(const json& obj, bool default_special, std::string_view where) {
  AddedToken t;
  LSERVE_ASSIGN_OR_RETURN(t.content, json_util::GetString(obj, "content", where));
  LSERVE_ASSIGN_OR_RETURN(t.special, json_util::GetBool(obj, "special", default_special, where));
  LSERVE_ASSIGN_OR_RETURN(t.single_word, json_util::GetBool(obj, "single_word", false, where));
  LSERVE_ASSIGN_OR_RETURN(t.lstrip, json_util::GetBool(obj, "lstrip", false, where));
  LSERVE_ASSIGN_OR_RETURN(t.rstrip, json_util::GetBool(obj, "rstrip", false, where));
  LSERVE_ASSIGN_OR_RETURN(t.normalized, json_util::GetBool(obj, "normalized", !t.special, where));
  return t;
}

const std::string_view kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string_view kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json SplitThenByteLevel(std::string_view pattern, bool add_prefix_space) {
  json steps = json::array();
  steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", std::string(pattern)}}}, {"behavior", "Isolated"},
                   {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", false}});
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

void SetClassComponents(TokenizerClass cls, bool add_prefix_space, bool legacy, json* doc) {
  const std::string meta(kMetaspace);
  switch (cls) {
    case TokenizerClass::kLlama: {
      // _get_prepend_scheme(): "first" unless legacy.
      const char* scheme = !add_prefix_space ? "never" : legacy ? "always" : "first";
      (*doc)["normalizer"] = nullptr;
      (*doc)["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", meta}, {"prepend_scheme", scheme},
                                 {"split", false}};
      json decoders = json::array();
      decoders.push_back({{"type", "Replace"}, {"pattern", {{"String", meta}}}, {"content", " "}});
      decoders.push_back({{"type", "ByteFallback"}});
      decoders.push_back({{"type", "Fuse"}});
      if (add_prefix_space) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
      (*doc)["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
      break;
    }
    case TokenizerClass::kGpt2:
      (*doc)["normalizer"] = nullptr;
      (*doc)["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space},
                                 {"trim_offsets", true}, {"use_regex", true}};
      (*doc)["decoder"] = {{"type", "ByteLevel"}};
      break;
    case TokenizerClass::kQwen2:
      (*doc)["normalizer"] = {{"type", "NFC"}};
      (*doc)["pre_tokenizer"] = SplitThenByteLevel(kQwen2SplitPattern, add_prefix_space);
      (*doc)["decoder"] = {{"type", "ByteLevel"}};
      break;
    case TokenizerClass::kBackend:
      break;
  }
}

Result<TransformersLoadPlan> PlanHfLoad(json tokenizer, const json& config, std::string_view model_type) {
  if (!tokenizer.is_object()) return InvalidArgument("tokenizer.json must be a JSON object");
  TransformersLoadPlan plan;
  const TokenizerClass cls = ChooseClass(tokenizer, config, model_type, &plan.loaded_as);
  LSERVE_RETURN_IF_ERROR(RebuildForClass(cls, config, &tokenizer));
  plan.tokenizer = std::move(tokenizer);
  LSERVE_ASSIGN_OR_RETURN(plan.split_special_tokens, ConfigBool(config, "split_special_tokens", false));

  // added_tokens_decoder: {"<id>": {content, lstrip, ...}}, re-added in id
  // order (transformers re-adds every entry, whatever the file has).
  std::vector<std::pair<int64_t, AddedToken>> decoder_tokens;
  if (const json* table = json_util::Find(config, "added_tokens_decoder")) {
    if (!table->is_object()) return json_util::TypeError("tokenizer_config.json", "added_tokens_decoder", "an object");
    for (auto it = table->begin(); it != table->end(); ++it) {
      int64_t index = -1;
      const std::string& key = it.key();
      if (key.empty() || key.size() > 12 || key.find_first_not_of("0123456789") != std::string::npos) {
        return InvalidArgument("tokenizer_config.json: added_tokens_decoder key \"" + key + "\" is not an id");
      }
      index = std::stoll(key);
      LSERVE_ASSIGN_OR_RETURN(AddedToken t, ParseConfigToken(it.value(), false,
                                                             "tokenizer_config.json added_tokens_decoder entry"));
      decoder_tokens.emplace_back(index, std::move(t));
    }
    std::sort(decoder_tokens.begin(), decoder_tokens.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }

  // Named special tokens: the standard ones, then model-specific "*_token"
  // strings. A string equal to an added_tokens_decoder entry takes that
  // entry's properties.
  static const char* kNamed[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                 "pad_token", "cls_token", "mask_token"};
  std::vector<std::pair<std::string, json>> named;
  for (const char* key : kNamed) {
    if (config.contains(key)) named.emplace_back(key, config[key]);
  }
  ClassDefaults(cls, &named);
  // transformers walks the named tokens in SPECIAL_TOKENS_ATTRIBUTES order.
  std::stable_sort(named.begin(), named.end(), [](const auto& a, const auto& b) {
    auto rank = [](const std::string& k) {
      return std::find(std::begin(kNamed), std::end(kNamed), k) - std::begin(kNamed);
    };
    return rank(a.first) < rank(b.first);
  });
  for (auto it = config.begin(); it != config.end(); ++it) {
    const std::string& key = it.key();
    const bool standard = std::find(std::begin(kNamed), std::end(kNamed), key) != std::end(kNamed);
    if (!standard && key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0 && it->is_string()) {
      named.emplace_back(key, *it);
    }
  }
  std::vector<AddedToken> named_tokens;
  for (const auto& [key, value] : named) {
    if (value.is_null()) continue;
    LSERVE_ASSIGN_OR_RETURN(AddedToken t, ParseConfigToken(value, true, "tokenizer_config.json " + key));
    for (const auto& [index, dt] : decoder_tokens) {
      if (dt.content == t.content) t = dt;
    }
    if (key == "bos_token") plan.specials.bos_token = t.content;
    if (key == "eos_token") plan.specials.eos_token = t.content;
    if (key == "unk_token") plan.specials.unk_token = t.content;
    if (key == "pad_token") plan.specials.pad_token = t.content;
    named_tokens.push_back(std::move(t));
  }
  std::vector<AddedToken> extra_specials;
  const json* extras = json_util::Find(config, "extra_special_tokens");
  if (extras == nullptr || (extras->is_array() && extras->empty())) {
    extras = json_util::Find(config, "additional_special_tokens");
  }
  if (extras != nullptr && extras->is_array()) {
    for (const json& v : *extras) {
      LSERVE_ASSIGN_OR_RETURN(AddedToken t, ParseConfigToken(v, true, "tokenizer_config.json extra_special_tokens"));
      extra_specials.push_back(std::move(t));
    }
  } else if (extras != nullptr && extras->is_object()) {
    for (auto it = extras->begin(); it != extras->end(); ++it) {
      LSERVE_ASSIGN_OR_RETURN(AddedToken t, ParseConfigToken(*it, true, "tokenizer_config.json extra_special_tokens"));
      named_tokens.push_back(std::move(t));
    }
  }

  // TokenizersBackend.__init__: re-add the decoder entries, then any named
  // or extra special token that is not an added token yet (by content).
  std::vector<std::string> encoder;
  if (const json* list = json_util::Find(plan.tokenizer, "added_tokens"); list != nullptr && list->is_array()) {
    for (const json& entry : *list) {
      if (const json* c = json_util::Find(entry, "content"); c != nullptr && c->is_string()) {
        encoder.push_back(c->get<std::string>());
      }
    }
  }
  auto known = [&](const std::string& content) {
    return std::find(encoder.begin(), encoder.end(), content) != encoder.end();
  };
  std::vector<std::string> named_contents;
  for (const AddedToken& t : named_tokens) named_contents.push_back(t.content);
  auto is_named = [&](const std::string& content) {
    return std::find(named_contents.begin(), named_contents.end(), content) != named_contents.end();
  };
  for (auto [index, t] : decoder_tokens) {
    if (!t.special && is_named(t.content)) t.special = true;
    plan.extra_tokens.push_back(t);
    encoder.push_back(t.content);
  }
  for (std::vector<AddedToken>* group : {&named_tokens, &extra_specials}) {
    for (AddedToken t : *group) {
      if (known(t.content)) continue;
      if (!t.special && is_named(t.content)) t.special = true;
      plan.extra_tokens.push_back(t);
      encoder.push_back(t.content);
    }
  }
  if (cls == TokenizerClass::kQwen2) {
    // Qwen2Tokenizer: add_tokens([AddedToken(t, special=True) for t in all_special_tokens]).
    std::vector<std::string> seen;
    for (std::vector<AddedToken>* group : {&named_tokens, &extra_specials}) {
      for (const AddedToken& t : *group) {
        if (std::find(seen.begin(), seen.end(), t.content) != seen.end()) continue;
        seen.push_back(t.content);
        AddedToken special;
        special.content = t.content;
        special.special = true;
        special.normalized = false;
        plan.extra_tokens.push_back(special);
      }
    }
  }

  // transformers drops add_bos_token / add_eos_token from the config when a
  // tokenizer.json exists (_from_pretrained), so the file's post-processor
  // decides; without one, update_post_processor() installs a bare "$A".
  plan.rebuild_post_processor = json_util::Find(plan.tokenizer, "post_processor") == nullptr;
  return plan;
}

}  // namespace lserve
