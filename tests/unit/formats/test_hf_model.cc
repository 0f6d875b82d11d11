// Hugging Face model folders: config + safetensors (single or sharded),
// tensor shapes against the config, and the index checks of RELIABILITY.md A5
// (no path traversal, no symlink escape, no missing or doubly listed shard).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/hf_config.h"
#include "formats/hf_model.h"
#include "safetensors_test_util.h"

namespace lserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::RandomTensor;
using testing::StBuild;
using testing::StTempFolder;
using testing::StTensor;
using testing::StWriteFile;
using testing::StWriteText;

void ExpectError(const Status& s, std::initializer_list<std::string> needles) {
  ASSERT_FALSE(s.ok()) << "accepted, expected an error mentioning " << *needles.begin();
  for (const std::string& n : needles)
    EXPECT_NE(s.message().find(n), std::string::npos) << s.message() << "\n  lacks: " << n;
}

json TinyConfig(const char* model_type) {
  return json{{"model_type", model_type}, {"vocab_size", 64},        {"hidden_size", 32},
              {"intermediate_size", 48},  {"num_hidden_layers", 2}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"max_position_embeddings", 128}, {"bos_token_id", 1},
              {"eos_token_id", 2}};
}

// One tensor per ExpectedTensorShapes entry, random bytes of `dtype`.
std::vector<StTensor> ModelTensors(const json& config, const std::string& dtype, std::mt19937& rng) {
  Result<ModelConfig> cfg = ParseHfConfig(config.dump(), "");
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  std::vector<StTensor> out;
  for (const auto& [name, shape] : ExpectedTensorShapes(*cfg)) out.push_back(RandomTensor(rng, name, dtype, shape));
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

StTensor* FindTensor(std::vector<StTensor>& ts, const std::string& name) {
  for (StTensor& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

// Writes the shards and returns the index text: tensor i goes to shard i % n.
std::string WriteShards(const StTempFolder& dir, const std::vector<StTensor>& tensors, int n) {
  std::vector<std::vector<StTensor>> shards(static_cast<size_t>(n));
  json weight_map = json::object();
  size_t total = 0;
  auto shard_name = [n](int i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, n);
    return std::string(buf);
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    shards[i % static_cast<size_t>(n)].push_back(tensors[i]);
    weight_map[tensors[i].name] = shard_name(static_cast<int>(i % static_cast<size_t>(n)));
    total += tensors[i].bytes.size();
  }
  for (int i = 0; i < n; ++i) StWriteFile(dir / shard_name(i), StBuild(shards[static_cast<size_t>(i)]));
  return json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2);
}

struct Folder {
  StTempFolder dir{"hf_model"};
  std::mt19937 rng{std::random_device{}()};
  json config;
  std::vector<StTensor> tensors;

  explicit Folder(const char* model_type = "llama", const std::string& dtype = "BF16")
      : config(TinyConfig(model_type)) {
    tensors = ModelTensors(config, dtype, rng);
  }
  void WriteConfig() const { StWriteText(dir / "config.json", config.dump(2)); }
  void WriteSingle() const {
    WriteConfig();
    StWriteFile(dir / "model.safetensors", StBuild(tensors));
  }
  void WriteSharded(int n) const {
    WriteConfig();
    StWriteText(dir / "model.safetensors.index.json", WriteShards(dir, tensors, n));
  }
  Result<HfCheckpoint> Open() const { return OpenHfCheckpoint(dir.path()); }
};

// ---- valid folders ----------------------------------------------------------------

TEST(HfModel, SingleFileEachWeightDtype) {
  for (const char* dtype : {"F32", "F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    Folder f("llama", dtype);
    f.WriteSingle();
    StWriteText(f.dir / "generation_config.json", R"({"temperature": 0.6, "eos_token_id": [2, 3]})");
    Result<HfCheckpoint> ck = f.Open();
    ASSERT_TRUE(ck.ok()) << ck.status().ToString();
    EXPECT_EQ(ck->config.architecture, Architecture::kLlama);
    EXPECT_EQ(ck->config.generation.temperature, 0.6);
    EXPECT_EQ(ck->tensors.size(), f.tensors.size());
    EXPECT_TRUE(ck->unused_tensors.empty());
    for (const StTensor& want : f.tensors) {
      const TensorInfo* t = ck->Find(want.name);
      ASSERT_NE(t, nullptr) << want.name;
      EXPECT_EQ(DTypeName(t->dtype), dtype);
      EXPECT_EQ(t->shape, want.shape);
      ASSERT_EQ(t->data.size(), want.bytes.size());
      EXPECT_TRUE(std::equal(t->data.begin(), t->data.end(), want.bytes.begin())) << want.name;
    }
    EXPECT_EQ(ck->Find("model.layers.9.mlp.up_proj.weight"), nullptr);
    EXPECT_TRUE(std::is_sorted(ck->tensors.begin(), ck->tensors.end(),
                               [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; }));
  }
}

TEST(HfModel, ShardedMhaFolder) {
  Folder f("llama", "F16");
  f.config["num_key_value_heads"] = 4;
  f.tensors = ModelTensors(f.config, "F16", f.rng);
  f.WriteSharded(3);
  Result<HfCheckpoint> ck = f.Open();
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->files.size(), 3u);
  EXPECT_EQ(ck->tensors.size(), f.tensors.size());
  EXPECT_EQ(ck->Find("model.layers.1.self_attn.k_proj.weight")->shape, (std::vector<int64_t>{32, 32}));
  for (const StTensor& want : f.tensors) {
    const TensorInfo* t = ck->Find(want.name);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(std::equal(t->data.begin(), t->data.end(), want.bytes.begin())) << want.name;
  }
}

TEST(HfModel, QwenTiedWithExtrasTransformersIgnores) {
  Folder f("qwen2", "BF16");
  f.config["tie_word_embeddings"] = true;
  f.tensors = ModelTensors(f.config, "BF16", f.rng);
  // Biases on q/k/v only, no lm_head: then add what old checkpoints carry.
  EXPECT_NE(FindTensor(f.tensors, "model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(FindTensor(f.tensors, "model.layers.0.self_attn.o_proj.bias"), nullptr);
  EXPECT_EQ(FindTensor(f.tensors, "lm_head.weight"), nullptr);
  f.tensors.push_back(RandomTensor(f.rng, "lm_head.weight", "BF16", {64, 32}));
  f.tensors.push_back(RandomTensor(f.rng, "model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {4}));
  f.WriteSingle();
  Result<HfCheckpoint> ck = f.Open();
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->unused_tensors,
            (std::vector<std::string>{"lm_head.weight", "model.layers.0.self_attn.rotary_emb.inv_freq"}));
  EXPECT_EQ(ck->Find("lm_head.weight"), nullptr);
}

TEST(HfModel, MixedWeightDtypesAndSingleFileWinsOverIndex) {
  Folder f("mistral", "BF16");
  for (StTensor& t : f.tensors) {
    if (t.name.find("norm") != std::string::npos) t = RandomTensor(f.rng, t.name, "F32", t.shape);
  }
  f.WriteSingle();
  // transformers takes model.safetensors first; a stale index is not read.
  StWriteText(f.dir / "model.safetensors.index.json", "not json");
  Result<HfCheckpoint> ck = f.Open();
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->Find("model.norm.weight")->dtype, DType::kF32);
  EXPECT_EQ(ck->Find("lm_head.weight")->dtype, DType::kBF16);
}

TEST(HfModel, HubCacheSnapshotSymlinksAreFollowed) {
  // <repo>/snapshots/<rev>/config.json -> ../../blobs/<hash>, as the hub
  // cache lays files out.
  Folder f("llama", "BF16");
  const fs::path repo = f.dir.path();
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / "abc123");
  StWriteText((repo / "blobs" / "1111").string(), f.config.dump());
  StWriteFile((repo / "blobs" / "2222").string(), StBuild(f.tensors));
  fs::create_symlink("../../blobs/1111", repo / "snapshots" / "abc123" / "config.json");
  fs::create_symlink("../../blobs/2222", repo / "snapshots" / "abc123" / "model.safetensors");
  Result<HfCheckpoint> ck = OpenHfCheckpoint((repo / "snapshots" / "abc123").string());
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  EXPECT_EQ(ck->tensors.size(), f.tensors.size());
  // A link inside the folder to another file of the folder is fine too.
  Folder g;
  g.WriteConfig();
  StWriteFile(g.dir / "weights.bin", StBuild(g.tensors));
  fs::create_symlink("weights.bin", g.dir / "model.safetensors");
  EXPECT_TRUE(g.Open().ok());
}

TEST(HfModel, OpensTheTransformersFixtureFolders) {
  // Folders written by transformers (tools/fixtures); golden.json says what
  // transformers saw: the tensors, their dtypes, the parameter count.
  const fs::path root = fs::path(LSERVE_SOURCE_DIR) / "tests" / "fixtures" / "models";
  ASSERT_TRUE(fs::is_directory(root)) << root;
  int folders = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(root)) {
    if (!fs::exists(e.path() / "golden.json")) continue;
    ++folders;
    SCOPED_TRACE(e.path().string());
    const json golden = json::parse(*ReadTextFile((e.path() / "golden.json").string()));
    Result<HfCheckpoint> ck = OpenHfCheckpoint(e.path().string());
    ASSERT_TRUE(ck.ok()) << ck.status().ToString();
    EXPECT_EQ(ArchitectureName(ck->config.architecture), golden["architecture"].get<std::string>());
    EXPECT_EQ(ck->config.vocab_size, golden["vocab_size"].get<int64_t>());
    if (golden.contains("rope_type")) {
      const std::string want = golden["rope_type"].get<std::string>();
      EXPECT_EQ(RopeScalingName(ck->config.rope_scaling.type), want == "default" ? "none" : want);
    }
    int64_t parameters = 0;
    for (const TensorInfo& t : ck->tensors) parameters += t.num_elements();
    EXPECT_EQ(parameters, golden["num_parameters"].get<int64_t>());
    const json& tensors = golden["tensors"];
    EXPECT_EQ(ck->tensors.size() + ck->unused_tensors.size(), tensors.size());
    for (const TensorInfo& t : ck->tensors) {
      ASSERT_TRUE(tensors.contains(t.name)) << t.name;
      EXPECT_EQ(t.shape, tensors[t.name]["shape"].get<std::vector<int64_t>>()) << t.name;
      EXPECT_EQ(DTypeName(t.dtype), tensors[t.name]["dtype"].get<std::string>()) << t.name;
      EXPECT_EQ(fs::path(t.file).filename(), tensors[t.name]["file"].get<std::string>()) << t.name;
    }
  }
  EXPECT_GE(folders, 5);
}

// ---- A4: tensors against the config ---------------------------------------------------

TEST(HfModelA4, TensorShapeDifferentFromConfig) {
  Folder f;
  StTensor* k = FindTensor(f.tensors, "model.layers.1.self_attn.k_proj.weight");
  *k = RandomTensor(f.rng, k->name, "BF16", {32, 32});  // MHA shape, config says 2 KV heads
  f.WriteSingle();
  ExpectError(f.Open().status(),
              {"tensor 'model.layers.1.self_attn.k_proj.weight'", "[32, 32]", "config.json implies [16, 32]"});
}

TEST(HfModelA4, MissingTensorsAndBiasesTheConfigImplies) {
  Folder f;
  f.tensors.erase(std::remove_if(f.tensors.begin(), f.tensors.end(),
                                 [](const StTensor& t) { return t.name == "lm_head.weight"; }),
                  f.tensors.end());
  f.WriteSingle();
  ExpectError(f.Open().status(), {"lacks tensor lm_head.weight", "[64, 32]"});

  Folder g;
  g.WriteConfig();
  g.config["attention_bias"] = true;  // the weights have no biases
  g.WriteConfig();
  StWriteFile(g.dir / "model.safetensors", StBuild(g.tensors));
  ExpectError(g.Open().status(), {"lacks tensor model.layers.0.self_attn.k_proj.bias", "and 7 more"});
}

TEST(HfModelA4, WeightDtypeMustBeFloat) {
  Folder f;
  StTensor* n = FindTensor(f.tensors, "model.norm.weight");
  *n = RandomTensor(f.rng, n->name, "I32", n->shape);
  f.WriteSingle();
  ExpectError(f.Open().status(), {"tensor 'model.norm.weight'", "I32", "F32, F16 or BF16"});
}

TEST(HfModelA4, CorruptWeightsFileIsNamed) {
  Folder f;
  f.WriteConfig();
  StWriteFile(f.dir / "model.safetensors", testing::StRawFile("{}", {1, 2, 3}));
  ExpectError(f.Open().status(), {"model.safetensors", "trailing bytes"});
}

// ---- A5: the index and the folder ------------------------------------------------------

// Rewrites the index of a sharded folder.
void EditIndex(const Folder& f, const std::function<void(json&)>& edit) {
  Result<std::string> text = ReadTextFile(f.dir / "model.safetensors.index.json");
  json index = json::parse(*text);
  edit(index);
  StWriteText(f.dir / "model.safetensors.index.json", index.dump());
}

TEST(HfModelA5, ShardNamesMustBePlainFileNames) {
  StTempFolder outside("hf_outside");
  StWriteText(outside / "passwd", "root:x:0:0::/root:/bin/bash\n");
  const std::string relative_escape = "../" + fs::path(outside.path()).filename().string() + "/passwd";
  for (const std::string& bad : {std::string("../../etc/passwd"), std::string("/etc/passwd"), outside / "passwd",
                                 relative_escape, std::string("sub/model.safetensors"), std::string(".."),
                                 std::string("."), std::string("")}) {
    SCOPED_TRACE(bad);
    Folder f;
    f.WriteSharded(2);
    EditIndex(f, [&](json& index) { index["weight_map"]["model.norm.weight"] = bad; });
    ExpectError(f.Open().status(), {"not a plain file name"});
  }
}

// Watches a folder for any open of its files (inotify IN_OPEN / IN_ACCESS).
class OpenAudit {
 public:
  explicit OpenAudit(const std::string& dir) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ >= 0) inotify_add_watch(fd_, dir.c_str(), IN_OPEN | IN_ACCESS);
  }
  ~OpenAudit() {
    if (fd_ >= 0) close(fd_);
  }
  bool available() const { return fd_ >= 0; }
  int events() const {
    alignas(inotify_event) char buf[4096];
    int count = 0;
    for (;;) {
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) return count;
      for (ssize_t off = 0; off < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
        ++count;
        off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      }
    }
  }

 private:
  int fd_ = -1;
};

