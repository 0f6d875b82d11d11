#include "formats/model_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/hf_model.h"

namespace lserve {
namespace {

constexpr char kDemoModelName[] = "SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr size_t kMaxTextFileBytes = 64u << 20;

// Reads an optional text file of a model folder: "" when it is absent.
Result<std::string> ReadOptionalModelText(const std::string& dir, std::string_view name) {
  auto path = ResolveModelFile(dir, name);
  if (!path.ok()) {
    if (path.status().code() == StatusCode::kNotFound) return std::string();
    return path.status();
  }
  auto text = ReadTextFile(*path, kMaxTextFileBytes);
  if (!text.ok()) return text.status().Annotate(std::string(name));
  return text;
}

// tokenizer_config.json's "chat_template": a string, or a list of
// {"name", "template"} entries of which transformers uses "default".
Result<std::string> ChatTemplateFromTokenizerConfig(const std::string& text) {
  if (text.empty()) return std::string();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("tokenizer_config.json is not a JSON object");
  auto it = j.find("chat_template");
  if (it == j.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (!entry.is_object()) continue;
      auto name = entry.find("name");
      auto tmpl = entry.find("template");
      if (name != entry.end() && tmpl != entry.end() && name->is_string() && tmpl->is_string() &&
          name->get<std::string>() == "default")
        return tmpl->get<std::string>();
    }
    return std::string();
  }
  return InvalidArgument("tokenizer_config.json: chat_template must be a string or a list of named templates");
}

Result<ModelSource> OpenHfFolder(const std::string& dir) {
  auto checkpoint = OpenHfCheckpoint(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  auto owned = std::make_shared<HfCheckpoint>(std::move(checkpoint).value());

  ModelSource m;
  m.format = ModelFormat::kHfFolder;
  m.path = dir;
  m.config = owned->config;
  m.tensors = owned->tensors;
  for (const auto& t : m.tensors) m.stored_dtypes.emplace_back(DTypeName(t.dtype));
  m.storage = owned;

  LSERVE_ASSIGN_OR_RETURN(m.tokenizer_json, ReadOptionalModelText(dir, "tokenizer.json"));
  LSERVE_ASSIGN_OR_RETURN(m.tokenizer_config_json, ReadOptionalModelText(dir, "tokenizer_config.json"));
  LSERVE_ASSIGN_OR_RETURN(m.chat_template, ReadOptionalModelText(dir, "chat_template.jinja"));
  if (m.chat_template.empty()) {
    LSERVE_ASSIGN_OR_RETURN(m.chat_template, ChatTemplateFromTokenizerConfig(m.tokenizer_config_json));
  }
  return m;
}

Result<ModelSource> OpenGgufFile(const std::string& path) {
  auto file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  auto model = LoadGgufModel(*file);
  if (!model.ok()) return model.status().Annotate(path);
  auto owned = std::make_shared<GgufModel>(std::move(model).value());

  ModelSource m;
  m.format = ModelFormat::kGguf;
  m.path = path;
  m.config = owned->config;
  m.tensors = owned->tensors;
  m.stored_dtypes = owned->stored_dtypes;
  m.gguf = owned->file;
  m.storage = owned;
  if ((*file)->Find("tokenizer.chat_template") != nullptr) {
    LSERVE_ASSIGN_OR_RETURN(m.chat_template, (*file)->GetString("tokenizer.chat_template"));
  }
  return m;
}

bool IsRegularFile(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

int64_t ModelSource::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.num_elements();
  return n;
}

Result<ModelSource> OpenModel(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFound("model path '" + path + "' does not exist");
  if (S_ISDIR(st.st_mode)) return OpenHfFolder(path);
  if (!S_ISREG(st.st_mode)) return InvalidArgument("model path '" + path + "' is not a folder or a file");
  return OpenGgufFile(path);
}

Result<std::string> DefaultModelPath() {
  if (const char* env = std::getenv("LSERVE_MODEL"); env != nullptr && *env != '\0') return std::string(env);
  std::vector<std::string> candidates;
  char exe[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string dir(exe);
    dir = dir.substr(0, dir.rfind('/'));
    candidates.push_back(dir + "/../models/" + kDemoModelName);
    candidates.push_back(dir + "/../../models/" + kDemoModelName);
    candidates.push_back(dir + "/models/" + kDemoModelName);
  }
  candidates.push_back(std::string("models/") + kDemoModelName);
  for (const auto& c : candidates)
    if (IsRegularFile(c)) {
      char real[PATH_MAX];
      if (::realpath(c.c_str(), real) != nullptr) return std::string(real);
      return c;
    }
  return NotFound(std::string("no --model given and the demo model ") + kDemoModelName +
                  " is not in models/ (run tools/fetch_demo_model.sh, or set LSERVE_MODEL)");
}

}  // namespace lserve
