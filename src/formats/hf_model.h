// A Hugging Face model folder: config.json (+ generation_config.json) and
// safetensors weights, one file or sharded by model.safetensors.index.json.
//
// Every file is opened through ResolveModelFile, so nothing outside the
// folder is ever opened: names must be plain file names, and symlinks must
// resolve inside the folder (or, for a Hugging Face hub cache snapshot
// <repo>/snapshots/<rev>/, inside <repo>/blobs/, where the hub keeps the files
// its snapshot links point to). RELIABILITY.md A5.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"
#include "formats/tensor_info.h"

namespace lserve {

struct HfCheckpoint {
  std::string dir;
  ModelConfig config;
  // Exactly the tensors of ExpectedTensorShapes(config), sorted by name, with
  // the expected shapes and dtype F32, F16 or BF16, viewed in place.
  std::vector<TensorInfo> tensors;
  // Tensors in the files that the model does not use, such as old
  // `model.layers.N.self_attn.rotary_emb.inv_freq` buffers or lm_head.weight
  // when the embeddings are tied. transformers loads such checkpoints and only
  // warns about unexpected keys; so are they accepted here, and listed.
  std::vector<std::string> unused_tensors;
  // The opened files; they keep the mappings behind `tensors` alive.
  std::vector<SafetensorsFile> files;

  // nullptr when the model has no tensor of that name.
  const TensorInfo* Find(std::string_view name) const;
};

// Reads and validates the folder's config and weights. Missing tensors are an
// error (transformers would initialise them randomly and warn), as are shapes
// that differ from what config.json implies and dtypes other than
// F32/F16/BF16. Only safetensors weights are read, never pickles.
Result<HfCheckpoint> OpenHfCheckpoint(const std::string& dir);

// config.json and, if present, generation_config.json of the folder.
Result<ModelConfig> ReadHfModelConfig(const std::string& dir);

// The real path of the file `name` of the model folder `dir`, after checking
// that `name` is a plain file name (no separator, not "." or "..") and that
// the file, symlinks resolved, lies inside the folder (see above).
// NotFound when there is no such file.
Result<std::string> ResolveModelFile(const std::string& dir, std::string_view name);

}  // namespace lserve