TEST(HfModelA5, SymlinksLeavingTheFolderAreRefusedUnopened) {
  StTempFolder outside("hf_outside");
  // A valid shard and a valid config outside: refused for where they are.
  Folder f;
  f.WriteSharded(2);
  const std::string shard = "model-00002-of-00002.safetensors";
  fs::rename(f.dir / shard, outside / shard);
  fs::create_symlink(outside / shard, f.dir / shard);
  {
    OpenAudit audit(outside.path());
    ExpectError(f.Open().status(), {shard, "outside the model folder"});
    if (audit.available()) {
      EXPECT_EQ(audit.events(), 0) << "a file outside the model folder was opened";
    }
  }

  Folder g;
  g.WriteSingle();
  fs::rename(g.dir / "config.json", outside / "config.json");
  fs::create_symlink(outside / "config.json", g.dir / "config.json");
  {
    OpenAudit audit(outside.path());
    ExpectError(g.Open().status(), {"config.json", "outside the model folder"});
    if (audit.available()) {
      EXPECT_EQ(audit.events(), 0);
    }
  }

  // Relative links and chains that end outside count the same.
  Folder h;
  h.WriteConfig();
  StWriteFile(outside / "w.safetensors", StBuild(h.tensors));
  fs::create_symlink("../" + fs::path(outside.path()).filename().string() + "/w.safetensors", h.dir / "hop");
  fs::create_symlink("hop", h.dir / "model.safetensors");
  ExpectError(h.Open().status(), {"model.safetensors", "outside the model folder"});

  // A snapshot-looking folder may reach ../../blobs only, not elsewhere.
  Folder s;
  const fs::path snap = fs::path(s.dir.path()) / "snapshots" / "rev";
  fs::create_directories(snap);
  StWriteText((snap / "config.json").string(), s.config.dump());
  fs::create_symlink(outside / "w.safetensors", snap / "model.safetensors");
  ExpectError(OpenHfCheckpoint(snap.string()).status(), {"outside the model folder"});
}

