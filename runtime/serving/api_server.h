// File: runtime/serving/api_server.h
// Rank 0's HTTP front end (cpp-httplib): the OpenAI-compatible API, health probes and
// /metrics. Handlers run on the server's thread pool and talk to the engine thread only through
// the RequestHub.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <variant>

#include "absl/status/status.h"
#include "runtime/serving/completion_session.h"
#include "runtime/serving/openai_api.h"
#include "runtime/serving/request_hub.h"
#include "runtime/serving/server_metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace strata {

struct ApiServerOptions {
  std::string host = "127.0.0.1";  // safe by default: --host 0.0.0.0 to listen everywhere
  int port = 8000;
  std::string api_key;             // non-empty: /v1/* needs "Authorization: Bearer KEY"
  std::string served_model_name;
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413
  int io_timeout_seconds = 30;      // slow or idle connections are closed after this
  int http_threads = 128;           // concurrent connections served
};

class ApiServer {
 public:
  ApiServer(ApiServerOptions options, RequestHub* hub);
  ~ApiServer();
  // Binds and starts serving on a thread of its own (health answers while the model loads).
  absl::Status Start();
  // Once every rank has loaded its weights: generation and /health/ready open.
  void SetReady(const Engine* engine, const Tokenizer* tokenizer, const ModelChatTemplate* chat, ServerMetrics* metrics);
  void Stop();
  int port() const { return bound_port_; }

 private:
  void Routes();
  void InstallErrorHandlers();
  void SendError(httplib::Response& res, const ApiError& e);
  void ServeReady(httplib::Response& res);
  void ServeModels(httplib::Response& res);
  void ServeGeneration(const httplib::Request& req, httplib::Response& res, bool chat);
  // Parses, validates and submits a generation request.
  std::variant<std::shared_ptr<CompletionSession>, ApiError> Admit(const std::string& body, bool chat);
  ApiServerOptions o_;
  RequestHub* hub_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int bound_port_ = 0;
  std::atomic<bool> ready_{false};
  const Engine* engine_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
  const ModelChatTemplate* chat_ = nullptr;
  ServerMetrics* metrics_ = nullptr;
};

}  // namespace strata
