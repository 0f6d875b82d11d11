#include "tokenizer/post_processor.h"

#include <optional>
#include <string>
#include <unordered_map>

#include "tokenizer/json_util.h"
#include "tokenizer/normalizer.h"

namespace lserve {
namespace {

using nlohmann::json;

// One item of a template: the sequence itself, or a run of special ids.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

class TemplateProcessor final : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<TemplateItem> single) : single_(std::move(single)) {}
  void Process(std::vector<int32_t>* ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids->size() + 4);
    for (const TemplateItem& item : single_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids->begin(), ids->end());
      } else if (add_special_tokens) {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    *ids = std::move(out);
  }

 private:
  std::vector<TemplateItem> single_;
};

class NoOpProcessor final : public PostProcessor {
 public:
  void Process(std::vector<int32_t>*, bool) const override {}
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>* ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->Process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// "$A", "$B", "$", "$0", "<s>", each optionally followed by ":type_id".
Result<std::pair<bool, std::string>> ParsePieceString(const std::string& s, std::string_view where) {
  const std::string name = s.substr(0, s.find(':'));
  if (!name.empty() && name[0] == '$') {
    const std::string rest = name.substr(1);
    if (rest.empty() || rest == "A" || rest == "a") return std::make_pair(true, std::string("A"));
    if (rest == "B" || rest == "b") return std::make_pair(true, std::string("B"));
    if (rest.find_first_not_of("0123456789") == std::string::npos) return std::make_pair(true, std::string("A"));
    return InvalidArgument(std::string(where) + ": bad template piece \"" + s + "\"");
  }
  return std::make_pair(false, name);
}

Result<std::unique_ptr<PostProcessor>> ParseTemplate(const json& spec, int64_t id_limit) {
  constexpr std::string_view kWhere = "post_processor TemplateProcessing";
  // special_tokens: name -> {"id": name, "ids": [...], "tokens": [...]}
  std::unordered_map<std::string, std::vector<int32_t>> specials;
  if (const json* table = json_util::Find(spec, "special_tokens")) {
    if (!table->is_object()) return json_util::TypeError(kWhere, "special_tokens", "an object");
    for (auto it = table->begin(); it != table->end(); ++it) {
      const json& entry = it.value();
      const json* ids = json_util::Find(entry, "ids");
      const json* tokens = json_util::Find(entry, "tokens");
      if (ids == nullptr || !ids->is_array() || tokens == nullptr || !tokens->is_array() ||
          ids->size() != tokens->size()) {
        return InvalidArgument(std::string(kWhere) + ": special token \"" + it.key() +
                               "\" needs \"ids\" and \"tokens\" arrays of one length");
      }
      std::vector<int32_t> parsed;
      for (const json& id : *ids) {
        LSERVE_ASSIGN_OR_RETURN(int32_t v, json_util::AsTokenId(id, id_limit,
                                                                std::string(kWhere) + " \"" + it.key() + "\""));
        parsed.push_back(v);
      }
      specials[it.key()] = std::move(parsed);
    }
  }
  const json* single = json_util::Find(spec, "single");
  if (single == nullptr || !single->is_array()) return json_util::TypeError(kWhere, "single", "an array");
  std::vector<TemplateItem> items;
  for (const json& piece : *single) {
    bool is_sequence = false;
    std::string name;
    if (piece.is_string()) {
      LSERVE_ASSIGN_OR_RETURN(auto parsed, ParsePieceString(piece.get<std::string>(), kWhere));
      is_sequence = parsed.first;
      name = parsed.second;
    } else if (const json* seq = json_util::Find(piece, "Sequence")) {
      is_sequence = true;
      LSERVE_ASSIGN_OR_RETURN(name, json_util::GetString(*seq, "id", kWhere));
    } else if (const json* tok = json_util::Find(piece, "SpecialToken")) {
      LSERVE_ASSIGN_OR_RETURN(name, json_util::GetString(*tok, "id", kWhere));
    } else {
      return InvalidArgument(std::string(kWhere) + ": a template piece must be Sequence or SpecialToken");
    }
    if (is_sequence) {
      // A single sequence has no B: the crate would index past its inputs.
      if (name != "A") return InvalidArgument(std::string(kWhere) + ": the single template uses $B");
      items.push_back({true, {}});
      continue;
    }
    const auto it = specials.find(name);
    if (it == specials.end()) {
      return InvalidArgument(std::string(kWhere) + ": template names the unknown special token \"" + name + "\"");
    }
    items.push_back({false, it->second});
  }
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(items)));
}

// Bert / Roberta: {"cls": [token, id], "sep": [token, id]} -> CLS $A SEP.
Result<std::unique_ptr<PostProcessor>> ParseClsSep(const json& spec, int64_t id_limit, std::string_view where) {
  std::vector<TemplateItem> items;
  std::optional<int32_t> ids[2];
  const char* keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; ++k) {
    const json* pair = json_util::Find(spec, keys[k]);
    if (pair == nullptr || !pair->is_array() || pair->size() != 2 || !(*pair)[0].is_string()) {
      return json_util::TypeError(where, keys[k], "a [token, id] pair");
    }
    LSERVE_ASSIGN_OR_RETURN(int32_t id, json_util::AsTokenId((*pair)[1], id_limit, where));
    ids[k] = id;
  }
  items.push_back({false, {*ids[0]}});
  items.push_back({true, {}});
  items.push_back({false, {*ids[1]}});
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(items)));
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> ParsePostProcessor(const json& spec, int64_t id_limit, int depth) {
  if (depth > kMaxComponentNesting) return InvalidArgument("post_processor Sequences nest too deeply");
  if (!spec.is_object()) return InvalidArgument("post_processor must be an object");
  LSERVE_ASSIGN_OR_RETURN(std::string type, json_util::GetString(spec, "type", "post_processor"));
  if (type == "TemplateProcessing") return ParseTemplate(spec, id_limit);
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new NoOpProcessor());
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    return ParseClsSep(spec, id_limit, "post_processor " + type);
  }
  if (type == "Sequence") {
    LSERVE_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<PostProcessor>> steps,
                            json_util::GetArrayOf<std::unique_ptr<PostProcessor>>(
                                spec, "processors", "post_processor Sequence",
                                [&](const json& item) { return ParsePostProcessor(item, id_limit, depth + 1); }));
    return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(steps)));
  }
  return InvalidArgument("unknown post_processor type \"" + type + "\"");
}

std::unique_ptr<PostProcessor> MakeBosEosProcessor(std::optional<int32_t> bos, std::optional<int32_t> eos) {
  std::vector<TemplateItem> items;
  if (bos) items.push_back({false, {*bos}});
  items.push_back({true, {}});
  if (eos) items.push_back({false, {*eos}});
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(items)));
}

}  // namespace lserve