TEST(HfModelA5, MissingShard) {
  Folder f;
  f.WriteSharded(3);
  fs::remove(f.dir / "model-00002-of-00003.safetensors");
  Status s = f.Open().status();
  ExpectError(s, {"model-00002-of-00003.safetensors"});
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  // A dangling link is a missing shard too.
  fs::create_symlink(f.dir / "nowhere", f.dir / "model-00002-of-00003.safetensors");
  ExpectError(f.Open().status(), {"model-00002-of-00003.safetensors"});
}

TEST(HfModelA5, TensorListedTwiceInTheIndex) {
  Folder f;
  const std::string index = WriteShards(f.dir, f.tensors, 2);
  f.WriteConfig();
  // Insert a second "model.norm.weight" entry by text: a JSON library would merge it.
  std::string text = index;
  const size_t at = text.find("\"weight_map\": {") + std::string("\"weight_map\": {").size();
  text.insert(at, "\n    \"model.norm.weight\": \"model-00001-of-00002.safetensors\",");
  StWriteText(f.dir / "model.safetensors.index.json", text);
  ExpectError(f.Open().status(), {"duplicate key", "model.norm.weight"});
}

TEST(HfModelA5, IndexAndShardsMustAgree) {
  {
    SCOPED_TRACE("tensor in a shard, absent from the index");
    Folder f;
    f.WriteSharded(2);
    EditIndex(f, [](json& index) { index["weight_map"].erase("model.norm.weight"); });
    ExpectError(f.Open().status(), {"model.norm.weight", "does not list"});
  }
  {
    SCOPED_TRACE("index names the wrong shard");
    Folder f;
    f.WriteSharded(2);
    EditIndex(f, [](json& index) {
      std::string& s = index["weight_map"]["model.norm.weight"].get_ref<std::string&>();
      s = s == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors"
                                                  : "model-00001-of-00002.safetensors";
    });
    // Shard 1 is checked first: the index names a tensor it does not hold.
    ExpectError(f.Open().status(), {"model.norm.weight", "model.safetensors.index.json", "shard"});
  }
  {
    SCOPED_TRACE("index lists a tensor no shard holds");
    Folder f;
    f.WriteSharded(2);
    EditIndex(f, [](json& index) { index["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors"; });
    ExpectError(f.Open().status(), {"model.extra.weight", "does not hold it"});
  }
  {
    SCOPED_TRACE("the same tensor in two shards");
    Folder f;
    f.WriteSharded(2);
    // Rewrite shard 2 with a copy of a shard-1 tensor added.
    std::vector<StTensor> second;
    for (size_t i = 1; i < f.tensors.size(); i += 2) second.push_back(f.tensors[i]);
    second.push_back(f.tensors[0]);
    StWriteFile(f.dir / "model-00002-of-00002.safetensors", StBuild(second));
    ExpectError(f.Open().status(), {f.tensors[0].name, "model-00002-of-00002.safetensors"});
  }
  for (const char* bad_index : {R"({"weight_map": []})", R"({"weight_map": {}})", R"({"metadata": {}})",
                                R"({"weight_map": {"model.norm.weight": 3}})", "[]", "{"}) {
    SCOPED_TRACE(bad_index);
    Folder f;
    f.WriteSharded(2);
    StWriteText(f.dir / "model.safetensors.index.json", bad_index);
    ExpectError(f.Open().status(), {"model.safetensors.index.json"});
  }
}

TEST(HfModelA5, FolderWithoutUsableWeightsOrConfig) {
  Folder f;
  f.WriteConfig();
  Status s = f.Open().status();
  ExpectError(s, {"model.safetensors"});
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  StWriteText(f.dir / "pytorch_model.bin", "PK\x03\x04 pickle");
  s = f.Open().status();
  ExpectError(s, {"pytorch_model.bin", "safetensors only"});
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);

  Folder g;
  StWriteFile(g.dir / "model.safetensors", StBuild(g.tensors));
  ExpectError(g.Open().status(), {"config.json"});
  EXPECT_EQ(OpenHfCheckpoint(g.dir / "no_such_folder").status().code(), StatusCode::kNotFound);
  ExpectError(OpenHfCheckpoint(g.dir / "model.safetensors").status(), {"not a directory"});

  Folder h;
  h.WriteSingle();
  StWriteText(h.dir / "generation_config.json", "");
  ExpectError(h.Open().status(), {"generation_config.json"});
  h.config["hidden_size"] = 0;
  h.WriteConfig();
  fs::remove(h.dir / "generation_config.json");
  ExpectError(h.Open().status(), {"hidden_size"});
}

TEST(HfModel, ResolveModelFileRules) {
  StTempFolder dir("hf_resolve");
  StWriteText(dir / "tokenizer.json", "{}");
  Result<std::string> p = ResolveModelFile(dir.path(), "tokenizer.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(fs::path(*p).filename(), "tokenizer.json");
  EXPECT_EQ(ResolveModelFile(dir.path(), "absent.json").status().code(), StatusCode::kNotFound);
  for (const char* bad : {"", ".", "..", "a/b", "/etc/passwd", "../x"}) {
    EXPECT_EQ(ResolveModelFile(dir.path(), bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ResolveModelFile(dir.path(), std::string_view("a\0b", 3)).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lserve
