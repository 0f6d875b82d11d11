// Training-free streaming-head identification (`lserve calibrate`, DESIGN.md
// §4 "Head roles"): run the dense model over calibration text and measure, for
// every (layer, KV head), how much of each query's attention mass a Λ window
// (sink + local tokens) keeps (model/llama_model.h AttentionProbe). Heads that
// keep almost all of it lose little as streaming heads.
//
// The result is written as a DuoAttention pattern whose gate is the mass the
// window misses, 1 - mean kept share, in [0, 1]: near 1 the head needs the
// full context (retrieval), near 0 the window suffices (streaming), so the
// global-quantile split of sparsity/head_roles.h applies unchanged.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"
#include "formats/model_source.h"
#include "model/llama_model.h"
#include "tokenizer/tokenizer.h"
#include "sparsity/head_roles.h"

namespace lserve {

struct CalibrationOptions {
  int64_t sink = 128;
  int64_t local = 256;
  int64_t prefill_chunk = 512;
};

// The pattern of `model` (dense attention, KV room for ids.size() tokens)
// measured on `ids`. Only query rows past the window (position >= sink +
// local) count, so InvalidArgument when ids is not longer than that.
Result<AttentionPattern> CalibrateAttentionPattern(LlamaModel& model, std::span<const int32_t> ids,
                                                   const CalibrationOptions& options = {});

// A passkey-retrieval text of about `words` words, the kind of data
// DuoAttention's gates are trained on: filler sentences with one line "The
// pass key is N. Remember it. N is the pass key." at a depth drawn from
// `seed`, ending with the question "What is the pass key? The pass key is".
std::string SyntheticPasskeyText(int64_t words, uint64_t seed);

// Head roles at `streaming_ratio` without a pattern file: loads `source`
// densely on `backend`, calibrates on SyntheticPasskeyText(words, seed) and
// splits the measured pattern (sparsity/head_roles.h AssignHeadRoles).
Result<HeadRoles> CalibrateRolesOnPasskey(const ModelSource& source, const Tokenizer& tokenizer, Backend& backend,
                                          double streaming_ratio, const CalibrationOptions& options = {},
                                          int64_t words = 1200, uint64_t seed = 0);

}  // namespace lserve
