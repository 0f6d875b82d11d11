#include "sparsity/head_roles.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <tuple>

#include "core/mapped_file.h"

namespace lserve {
namespace {

// Far above any released model (32 x 32 in the shipped files) and equal to
// the KV cache's own limits, so a parsed pattern never overflows a size there.
constexpr int64_t kMaxPatternLayers = int64_t{1} << 12;
constexpr int64_t kMaxPatternHeads = int64_t{1} << 12;
constexpr int64_t kMaxPatternValues = int64_t{1} << 20;
constexpr size_t kMaxPatternFileBytes = size_t{16} << 20;
constexpr size_t kMaxFieldChars = 64;

std::string Where(const std::string& source, size_t line, size_t column) {
  return source + ": line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
}

// Shows a field in an error message without flooding it.
std::string Quoted(std::string_view field) {
  std::string s(field.substr(0, 24));
  if (field.size() > 24) s += "...";
  return "'" + s + "'";
}

Result<double> ParseGate(std::string_view field, const std::string& source, size_t line, size_t column) {
  if (field.empty()) return InvalidArgument(Where(source, line, column) + "empty field");
  if (field.size() > kMaxFieldChars) {
    return InvalidArgument(Where(source, line, column) + "field of " + std::to_string(field.size()) +
                           " characters is not a number");
  }
  double value = 0;
  const char* begin = field.data();
  const char* end = field.data() + field.size();
  // from_chars takes no leading '+' and no whitespace; both stay errors.
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) {
    return InvalidArgument(Where(source, line, column) + Quoted(field) + " is out of range");
  }
  if (ec != std::errc() || ptr != end) {
    return InvalidArgument(Where(source, line, column) + Quoted(field) + " is not a number");
  }
  if (!std::isfinite(value)) {
    return InvalidArgument(Where(source, line, column) + Quoted(field) + " is not a finite number");
  }
  return value;
}

}  // namespace

Result<AttentionPattern> ParseAttentionPattern(std::string_view text, const std::string& source) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  // Blank lines are allowed only at the end (editors add them).
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return InvalidArgument(source + ": attention pattern is empty");
  if (static_cast<int64_t>(lines.size()) > kMaxPatternLayers) {
    return InvalidArgument(source + ": attention pattern has " + std::to_string(lines.size()) +
                           " rows, more than the limit of " + std::to_string(kMaxPatternLayers) + " layers");
  }

  AttentionPattern pattern;
  pattern.num_layers = static_cast<int64_t>(lines.size());
  for (size_t l = 0; l < lines.size(); ++l) {
    const size_t line_no = l + 1;
    if (lines[l].empty()) return InvalidArgument(source + ": line " + std::to_string(line_no) + ": empty row");
    int64_t columns = 0;
    size_t field_start = 0;
    while (true) {
      size_t tab = lines[l].find('\t', field_start);
      const size_t field_end = tab == std::string_view::npos ? lines[l].size() : tab;
      ++columns;
      if (columns > kMaxPatternHeads) {
        return InvalidArgument(source + ": line " + std::to_string(line_no) + ": more than " +
                               std::to_string(kMaxPatternHeads) + " columns");
      }
      if (l > 0 && columns > pattern.num_kv_heads) {
        return InvalidArgument(source + ": line " + std::to_string(line_no) + ": more than the " +
                               std::to_string(pattern.num_kv_heads) + " columns of line 1");
      }
      LSERVE_ASSIGN_OR_RETURN(const double gate,
                              ParseGate(lines[l].substr(field_start, field_end - field_start), source, line_no,
                                        static_cast<size_t>(columns)));
      pattern.gates.push_back(gate);
      if (tab == std::string_view::npos) break;
      field_start = tab + 1;
    }
    if (l == 0) {
      pattern.num_kv_heads = columns;
      if (pattern.num_layers * columns > kMaxPatternValues) {
        return InvalidArgument(source + ": attention pattern of " + std::to_string(pattern.num_layers) + " x " +
                               std::to_string(columns) + " values is above the limit of " +
                               std::to_string(kMaxPatternValues));
      }
    } else if (columns != pattern.num_kv_heads) {
      return InvalidArgument(source + ": line " + std::to_string(line_no) + " has " + std::to_string(columns) +
                             " columns, line 1 has " + std::to_string(pattern.num_kv_heads));
    }
  }
  return pattern;
}

