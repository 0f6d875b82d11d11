// The trained tokenizers of tests/fixtures/tokenizers/<kind>/
// (tokenizer.json + tokenizer_config.json), for the unit tests of any folder.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

inline Tokenizer LoadFixtureTokenizer(const std::string& kind) {
  const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + kind;
  auto tokenizer_json = ReadTextFile(dir + "/tokenizer.json");
  auto config_json = ReadTextFile(dir + "/tokenizer_config.json");
  EXPECT_TRUE(tokenizer_json.ok() && config_json.ok()) << "missing fixture " << dir;
  auto tok = Tokenizer::FromHfJson(tokenizer_json.ok() ? *tokenizer_json : "", config_json.ok() ? *config_json : "");
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return std::move(tok).value();
}

}  // namespace lserve
