// File: runtime/serving/api_server.h
// Rank 0's HTTP front end: the OpenAI-compatible API, health probes and /metrics, on the
// event-driven HttpServer (one loop thread for every connection). Handlers never block: a
// generation request is parsed, validated and submitted to the RequestHub on the loop thread,
// and answered from there as the engine thread's events arrive (RequestStream::notify wakes the
// loop).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "runtime/serving/completion_session.h"
#include "runtime/serving/http_server.h"
#include "runtime/serving/openai_api.h"
#include "runtime/serving/request_hub.h"
#include "runtime/serving/server_metrics.h"
#include "runtime/serving/structured_output.h"

namespace strata {

struct ApiServerOptions {
  std::string host = "127.0.0.1";  // safe by default: --host 0.0.0.0 to listen everywhere
  int port = 8000;
  std::string api_key;             // non-empty: /v1/* needs "Authorization: Bearer KEY"
  std::string served_model_name;
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  int io_timeout_seconds = 30;      // connections silent this long are closed
  size_t max_stream_buffer_bytes = 4 << 20;  // a streaming reader this far behind is dropped
  int socket_send_buffer_bytes = 256 << 10;  // kernel send buffer per connection (0: autotuned)
  std::string tool_call_parser = "auto";     // hermes | llama3_json | auto (from the chat template)
};

class ApiServer {
 public:
  ApiServer(ApiServerOptions options, RequestHub* hub);
  ~ApiServer();
  // Binds and starts serving on a thread of its own (health answers while the model loads).
  absl::Status Start();
  // Once every rank has loaded its weights: generation and /health/ready open. Builds the
  // grammar cache over the tokenizer's vocabulary; a bad --tool-call-parser is an error.
  absl::Status SetReady(const Engine* engine, const Tokenizer* tokenizer, const ModelChatTemplate* chat, ServerMetrics* metrics);
  void Stop();
  int port() const { return http_.port(); }
  // Requests being answered (loop thread's count; for tests and metrics).
  int active_requests() const { return active_count_.load(); }

 private:
  // An accepted generation request and the exchange it answers.
  struct Active {
    std::shared_ptr<HttpExchange> exchange;
    std::shared_ptr<CompletionSession> session;
  };
  void Dispatch(const std::shared_ptr<HttpExchange>& x);
  bool Authorized(const HttpExchange& x);
  void SendError(HttpExchange& x, const ApiError& e);
  void ServeReady(HttpExchange& x);
  void ServeModels(HttpExchange& x);
  void ServeTokenizer(HttpExchange& x, bool encode);  // POST /tokenize, /detokenize
  void ServeGeneration(const std::shared_ptr<HttpExchange>& x, bool chat);
  // A parsed request whose grammar is being compiled (off the loop thread): it is submitted once
  // the compile ends, or answered 400 if it failed.
  struct Compiling {
    std::shared_ptr<HttpExchange> exchange;
    CompletionCall call;
    std::shared_future<GrammarCache::Result> grammar;
  };
  ApiContext Context() const;
  // Submits a parsed request (its grammar compiled) and starts answering it.
  void Start(const std::shared_ptr<HttpExchange>& x, CompletionCall call);
  std::variant<std::shared_ptr<CompletionSession>, ApiError> Submit(CompletionCall call);
  // Requests whose grammar finished compiling go on; those whose client left are dropped.
  void PollCompiling();
  // On the loop thread whenever the engine delivered events: advances every active request.
  void Poll();
  // Advances one; false once it is finished (answered, or its client gone).
  bool Advance(Active& a);

  ApiServerOptions o_;
  RequestHub* hub_;
  HttpServer http_;
  std::vector<Active> active_;  // loop thread only
  std::vector<Compiling> compiling_;  // loop thread only
  std::atomic<int> active_count_{0};
  std::atomic<bool> ready_{false};
  const Engine* engine_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
  const ModelChatTemplate* chat_ = nullptr;
  ServerMetrics* metrics_ = nullptr;
  ToolCallFormat tool_format_ = ToolCallFormat::kHermes;
  // Last: destroyed first, so its worker (which wakes the loop) stops before the HTTP server goes.
  std::unique_ptr<GrammarCache> grammars_;
};

}  // namespace strata
