// OpenModel: one entry point for every model a user brings, a Hugging Face
// folder or a .gguf file. It validates the config and the tensor directory
// (nothing is copied: tensors stay memory-mapped) and gathers the text files
// the tokenizer and the chat template need.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "formats/model_config.h"
#include "formats/tensor_info.h"

namespace lserve {

class GgufFile;

enum class ModelFormat { kHfFolder, kGguf };

struct ModelSource {
  ModelFormat format = ModelFormat::kHfFolder;
  std::string path;  // the folder or the .gguf file
  ModelConfig config;
  std::vector<TensorInfo> tensors;  // HF names, torch order
  // Per tensor, the storage type name as the file says it ("BF16", "Q4_1").
  std::vector<std::string> stored_dtypes;

  // HF folder: file texts ("" when the file is absent).
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  // The chat template the model ships: chat_template.jinja, else
  // tokenizer_config.json's "chat_template" (a string, or the entry named
  // "default" of a list), else GGUF tokenizer.chat_template; "" if none.
  std::string chat_template;

  std::shared_ptr<const GgufFile> gguf;  // set for GGUF models
  std::shared_ptr<const void> storage;   // keeps maps and rewritten buffers alive

  int64_t parameter_count() const;
};

Result<ModelSource> OpenModel(const std::string& path);

// The demo model when no --model is given: $LSERVE_MODEL if set, else
// models/SmolLM2-135M-Instruct.Q4_1.gguf next to the source tree of the
// running binary (<exe>/../models, <exe>/../../models) or under the current
// directory.
Result<std::string> DefaultModelPath();

}  // namespace lserve
