// Head roles from DuoAttention gate files: parsing, the global quantile split
// with its deterministic tie-break, and the KV cache partition it yields.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <tuple>

#include <unistd.h>

#include "sparsity/head_roles.h"

namespace lserve {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> SharedPatternFiles() {
  std::vector<std::string> files;
  const fs::path root = fs::path(LSERVE_SOURCE_DIR) / ".." / "shared" / "data" / "attn_patterns";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const fs::path f = e.path() / kAttentionPatternFileName;
    if (fs::is_regular_file(f)) files.push_back(f.string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The split written as plainly as possible: sort (clipped gate, layer, head),
// the first k are streaming.
HeadRoles PlainSplit(const AttentionPattern& p, double ratio) {
  std::vector<std::tuple<double, int64_t, int64_t>> all;
  for (int64_t l = 0; l < p.num_layers; ++l)
    for (int64_t h = 0; h < p.num_kv_heads; ++h)
      all.emplace_back(std::min(1.0, std::max(0.0, p.gate(l, h))), l, h);
  std::sort(all.begin(), all.end());
  const auto k = static_cast<size_t>(std::llround(ratio * static_cast<double>(all.size())));
  HeadRoles roles = AllRetrieval(p.num_layers, p.num_kv_heads);
  for (size_t i = 0; i < k; ++i) roles.roles[std::get<1>(all[i])][std::get<2>(all[i])] = 0;
  return roles;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const fs::path dir = fs::path(testing::TempDir()) / ("lserve_sparsity_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string ToTsv(const AttentionPattern& p) {
  std::ostringstream s;
  s.precision(17);
  for (int64_t l = 0; l < p.num_layers; ++l) {
    for (int64_t h = 0; h < p.num_kv_heads; ++h) s << (h ? "\t" : "") << p.gate(l, h);
    s << "\n";
  }
  return s.str();
}

TEST(AttentionPattern, SharedFilesLoadAndSplitAtTheQuantile) {
  const auto files = SharedPatternFiles();
  ASSERT_GE(files.size(), 7u) << "expected the shared attention patterns beside the repository";
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    auto p = LoadAttentionPattern(file);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->num_layers, 32);
    EXPECT_TRUE(p->num_kv_heads == 8 || p->num_kv_heads == 32) << p->num_kv_heads;
    // The folder form reads the same file.
    auto from_dir = LoadAttentionPattern(fs::path(file).parent_path().string());
    ASSERT_TRUE(from_dir.ok()) << from_dir.status().ToString();
    EXPECT_EQ(from_dir->gates, p->gates);

    const int64_t total = p->num_layers * p->num_kv_heads;
    for (double ratio : {0.0, 0.25, 0.5, 1.0}) {
      SCOPED_TRACE(ratio);
      auto roles = AssignHeadRoles(*p, ratio, p->num_layers, p->num_kv_heads);
      ASSERT_TRUE(roles.ok()) << roles.status().ToString();
      EXPECT_EQ(roles->total_streaming(), std::llround(ratio * static_cast<double>(total)));
      EXPECT_EQ(roles->total_streaming() + roles->total_retrieval(), total);
      EXPECT_EQ(roles->roles, PlainSplit(*p, ratio).roles);
      // Every streaming gate is <= every retrieval gate (after clipping).
      double max_streaming = -1, min_retrieval = 2;
      for (int64_t l = 0; l < p->num_layers; ++l) {
        for (int64_t h = 0; h < p->num_kv_heads; ++h) {
          const double g = std::clamp(p->gate(l, h), 0.0, 1.0);
          if (roles->is_retrieval(l, h)) min_retrieval = std::min(min_retrieval, g);
          else max_streaming = std::max(max_streaming, g);
        }
      }
      EXPECT_LE(max_streaming, min_retrieval);
    }
  }
}

TEST(AttentionPattern, ParsesShapeValuesAndLineEnds) {
  auto p = ParseAttentionPattern("0.5\t-1e-3\t1.25\r\n2\t0\t7.5e-01\n\n", "t");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->num_layers, 2);
  EXPECT_EQ(p->num_kv_heads, 3);
  EXPECT_EQ(p->gates, (std::vector<double>{0.5, -1e-3, 1.25, 2, 0, 0.75}));
  auto no_final_newline = ParseAttentionPattern("1\t0", "t");
  ASSERT_TRUE(no_final_newline.ok());
  EXPECT_EQ(no_final_newline->num_kv_heads, 2);
}

TEST(AttentionPattern, CorruptInputsAreErrorsNamingTheLine) {
  struct Case {
    const char* text;
    const char* expect;  // a substring of the error
  };
  const Case cases[] = {
      {"", "empty"},
      {"\n\n", "empty"},
      {"0.1\t0.2\n0.3\n", "line 2 has 1 columns"},
      {"0.1\t0.2\n0.3\t0.4\t0.5\n", "line 2"},
      {"0.1\tnan\n", "line 1, column 2"},
      {"0.1\tinf\n", "not a finite number"},
      {"0.1\t0.2\n0.3\tabc\n", "line 2, column 2: 'abc' is not a number"},
      {"0.1\t\n", "column 2: empty field"},
      {"0.1 0.2\n", "not a number"},
      {"0.1\t0.2\n\n0.3\t0.4\n", "line 2: empty row"},
      {"1e999\n", "out of range"},
      {"0.5x\n", "not a number"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto p = ParseAttentionPattern(c.text, "pattern.tsv");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos) << p.status().message();
    EXPECT_NE(p.status().message().find("pattern.tsv"), std::string::npos) << p.status().message();
  }
}

TEST(AttentionPattern, SizeCapsAndMissingFiles) {
  std::string wide;
  for (int i = 0; i < 5000; ++i) wide += i ? "\t0" : "0";
  auto p = ParseAttentionPattern(wide, "wide");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("columns"), std::string::npos) << p.status().message();
  std::string tall;
  for (int i = 0; i < 5000; ++i) tall += "0\n";
  EXPECT_FALSE(ParseAttentionPattern(tall, "tall").ok());

