#include "formats/hf_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "core/mapped_file.h"
#include "formats/hf_config.h"
#include "formats/message_text.h"

namespace lserve {
namespace {

using formats_detail::Quoted;
using formats_detail::ShapeText;

constexpr std::string_view kSingleWeights = "model.safetensors";
constexpr std::string_view kWeightIndex = "model.safetensors.index.json";

// realpath(3), or nullopt with errno set.
std::optional<std::string> RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr), &std::free);
  if (!resolved) return std::nullopt;
  return std::string(resolved.get());
}

bool IsInside(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/';
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::string> ReadModelText(const std::string& dir, std::string_view name) {
  LSERVE_ASSIGN_OR_RETURN(std::string path, ResolveModelFile(dir, name));
  return ReadTextFile(path);
}

bool IsWeightDtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// Opens the shards named by the index and checks that the index and the
// shards agree tensor for tensor.
Status OpenShards(const std::string& dir, std::vector<SafetensorsFile>* files) {
  LSERVE_ASSIGN_OR_RETURN(std::string text, ReadModelText(dir, kWeightIndex));
  // Duplicate keys are refused here: a tensor listed twice in weight_map.
  LSERVE_ASSIGN_OR_RETURN(nlohmann::json index, ParseJsonDocument(text, kWeightIndex));
  const std::string where(kWeightIndex);
  if (!index.is_object()) return InvalidArgument(where + ": the top level must be an object");
  auto wm = index.find("weight_map");
  if (wm == index.end() || !wm->is_object()) return InvalidArgument(where + ": 'weight_map' must be an object");
  if (wm->empty()) return InvalidArgument(where + ": 'weight_map' lists no tensor");

  std::map<std::string, std::string> shard_of;       // tensor -> shard
  std::map<std::string, std::set<std::string>> listed;  // shard -> tensors
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string())
      return InvalidArgument(where + ": the shard of tensor " + Quoted(tensor) + " must be a file name string");
    shard_of[tensor] = shard.get<std::string>();
    listed[shard.get<std::string>()].insert(tensor);
  }
  // Every shard name is checked before any shard is opened.
  std::map<std::string, std::string> path_of;  // shard -> real path
  for (const auto& [shard, tensors] : listed) {
    Result<std::string> path = ResolveModelFile(dir, shard);
    if (!path.ok()) return path.status().Annotate(where + " shard " + Quoted(shard));
    path_of[shard] = *path;
  }
  for (const auto& [shard, tensors] : listed) {
    LSERVE_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path_of[shard]));
    for (const TensorInfo& t : file.tensors()) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end())
        return InvalidArgument("shard " + Quoted(shard) + " holds tensor " + Quoted(t.name) + ", which " + where +
                               " does not list");
      if (it->second != shard)
        return InvalidArgument("tensor " + Quoted(t.name) + " is in shard " + Quoted(shard) + " but " + where +
                               " lists it in " + Quoted(it->second));
    }
    for (const std::string& tensor : tensors) {
      if (file.Find(tensor) == nullptr)
        return InvalidArgument(where + " lists tensor " + Quoted(tensor) + " in shard " + Quoted(shard) +
                               ", which does not hold it");
    }
    files->push_back(std::move(file));
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> ResolveModelFile(const std::string& dir, std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos)
    return InvalidArgument("file name " + Quoted(name) + " is not a plain file name inside the model folder");
  const std::optional<std::string> root = RealPath(dir);
  if (!root.has_value()) {
    const int e = errno;
    std::string msg = "model folder " + Quoted(dir) + ": " + std::strerror(e);
    return e == ENOENT ? NotFound(msg) : IoError(msg);
  }
  struct stat st {};
  if (::stat(root->c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return InvalidArgument("model folder " + Quoted(dir) + " is not a directory");

  const std::string path = *root + "/" + std::string(name);
  if (::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    std::string msg = Quoted(name) + " in model folder " + Quoted(dir) + ": " + std::strerror(e);
    return e == ENOENT ? NotFound(msg) : IoError(msg);
  }
  const std::optional<std::string> real = RealPath(path);
  if (!real.has_value()) {
    const int e = errno;
    std::string msg = Quoted(name) + " in model folder " + Quoted(dir) + " cannot be resolved: " + std::strerror(e);
    return e == ENOENT ? NotFound(msg + " (dangling symlink)") : IoError(msg);
  }
  if (IsInside(*real, *root)) return *real;
  // A hub cache snapshot links to ../../blobs/<hash>.
  const std::string snapshots = Parent(*root);
  if (BaseName(snapshots) == "snapshots") {
    const std::optional<std::string> blobs = RealPath(Parent(snapshots) + "/blobs");
    if (blobs.has_value() && IsInside(*real, *blobs)) return *real;
  }
  return InvalidArgument(Quoted(name) + " in model folder " + Quoted(dir) + " resolves to " + Quoted(*real) +
                         ", outside the model folder");
}

Result<ModelConfig> ReadHfModelConfig(const std::string& dir) {
  Result<std::string> config = ReadModelText(dir, "config.json");
  if (!config.ok()) return config.status();
  std::string generation;
  Result<std::string> g = ReadModelText(dir, "generation_config.json");
  if (g.ok()) {
    generation = std::move(*g);
    // An empty file is not "absent": it is invalid JSON.
    if (generation.empty()) return InvalidArgument("generation_config.json is empty");
  } else if (g.status().code() != StatusCode::kNotFound) {
    return g.status();
  }
  Result<ModelConfig> parsed = ParseHfConfig(*config, generation);
  if (!parsed.ok()) return parsed.status().Annotate(dir);
  return parsed;
}

Result<HfCheckpoint> OpenHfCheckpoint(const std::string& dir) {
  HfCheckpoint ckpt;
  ckpt.dir = dir;
  LSERVE_ASSIGN_OR_RETURN(ckpt.config, ReadHfModelConfig(dir));

  // transformers looks for model.safetensors first, then the index.
  Result<std::string> single = ResolveModelFile(dir, kSingleWeights);
  if (single.ok()) {
    LSERVE_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(*single));
    ckpt.files.push_back(std::move(file));
  } else if (single.status().code() != StatusCode::kNotFound) {
    return single.status();
  } else {
    Status sharded = OpenShards(dir, &ckpt.files);
    if (sharded.code() == StatusCode::kNotFound && !ResolveModelFile(dir, kWeightIndex).ok()) {
      if (ResolveModelFile(dir, "pytorch_model.bin").ok() || ResolveModelFile(dir, "pytorch_model.bin.index.json").ok())
        return Unimplemented("model folder " + Quoted(dir) +
                             " has only pytorch_model.bin weights; lserve reads safetensors only (pickle files are "
                             "never loaded)");
      return NotFound("model folder " + Quoted(dir) + " has neither " + std::string(kSingleWeights) + " nor " +
                      std::string(kWeightIndex));
    }
    LSERVE_RETURN_IF_ERROR(sharded);
  }

  // Every tensor of every file, by name; a name twice is a defect.
  std::map<std::string_view, const TensorInfo*> present;
  for (const SafetensorsFile& f : ckpt.files) {
    for (const TensorInfo& t : f.tensors()) {
      auto [it, inserted] = present.emplace(t.name, &t);
      if (!inserted)
        return InvalidArgument("tensor " + Quoted(t.name) + " appears in both " + Quoted(it->second->file) + " and " +
                               Quoted(t.file));
    }
  }

  const auto expected = ExpectedTensorShapes(ckpt.config);
  size_t missing = 0;
  std::string first_missing;
  for (const auto& [name, shape] : expected) {
    auto it = present.find(name);
    if (it == present.end()) {
      if (missing++ == 0) first_missing = name + " (shape " + ShapeText(shape) + ")";
      continue;
    }
    const TensorInfo& t = *it->second;
    if (t.shape != shape)
      return InvalidArgument("tensor " + Quoted(name) + " in " + Quoted(t.file) + " has shape " + ShapeText(t.shape) +
                             " but config.json implies " + ShapeText(shape));
    if (!IsWeightDtype(t.dtype))
      return InvalidArgument("tensor " + Quoted(name) + " in " + Quoted(t.file) + " has dtype " +
                             std::string(DTypeName(t.dtype)) + "; weights must be F32, F16 or BF16");
    ckpt.tensors.push_back(t);
  }
  if (missing > 0) {
    std::string msg = "model folder " + Quoted(dir) + " lacks tensor " + first_missing;
    if (missing > 1) msg += " and " + std::to_string(missing - 1) + " more";
    return InvalidArgument(msg + " that config.json implies");
  }
  for (const auto& [name, t] : present) {
    if (expected.find(std::string(name)) == expected.end()) ckpt.unused_tensors.emplace_back(name);
  }
  return ckpt;
}

const TensorInfo* HfCheckpoint::Find(std::string_view name) const {
  auto it = std::lower_bound(tensors.begin(), tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != tensors.end() && it->name == name ? &*it : nullptr;
}

}  // namespace lserve
