// generate and chat: text from the model, streamed.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "core/mapped_file.h"
#include "engine_session.h"
#include "runtime/generator.h"
#include "tokenizer/model_text.h"

namespace lserve::app {
namespace {

struct GenerateFlags {
  EngineFlags engine;
  SamplingFlags sampling;
  std::string prompt, ids, chat, prompt_file, ids_file;
  bool json = false;
};

nlohmann::json TimingsJson(const GenerationTimings& t, double load_ms) {
  return {{"load_ms", load_ms},
          {"prompt_tokens", t.prompt_tokens},
          {"generated_tokens", t.generated_tokens},
          {"prefill_ms", t.prefill_ms},
          {"decode_ms", t.decode_ms},
          {"prefill_tokens_per_s", t.prefill_tokens_per_s()},
          {"decode_tokens_per_s", t.decode_tokens_per_s()}};
}

// The prompt ids from exactly one of --prompt, --ids, --chat, --prompt-file, --ids-file.
Result<std::vector<int32_t>> PromptIds(const GenerateFlags& f, const EngineSession& s) {
  const int given = !f.prompt.empty() + !f.ids.empty() + !f.chat.empty() + !f.prompt_file.empty() +
                    !f.ids_file.empty();
  if (given != 1) return InvalidArgument("give exactly one of --prompt, --ids, --chat, --prompt-file, --ids-file");
  const auto vocab = static_cast<int32_t>(s.source.config.vocab_size);
  if (!f.ids.empty()) return ParseIds(f.ids, vocab);
  if (!f.prompt.empty()) return s.tokenizer->Encode(f.prompt, /*add_special_tokens=*/true);
  if (!f.ids_file.empty() || !f.prompt_file.empty()) {
    LSERVE_ASSIGN_OR_RETURN(std::string text, ReadTextFile(f.ids_file.empty() ? f.prompt_file : f.ids_file));
    if (!f.ids_file.empty()) return ParseIds(text, vocab);
    return s.tokenizer->Encode(text, /*add_special_tokens=*/true);
  }
  LSERVE_ASSIGN_OR_RETURN(ChatTemplate tmpl, LoadChatTemplate(s.source));
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", f.chat}});
  LSERVE_ASSIGN_OR_RETURN(RenderedChat rendered, RenderChat(tmpl, *s.tokenizer, messages, true));
  return rendered.ids;
}

int RunGenerate(const GenerateFlags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  auto session = OpenEngine(f.engine);
  if (!session.ok()) return Fail(session.status());
  EngineSession& s = **session;
  auto ids = PromptIds(f, s);
  if (!ids.ok()) return Fail(ids.status());
  auto params = MakeSamplingParams(f.sampling, s.source.config);
  if (!params.ok()) return Fail(params.status());
  // KV room for exactly this request.
  Status loaded = LoadModel(f.engine, static_cast<int64_t>(ids->size()) + params->max_tokens, &s);
  if (!loaded.ok()) return Fail(loaded);
  auto generator = Generator::Create(*s.model, *s.tokenizer, {.prefill_chunk = f.engine.prefill_chunk});
  if (!generator.ok()) return Fail(generator.status());
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  std::function<void(std::string_view)> stream;
  if (!f.json)
    stream = [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
  auto result = generator->Generate(*ids, *params, stream);
  if (!result.ok()) return Fail(result.status());
  if (!f.json) {
    std::fputc('\n', stdout);
    return 0;
  }
  const LlamaModel& m = *s.model;
  const SparsityStats& sp = result->sparsity;
  return PrintJson({{"ids", result->ids},
                    {"text", result->text},
                    {"finish_reason", FinishReasonName(result->finish_reason)},
                    {"timings", TimingsJson(result->timings, load_ms)},
                    {"attention", AttentionModeName(m.attention().mode)},
                    {"kv",
                     {{"retrieval_bytes", result->kv_pages.retrieval * m.kv_bytes_per_page(KvPool::kRetrieval)},
                      {"streaming_bytes", result->kv_pages.streaming * m.kv_bytes_per_page(KvPool::kStreaming)},
                      {"retrieval_pages", result->kv_pages.retrieval},
                      {"streaming_pages", result->kv_pages.streaming}}},
                    {"sparsity", SparsityJson(sp)}});
}

struct ChatFlags {
  EngineFlags engine;
  SamplingFlags sampling;
  std::string system;
  int64_t context = 8192;
};

int RunChat(const ChatFlags& f) {
  auto session = OpenEngine(f.engine);
  if (!session.ok()) return Fail(session.status());
  EngineSession& s = **session;
  Status loaded = LoadModel(f.engine, f.context, &s);
  if (!loaded.ok()) return Fail(loaded);
  auto tmpl = LoadChatTemplate(s.source);
  if (!tmpl.ok()) return Fail(tmpl.status());
  auto params = MakeSamplingParams(f.sampling, s.source.config);
  if (!params.ok()) return Fail(params.status());
  auto generator = Generator::Create(*s.model, *s.tokenizer, {.prefill_chunk = f.engine.prefill_chunk});
  if (!generator.ok()) return Fail(generator.status());

  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!f.system.empty()) messages.push_back({{"role", "system"}, {"content", f.system}});
  std::fprintf(stderr, "lserve chat: type a message and press Enter; /reset clears the conversation, /exit quits.\n");
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.erase(messages.begin() + (f.system.empty() ? 0 : 1), messages.end());
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto rendered = RenderChat(*tmpl, *s.tokenizer, messages, true);
    if (!rendered.ok()) {
      messages.erase(messages.end() - 1);
      Fail(rendered.status());
      continue;
    }
    auto result = generator->Generate(rendered->ids, *params, [](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    });
    std::fputc('\n', stdout);
    if (!result.ok()) {
      messages.erase(messages.end() - 1);
      Fail(result.status());
      continue;
    }
    messages.push_back({{"role", "assistant"}, {"content", result->text}});
  }
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

Command AddGenerate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "generate text from a prompt (streamed; --json for ids and timings)");
  auto f = std::make_shared<GenerateFlags>();
  AddEngineOptions(*cmd, &f->engine);
  AddSamplingOptions(*cmd, &f->sampling);
  cmd->add_option("--prompt", f->prompt, "prompt text (special tokens added as HF does)");
  cmd->add_option("--ids", f->ids, "prompt as comma-separated token ids");
  cmd->add_option("--chat", f->chat, "one user message, wrapped in the model's chat template");
  cmd->add_option("--prompt-file", f->prompt_file, "prompt text read from a file");
  cmd->add_option("--ids-file", f->ids_file, "prompt token ids read from a file (comma or whitespace separated)");
  cmd->add_flag("--json", f->json, "print {ids, text, finish_reason, timings} instead of streaming");
  return {cmd, [f] { return RunGenerate(*f); }};
}

Command AddChat(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat", "interactive chat in the terminal");
  auto f = std::make_shared<ChatFlags>();
  AddEngineOptions(*cmd, &f->engine);
  AddSamplingOptions(*cmd, &f->sampling);
  cmd->add_option("--system", f->system, "system prompt");
  cmd->add_option("--context", f->context, "KV cache size in tokens")->check(CLI::Range(int64_t{64}, int64_t{1} << 24));
  return {cmd, [f] { return RunChat(*f); }};
}

}  // namespace lserve::app