  EXPECT_EQ(LoadAttentionPattern("/nonexistent/pattern.tsv").status().code(), StatusCode::kNotFound);
  const fs::path empty_dir = fs::path(WriteTemp("placeholder", "")).parent_path() / "no_pattern_here";
  fs::create_directories(empty_dir);
  auto missing = LoadAttentionPattern(empty_dir.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(kAttentionPatternFileName), std::string::npos);
  auto empty_file = LoadAttentionPattern(WriteTemp("empty.tsv", ""));
  ASSERT_FALSE(empty_file.ok());
  EXPECT_NE(empty_file.status().message().find("empty"), std::string::npos);
}

TEST(HeadRoles, WorkedExampleAndTieBreak) {
  // Clipping makes 1.3 equal 1.0 and -0.2 equal 0.0, creating ties.
  const AttentionPattern p{.num_layers = 2, .num_kv_heads = 2, .gates = {0.9, 0.2, 0.2, 1.3}};
  auto half = AssignHeadRoles(p, 0.5, 2, 2);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->roles, (std::vector<std::vector<int>>{{1, 0}, {0, 1}}));
  auto quarter = AssignHeadRoles(p, 0.25, 2, 2);  // the (0.2, 0, 1) head goes first
  ASSERT_TRUE(quarter.ok());
  EXPECT_EQ(quarter->roles, (std::vector<std::vector<int>>{{1, 0}, {1, 1}}));

  // All gates equal after clipping: (layer, head) order decides alone.
  const AttentionPattern flat{.num_layers = 2, .num_kv_heads = 3, .gates = {1.5, 1, 2, 1, 7, 1}};
  auto roles = AssignHeadRoles(flat, 0.5, 2, 3);
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ(roles->roles, (std::vector<std::vector<int>>{{0, 0, 0}, {1, 1, 1}}));
  // A layer with no retrieval head and one with no streaming head.
  EXPECT_EQ(roles->retrieval_count(0), 0);
  EXPECT_EQ(roles->streaming_count(1), 0);
}