Result<AttentionPattern> LoadAttentionPattern(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return NotFound("attention pattern " + path + " does not exist");
  if (fs::is_directory(st)) {
    file = (fs::path(path) / kAttentionPatternFileName).string();
    if (!fs::is_regular_file(file, ec)) {
      return NotFound("attention pattern folder " + path + " has no " + kAttentionPatternFileName);
    }
  }
  LSERVE_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(file, kMaxPatternFileBytes));
  return ParseAttentionPattern(text, file);
}

std::string FormatAttentionPattern(const AttentionPattern& pattern) {
  std::string text;
  for (int64_t l = 0; l < pattern.num_layers; ++l) {
    for (int64_t h = 0; h < pattern.num_kv_heads; ++h) {
      char buf[32];
      const auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), pattern.gate(l, h));
      if (h > 0) text += '\t';
      text.append(buf, ec == std::errc() ? ptr : buf);
    }
    text += '\n';
  }
  return text;
}

int64_t HeadRoles::retrieval_count(int64_t layer) const {
  const auto& row = roles[static_cast<size_t>(layer)];
  return std::count(row.begin(), row.end(), kRetrievalRole);
}

int64_t HeadRoles::streaming_count(int64_t layer) const {
  const auto& row = roles[static_cast<size_t>(layer)];
  return std::count(row.begin(), row.end(), kStreamingRole);
}

int64_t HeadRoles::total_retrieval() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_layers(); ++l) n += retrieval_count(l);
  return n;
}

int64_t HeadRoles::total_streaming() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_layers(); ++l) n += streaming_count(l);
  return n;
}

int64_t StreamingHeadCount(double streaming_ratio, int64_t total_heads) {
  const int64_t k = std::llround(streaming_ratio * static_cast<double>(total_heads));
  return std::clamp<int64_t>(k, 0, total_heads);
}

Result<HeadRoles> AssignHeadRoles(const AttentionPattern& pattern, double streaming_ratio, int64_t num_layers,
                                  int64_t num_kv_heads) {
  if (!(streaming_ratio >= 0.0 && streaming_ratio <= 1.0)) {  // also refuses NaN
    return InvalidArgument("streaming ratio " + std::to_string(streaming_ratio) + " is outside [0, 1]");
  }
  if (pattern.num_layers != num_layers || pattern.num_kv_heads != num_kv_heads) {
    return InvalidArgument("attention pattern has " + std::to_string(pattern.num_layers) + " layers x " +
                           std::to_string(pattern.num_kv_heads) + " KV heads, the model " +
                           std::to_string(num_layers) + " layers x " + std::to_string(num_kv_heads) +
                           " KV heads");
  }
  if (static_cast<int64_t>(pattern.gates.size()) != num_layers * num_kv_heads) {
    return InvalidArgument("attention pattern holds " + std::to_string(pattern.gates.size()) + " values, not " +
                           std::to_string(num_layers * num_kv_heads));
  }

  // (clipped gate, layer, head): a total order, so the split is the same on
  // every run and every machine.
  std::vector<std::tuple<double, int64_t, int64_t>> order;
  order.reserve(pattern.gates.size());
  for (int64_t l = 0; l < num_layers; ++l) {
    for (int64_t h = 0; h < num_kv_heads; ++h) {
      const double g = pattern.gate(l, h);
      if (!std::isfinite(g)) {
        return InvalidArgument("attention pattern value of layer " + std::to_string(l) + ", head " +
                               std::to_string(h) + " is not finite");
      }
      order.emplace_back(std::clamp(g, 0.0, 1.0), l, h);
    }
  }
  std::sort(order.begin(), order.end());

  HeadRoles out = AllRetrieval(num_layers, num_kv_heads);
  const int64_t k = StreamingHeadCount(streaming_ratio, num_layers * num_kv_heads);
  for (int64_t i = 0; i < k; ++i) {
    const auto& [gate, l, h] = order[static_cast<size_t>(i)];
    out.roles[static_cast<size_t>(l)][static_cast<size_t>(h)] = kStreamingRole;
  }
  return out;
}

HeadRoles AllRetrieval(int64_t num_layers, int64_t num_kv_heads) {
  HeadRoles out;
  out.roles.assign(static_cast<size_t>(std::max<int64_t>(num_layers, 0)),
                   std::vector<int>(static_cast<size_t>(std::max<int64_t>(num_kv_heads, 0)), kRetrievalRole));
  return out;
}

Status ApplyHeadRoles(const HeadRoles& roles, KvCacheConfig* config) {
  if (config == nullptr) return InvalidArgument("head roles: no KV cache config");
  return config->SetHeadRoles(roles.roles);
}

}  // namespace lserve
