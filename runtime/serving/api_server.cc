#include "runtime/serving/api_server.h"

#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "runtime/base/log.h"

namespace strata {
namespace {

using json = nlohmann::json;

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(prefix, UnixNow(), "-", counter.fetch_add(1));
}

HttpServerOptions HttpOptions(const ApiServerOptions& o) {
  HttpServerOptions h;
  h.host = o.host;
  h.port = o.port;
  h.max_body_bytes = o.max_body_bytes;
  h.timeout_seconds = o.io_timeout_seconds;
  h.max_stream_buffer_bytes = o.max_stream_buffer_bytes;
  h.socket_send_buffer_bytes = o.socket_send_buffer_bytes;
  return h;
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, RequestHub* hub)
    : o_(std::move(options)), hub_(hub), http_(HttpOptions(o_)) {
  http_.SetHandler([this](const std::shared_ptr<HttpExchange>& x) { Dispatch(x); });
  http_.SetWakeHandler([this] { Poll(); });
}

ApiServer::~ApiServer() { Stop(); }

absl::Status ApiServer::Start() { return http_.Start(); }

void ApiServer::Stop() {
  http_.Stop();
  grammars_.reset();  // after the loop thread, its only user, has stopped
}

absl::Status ApiServer::SetReady(const Engine* engine, const Tokenizer* tokenizer, const ModelChatTemplate* chat,
                                 ServerMetrics* metrics) {
  auto format = ResolveToolCallFormat(o_.tool_call_parser, chat ? chat->source : "");
  if (!format.ok()) return format.status();
  tool_format_ = *format;
  engine_ = engine;
  tokenizer_ = tokenizer;
  chat_ = chat;
  metrics_ = metrics;
  // Structured outputs match grammars against the model's tokens: built once, shared by every
  // request (without a tokenizer there are none, and such requests are refused).
  if (tokenizer_ != nullptr) {
    auto vocab = grammar::TokenVocabulary::FromTokenizer(*tokenizer_, engine_->spec().vocab_size,
                                                         engine_->spec().eos_token_ids);
    grammars_ = std::make_unique<GrammarCache>(std::move(vocab), 64, [this] { http_.Wake(); });
  }
  metrics_->SetReady(true);
  ready_ = true;
  return absl::OkStatus();
}

ApiContext ApiServer::Context() const {
  ApiContext ctx{&engine_->spec(), tokenizer_, o_.served_model_name, chat_};
  ctx.tool_format = tool_format_;
  return ctx;
}

void ApiServer::SendError(HttpExchange& x, const ApiError& e) {
  x.Reply(e.status, "application/json", Dump(ErrorBody(e)));
  if (metrics_) metrics_->OnHttpError(e.status);
}

bool ApiServer::Authorized(const HttpExchange& x) {
  if (x.path().rfind("/v1/", 0) != 0 || o_.api_key.empty()) return true;
  return x.header("Authorization") == "Bearer " + o_.api_key;
}

// Routes by method and path. Nothing a client sends can throw past here: a bug answers 500
// without the exception's text.
void ApiServer::Dispatch(const std::shared_ptr<HttpExchange>& x) {
  try {
    if (!Authorized(*x))
      return SendError(*x, ApiError{401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                                    "authentication_error", "", "invalid_api_key"});
    const std::string& m = x->method();
    const std::string& p = x->path();
    if (m == "GET" && p == "/health") return x->Reply(200, "application/json", "{}");
    if (m == "GET" && p == "/health/ready") return ServeReady(*x);
    if (m == "GET" && p == "/metrics")
      return x->Reply(200, "text/plain; version=0.0.4", metrics_ ? metrics_->Serialize() : "");
    if (m == "GET" && p == "/v1/models") return ServeModels(*x);
    if (m == "POST" && p == "/v1/completions") return ServeGeneration(x, false);
    if (m == "POST" && p == "/v1/chat/completions") return ServeGeneration(x, true);
    if (m == "POST" && (p == "/tokenize" || p == "/detokenize")) return ServeTokenizer(*x, p == "/tokenize");
    SendError(*x, ApiError{404, "no such route", "invalid_request_error", "", "not_found"});
  } catch (const std::exception&) {
    SendError(*x, ApiError{500, "internal error", "internal_error", "", ""});
  }
}

void ApiServer::ServeReady(HttpExchange& x) {
  const bool ok = ready_ && !hub_->draining();
  x.Reply(ok ? 200 : 503, "application/json", ok ? R"({"status":"ready"})" : R"({"status":"not ready"})");
}

void ApiServer::ServeTokenizer(HttpExchange& x, bool encode) {
  if (!ready_) return SendError(x, ApiError{503, "the model is still loading", "service_unavailable", "", ""});
  const ApiContext ctx = Context();
  auto body = encode ? TokenizeRequest(x.body(), ctx) : DetokenizeRequest(x.body(), ctx);
  if (auto* e = std::get_if<ApiError>(&body)) return SendError(x, *e);
  x.Reply(200, "application/json", Dump(std::get<json>(body)));
}

void ApiServer::ServeModels(HttpExchange& x) {
  const int64_t max_model_len = engine_ ? engine_->spec().max_position_embeddings : 0;
  x.Reply(200, "application/json", Dump(ModelsBody(o_.served_model_name, UnixNow(), max_model_len)));
}

std::variant<std::shared_ptr<CompletionSession>, ApiError> ApiServer::Submit(CompletionCall call) {
  if (hub_->draining()) return ApiError{503, "the server is shutting down", "service_unavailable", "", ""};
  const bool chat = call.chat;
  std::vector<GenerationRequest> prompts;
  int64_t prompt_tokens = 0;
  for (const auto& ids : call.prompts) {
    // best_of sequences of each prompt, each with its own seed (reproducible per request).
    for (int j = 0; j < call.best_of; ++j) {
      GenerationRequest r = call.base;
      r.prompt = ids;
      r.sampling.seed = call.base.sampling.seed + static_cast<uint64_t>(j);
      if (absl::Status st = engine_->ValidateRequest(r); !st.ok()) return EngineRefusal(st, chat);
      prompts.push_back(std::move(r));
    }
    prompt_tokens += static_cast<int64_t>(ids.size());
  }
  auto stream = std::make_shared<RequestStream>();
  stream->notify = [this] { http_.Wake(); };
  auto ids = hub_->Submit(std::move(prompts), stream);
  if (!ids.ok()) return ApiError{503, std::string(ids.status().message()), "service_unavailable", "", "overloaded"};
  metrics_->OnRequest(chat ? "chat" : "completions", prompt_tokens);
  ResponseHeader header{NewId(chat ? "chatcmpl-" : "cmpl-"), UnixNow(), o_.served_model_name};
  return std::make_shared<CompletionSession>(std::move(call), *std::move(ids), std::move(stream), hub_, tokenizer_,
                                             std::move(header));
}

// A compiled grammar goes to every sequence of the request; a failed compile is a 400 on the field
// the grammar came from.
static std::optional<ApiError> WithGrammar(const GrammarCache::Result& compiled, CompletionCall* call) {
  if (!compiled.ok())
    return ApiError{400, std::string(compiled.status().message()), "invalid_request_error", call->constraint.param, ""};
  call->base.grammar = *compiled;
  return std::nullopt;
}

void ApiServer::ServeGeneration(const std::shared_ptr<HttpExchange>& x, bool chat) {
  if (!ready_ || hub_->draining())
    return SendError(*x, ApiError{503, hub_->draining() ? "the server is shutting down" : "the model is still loading",
                                  "service_unavailable", "", ""});
  auto parsed = ParseCompletionRequest(x->body(), chat, Context());
  if (auto* e = std::get_if<ApiError>(&parsed)) return SendError(*x, *e);
  CompletionCall call = std::get<CompletionCall>(std::move(parsed));
  if (call.constraint.grammar) {
    if (!grammars_)
      return SendError(*x, ApiError{400, "structured outputs need the model's tokenizer", "invalid_request_error",
                                    call.constraint.param, ""});
    // Requests waiting on compiles are not in the hub's queue yet: bounded here, so that a flood of
    // distinct schemas cannot queue without limit.
    constexpr size_t kMaxCompiling = 256;
    if (compiling_.size() >= kMaxCompiling)
      return SendError(*x, ApiError{503, "too many requests are waiting for their grammar to compile",
                                    "service_unavailable", "", "overloaded"});
    auto compiled = grammars_->Get(*call.constraint.grammar);
    if (compiled.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      // Compiling takes up to half a second: the loop serves others meanwhile (PollCompiling).
      compiling_.push_back(Compiling{x, std::move(call), std::move(compiled)});
      return;
    }
    if (auto e = WithGrammar(compiled.get(), &call)) return SendError(*x, *e);
  }
  Start(x, std::move(call));
}

void ApiServer::PollCompiling() {
  std::vector<Compiling> waiting;
  for (Compiling& c : compiling_) {
    if (c.exchange->closed()) continue;  // the client left before its grammar was ready
    if (c.grammar.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      waiting.push_back(std::move(c));
      continue;
    }
    if (auto e = WithGrammar(c.grammar.get(), &c.call)) {
      SendError(*c.exchange, *e);
    } else {
      Start(c.exchange, std::move(c.call));
    }
  }
  compiling_ = std::move(waiting);
}

void ApiServer::Start(const std::shared_ptr<HttpExchange>& x, CompletionCall call) {
  auto admitted = Submit(std::move(call));
  if (auto* e = std::get_if<ApiError>(&admitted)) return SendError(*x, *e);
  Active a{x, std::get<std::shared_ptr<CompletionSession>>(std::move(admitted))};
  // A client that leaves stops its sequences at once; the exchange is finished on the next poll.
  std::weak_ptr<CompletionSession> weak = a.session;
  x->OnClose([weak] {
    if (auto s = weak.lock()) s->Cancel();
  });
  if (a.session->call().stream) x->StartStream("text/event-stream");
  if (Advance(a)) {
    active_.push_back(std::move(a));
    ++active_count_;
  }
}

// The per-request log line, once a request is over.
void LogRequest(const CompletionSession& s, const char* outcome) {
  LogFields({{"event", "request"},
             {"id", s.header().id},
             {"endpoint", s.call().chat ? "chat" : "completions"},
             {"stream", s.call().stream},
             {"prompt_tokens", s.prompt_tokens()},
             {"output_tokens", s.completion_tokens()},
             {"ttft_ms", s.ttft_seconds() < 0 ? json(nullptr) : json(std::round(s.ttft_seconds() * 1e4) / 10)},
             {"e2e_ms", std::round(s.age_seconds() * 1e4) / 10},
             {"finish_reason", s.finish_reason()},
             {"outcome", outcome}});
}

bool ApiServer::Advance(Active& a) {
  HttpExchange& x = *a.exchange;
  CompletionSession& s = *a.session;
  if (x.closed()) {  // the client left (its sequences were cancelled by OnClose)
    if (!s.done()) s.Cancel();
    x.EndStream();
    LogRequest(s, "client_closed");
    return false;
  }
  const std::string text = s.Drain();
  if (s.call().stream) {
    if (!text.empty() && !x.Write(text, http_.options().max_stream_buffer_bytes)) {
      s.Cancel();  // a reader this far behind is dropped; its sequences are freed
      x.Drop();
      LogRequest(s, "slow_reader_dropped");
      return false;
    }
    if (s.done()) x.EndStream();
  } else if (s.done()) {
    auto body = s.Result();
    if (auto* e = std::get_if<ApiError>(&body)) {
      SendError(x, *e);
    } else {
      x.Reply(200, "application/json", Dump(std::get<json>(body)));
    }
  }
  if (s.done()) LogRequest(s, "ok");
  return !s.done();
}

void ApiServer::Poll() {
  PollCompiling();
  size_t kept = 0;
  for (size_t i = 0; i < active_.size(); ++i)
    if (Advance(active_[i])) active_[kept++] = std::move(active_[i]);
  active_.resize(kept);
  active_count_ = static_cast<int>(kept);
}

}  // namespace strata