TEST(HeadRoles, RandomPatternsMatchThePlainSortAndAreDeterministic) {
  std::mt19937_64 rng(std::random_device{}());
  for (int trial = 0; trial < 50; ++trial) {
    std::uniform_int_distribution<int64_t> dim(1, 12);
    AttentionPattern p{.num_layers = dim(rng), .num_kv_heads = dim(rng)};
    // Few distinct values (many ties), some outside [0, 1].
    std::uniform_int_distribution<int> level(-2, 12);
    for (int64_t i = 0; i < p.num_layers * p.num_kv_heads; ++i) p.gates.push_back(level(rng) / 10.0);
    const double ratio = std::uniform_real_distribution<double>(0, 1)(rng);
    SCOPED_TRACE(ToTsv(p) + " ratio " + std::to_string(ratio));
    auto a = AssignHeadRoles(p, ratio, p.num_layers, p.num_kv_heads);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->roles, PlainSplit(p, ratio).roles);
    EXPECT_EQ(a->total_streaming(), StreamingHeadCount(ratio, p.num_layers * p.num_kv_heads));
    // Same input through the file path: same roles.
    auto reread = LoadAttentionPattern(WriteTemp("random.tsv", ToTsv(p)));
    ASSERT_TRUE(reread.ok()) << reread.status().ToString();
    EXPECT_EQ(reread->gates, p.gates);
    auto b = AssignHeadRoles(*reread, ratio, p.num_layers, p.num_kv_heads);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(a->roles, b->roles);
  }
}

TEST(HeadRoles, ShapeMismatchAndBadRatioAreErrors) {
  const AttentionPattern p{.num_layers = 3, .num_kv_heads = 2, .gates = {0, 1, 0, 1, 0, 1}};
  for (auto [layers, heads] : {std::pair<int64_t, int64_t>{3, 4}, {2, 2}, {4, 2}, {0, 0}}) {
    auto r = AssignHeadRoles(p, 0.5, layers, heads);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("3 layers x 2 KV heads"), std::string::npos) << r.status().message();
  }
  for (double ratio : {-0.01, 1.01, std::nan("")}) {
    EXPECT_FALSE(AssignHeadRoles(p, ratio, 3, 2).ok()) << ratio;
  }
  const AttentionPattern short_gates{.num_layers = 3, .num_kv_heads = 2, .gates = {0, 1}};
  EXPECT_FALSE(AssignHeadRoles(short_gates, 0.5, 3, 2).ok());
}

TEST(HeadRoles, RoundsHalvesAwayFromZero) {
  EXPECT_EQ(StreamingHeadCount(0.5, 5), 3);
  EXPECT_EQ(StreamingHeadCount(0.25, 6), 2);  // 1.5
  EXPECT_EQ(StreamingHeadCount(0.0, 7), 0);
  EXPECT_EQ(StreamingHeadCount(1.0, 7), 7);
  EXPECT_EQ(StreamingHeadCount(0.33, 3), 1);
}

TEST(HeadRoles, ApplyPartitionsTheKvCacheHeads) {
  const AttentionPattern p{.num_layers = 3, .num_kv_heads = 2, .gates = {0.1, 0.9, 0.2, 0.3, 0.8, 0.7}};
  auto roles = AssignHeadRoles(p, 0.5, 3, 2);
  ASSERT_TRUE(roles.ok());
  EXPECT_EQ(roles->roles, (std::vector<std::vector<int>>{{0, 1}, {0, 0}, {1, 1}}));
  KvCacheConfig config{.num_layers = 3, .num_kv_heads = 2, .head_dim = 4};
  ASSERT_TRUE(ApplyHeadRoles(*roles, &config).ok());
  EXPECT_EQ(config.retrieval_heads, (std::vector<std::vector<int32_t>>{{1}, {}, {0, 1}}));
  EXPECT_EQ(config.streaming_heads, (std::vector<std::vector<int32_t>>{{0}, {0, 1}, {}}));

  KvCacheConfig dense{.num_layers = 3, .num_kv_heads = 2, .head_dim = 4};
  ASSERT_TRUE(ApplyHeadRoles(AllRetrieval(3, 2), &dense).ok());
  EXPECT_FALSE(dense.has_streaming_heads());
  EXPECT_EQ(dense.retrieval_heads, (std::vector<std::vector<int32_t>>{{0, 1}, {0, 1}, {0, 1}}));

  KvCacheConfig wrong{.num_layers = 2, .num_kv_heads = 2, .head_dim = 4};
  EXPECT_FALSE(ApplyHeadRoles(*roles, &wrong).ok());
  EXPECT_FALSE(ApplyHeadRoles(*roles, nullptr).ok());
}

}  // namespace
}  // namespace lserve
