#include "runtime/serving/api_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace strata {
namespace {

using json = nlohmann::json;

int64_t UnixNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(prefix, UnixNow(), "-", counter.fetch_add(1));
}

// Debian's cpp-httplib (0.11) is compiled with a listen backlog of 5: a burst of clients
// overflows it and some connections are dropped. listen() again on the same socket raises the
// backlog; the library does not expose the socket, so find it: the listening socket on `port`.
void WidenListenBacklog(int port, int backlog) {
  for (int fd = 0; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, std::max(backlog, 128));
  }
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, RequestHub* hub)
    : o_(std::move(options)), hub_(hub), http_(std::make_unique<httplib::Server>()) {}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::SetReady(const Engine* engine, const Tokenizer* tokenizer, const ModelChatTemplate* chat,
                         ServerMetrics* metrics) {
  engine_ = engine;
  tokenizer_ = tokenizer;
  chat_ = chat;
  metrics_ = metrics;
  metrics_->SetReady(true);
  ready_ = true;
}

void ApiServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status ApiServer::Start() {
  const int threads = o_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(o_.max_body_bytes);
  http_->set_read_timeout(o_.io_timeout_seconds, 0);
  http_->set_write_timeout(o_.io_timeout_seconds, 0);
  http_->set_keep_alive_timeout(5);
  Routes();
  if (!http_->bind_to_port(o_.host.c_str(), o_.port))
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o_.host, ":", o_.port));
  bound_port_ = o_.port;
  WidenListenBacklog(o_.port, o_.http_threads);
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return absl::OkStatus();
}

void ApiServer::SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(Dump(ErrorBody(e)), "application/json");
  if (metrics_) metrics_->OnHttpError(e.status);
}

// Requests refused before any route (413, 401), exceptions (500), and bodies for the library's
// own errors (404 and kin), all in OpenAI's error shape.
void ApiServer::InstallErrorHandlers() {
  http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/v1/", 0) != 0 || o_.api_key.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + o_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, ApiError{401, "missing or wrong API key: send 'Authorization: Bearer <key>'", "authentication_error",
                            "", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError e{500, "unknown error", "internal_error", "", ""};
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& x) {
      e.message = x.what();
    } catch (...) {
    }
    SendError(res, e);
  });
  http_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    e.message = res.status == 413 ? "the request body is too large"
                : res.status == 404 ? "no such route"
                                    : absl::StrCat("HTTP error ", res.status);
    if (res.status == 404) e.code = "not_found";
    res.set_content(Dump(ErrorBody(e)), "application/json");
  });
}

void ApiServer::Routes() {
  InstallErrorHandlers();
  http_->Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
  http_->Get("/health/ready", [this](const httplib::Request&, httplib::Response& res) { ServeReady(res); });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_ ? metrics_->Serialize() : "", "text/plain; version=0.0.4");
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { ServeModels(res); });
  http_->Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { ServeGeneration(req, res, false); });
  http_->Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { ServeGeneration(req, res, true); });
}

void ApiServer::ServeReady(httplib::Response& res) {
  const bool ok = ready_ && !hub_->draining();
  res.status = ok ? 200 : 503;
  res.set_content(ok ? R"({"status":"ready"})" : R"({"status":"not ready"})", "application/json");
}

void ApiServer::ServeModels(httplib::Response& res) {
  json m = {{"id", o_.served_model_name}, {"object", "model"}, {"created", UnixNow()}, {"owned_by", "strata"}};
  if (engine_) m["max_model_len"] = engine_->spec().max_position_embeddings;
  res.set_content(Dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
}

std::variant<std::shared_ptr<CompletionSession>, ApiError> ApiServer::Admit(const std::string& body, bool chat) {
  if (!ready_ || hub_->draining())
    return ApiError{503, hub_->draining() ? "the server is shutting down" : "the model is still loading",
                    "service_unavailable", "", ""};
  ApiContext ctx{&engine_->spec(), tokenizer_, o_.served_model_name, chat_};
  auto parsed = ParseCompletionRequest(body, chat, ctx);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  CompletionCall call = std::get<CompletionCall>(std::move(parsed));
  std::vector<GenerationRequest> prompts;
  int64_t prompt_tokens = 0;
  for (const auto& ids : call.prompts) {
    GenerationRequest r = call.base;
    r.prompt = ids;
    if (absl::Status st = engine_->ValidateRequest(r); !st.ok()) return ApiError{400, std::string(st.message())};
    prompt_tokens += static_cast<int64_t>(ids.size());
    prompts.push_back(std::move(r));
  }
  auto stream = std::make_shared<RequestStream>();
  auto ids = hub_->Submit(std::move(prompts), stream);
  if (!ids.ok()) return ApiError{503, std::string(ids.status().message()), "service_unavailable", "", "overloaded"};
  metrics_->OnRequest(chat ? "chat" : "completions", prompt_tokens);
  ResponseHeader header{NewId(chat ? "chatcmpl-" : "cmpl-"), UnixNow(), o_.served_model_name};
  return std::make_shared<CompletionSession>(std::move(call), *std::move(ids), std::move(stream), hub_, tokenizer_,
                                             std::move(header));
}

void ApiServer::ServeGeneration(const httplib::Request& req, httplib::Response& res, bool chat) {
  auto admitted = Admit(req.body, chat);
  if (auto* e = std::get_if<ApiError>(&admitted)) return SendError(res, *e);
  std::shared_ptr<CompletionSession> session = std::get<std::shared_ptr<CompletionSession>>(std::move(admitted));
  if (!session->call().stream) {
    auto body = session->WaitForBody();
    if (auto* e = std::get_if<ApiError>(&body)) return SendError(res, *e);
    res.set_content(Dump(std::get<json>(body)), "application/json");
    return;
  }
  // Server-sent events. The provider runs until every choice has finished; a failed write means
  // the client left: its requests are cancelled and their blocks freed.
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [session](size_t, httplib::DataSink& sink) {
        bool done = false;
        const bool alive =
            session->StreamSome([&sink](const std::string& s) { return sink.write(s.data(), s.size()); }, &done);
        if (done) sink.done();
        return alive;
      },
      [session](bool success) {
        if (!success) session->Cancel();  // the client disconnected mid-stream
      });
}

}  // namespace strata
