// Static sparsity: which KV heads are streaming heads (DESIGN.md §4 "Head roles").
//
// A DuoAttention gate file (`full_attention_heads.tsv`) holds one learned gate
// per (layer, KV head): near 1 the head needs the full context (retrieval),
// near 0 a sink + local window suffices (streaming). One *global* threshold
// over all layers and heads together turns gates into roles: at streaming
// ratio r, exactly k = round(r * L * H) heads become streaming, namely the k
// smallest under the order (clipped gate, layer, head). That order is total,
// so equal gates never make the split depend on chance (the reference adds
// unseeded noise instead; LSERVE.md §8).
//
// Worked example: gates [[0.9, 0.2], [0.2, 1.3]] (2 layers x 2 heads) at
// r = 0.5: k = 2; sorted (0.2, 0, 1), (0.2, 1, 0), (0.9, 0, 0), (1.0, 1, 1),
// so roles = [[1, 0], [0, 1]].
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_cache_config.h"

namespace lserve {

inline constexpr int kStreamingRole = 0;
inline constexpr int kRetrievalRole = 1;

// The file name DuoAttention writes inside a pattern folder.
inline constexpr const char* kAttentionPatternFileName = "full_attention_heads.tsv";

// Gate values as read, one per (layer, KV head); finite but not clipped.
struct AttentionPattern {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  std::vector<double> gates = {};  // [num_layers, num_kv_heads] row-major

  double gate(int64_t layer, int64_t head) const {
    return gates[static_cast<size_t>(layer * num_kv_heads + head)];
  }
};

// Parses the TSV text: one line per layer, one tab-separated decimal number
// per KV head, every line the same width; a final newline and CR-LF line ends
// are accepted, blank lines only at the end. `source` names the input in
// errors ("<source>: line 3, column 2: ...").
Result<AttentionPattern> ParseAttentionPattern(std::string_view text, const std::string& source);

// The TSV text of a pattern (one line per layer, tab-separated, each value
// with enough digits to parse back to the same double), the format
// ParseAttentionPattern reads.
std::string FormatAttentionPattern(const AttentionPattern& pattern);

// Reads `path`: the TSV file itself or a folder holding kAttentionPatternFileName.
Result<AttentionPattern> LoadAttentionPattern(const std::string& path);

// roles[layer][kv_head]: kRetrievalRole or kStreamingRole. The query heads of
// a GQA group share their KV head's role. A layer may have no head of a kind.
struct HeadRoles {
  std::vector<std::vector<int>> roles = {};

  int64_t num_layers() const { return static_cast<int64_t>(roles.size()); }
  int64_t num_kv_heads() const { return roles.empty() ? 0 : static_cast<int64_t>(roles[0].size()); }
  bool is_retrieval(int64_t layer, int64_t head) const {
    return roles[static_cast<size_t>(layer)][static_cast<size_t>(head)] == kRetrievalRole;
  }
  int64_t retrieval_count(int64_t layer) const;
  int64_t streaming_count(int64_t layer) const;
  int64_t total_retrieval() const;
  int64_t total_streaming() const;
};

// k = round(ratio * total_heads), halves rounded away from zero. ratio must
// already lie in [0, 1].
int64_t StreamingHeadCount(double streaming_ratio, int64_t total_heads);

// The split described at the top of this file. InvalidArgument when the
// pattern's shape is not [num_layers, num_kv_heads] (the model's) or the
// ratio is not in [0, 1].
Result<HeadRoles> AssignHeadRoles(const AttentionPattern& pattern, double streaming_ratio, int64_t num_layers,
                                  int64_t num_kv_heads);

// Every head a retrieval head: the dense engine.
HeadRoles AllRetrieval(int64_t num_layers, int64_t num_kv_heads);

// Puts each head in its pool (KvCacheConfig::SetHeadRoles); the config's
// num_layers and num_kv_heads must match the roles.
Status ApplyHeadRoles(const HeadRoles& roles, KvCacheConfig* config);

}  // namespace lserve
