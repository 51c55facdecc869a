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

// One choice's text and bookkeeping while its tokens arrive.
struct Choice {
  explicit Choice(const Tokenizer* t, const std::vector<std::string>& stop) : text(t, stop) {}
  StopAwareText text;
  std::string out;
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::vector<std::string> token_texts;
  bool finished = false;
  std::string finish_reason;
  std::string error;
};

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

void ApiServer::Routes() {
  auto send_error = [this](httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(Dump(ErrorBody(e)), "application/json");
    if (metrics_) metrics_->OnHttpError(e.status);
  };
  // Requests refused before any route: too large (413) or unauthenticated (401).
  http_->set_pre_routing_handler([this, send_error](const httplib::Request& req, httplib::Response& res) {
    if (req.path.rfind("/v1/", 0) != 0 || o_.api_key.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + o_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    ApiError e;
    e.status = 401;
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    e.message = "missing or wrong API key: send 'Authorization: Bearer <key>'";
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError e;
    e.status = 500;
    e.type = "internal_error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& x) {
      e.message = x.what();
    } catch (...) {
      e.message = "unknown error";
    }
    res.status = 500;
    res.set_content(Dump(ErrorBody(e)), "application/json");
    if (metrics_) metrics_->OnHttpError(500);
  });
  http_->set_error_handler([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.status = res.status;
    e.message = res.status == 413 ? "the request body is too large"
                : res.status == 404 ? "no such route"
                                    : absl::StrCat("HTTP error ", res.status);
    if (res.status == 404) e.code = "not_found";
    res.set_content(Dump(ErrorBody(e)), "application/json");
  });

  http_->Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
  http_->Get("/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ok = ready_ && !hub_->draining();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? R"({"status":"ready"})" : R"({"status":"not ready"})", "application/json");
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_ ? metrics_->Serialize() : "", "text/plain; version=0.0.4");
  });
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", o_.served_model_name}, {"object", "model"}, {"created", UnixNow()}, {"owned_by", "strata"}};
    if (engine_) m["max_model_len"] = engine_->spec().max_position_embeddings;
    res.set_content(Dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });

  auto generate = [this, send_error](const httplib::Request& req, httplib::Response& res, bool chat) {
    if (!ready_ || hub_->draining()) {
      ApiError e;
      e.status = 503;
      e.type = "service_unavailable";
      e.message = hub_->draining() ? "the server is shutting down" : "the model is still loading";
      return send_error(res, e);
    }
    ApiContext ctx{&engine_->spec(), tokenizer_, o_.served_model_name, chat_};
    auto parsed = ParseCompletionRequest(req.body, chat, ctx);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    auto call = std::make_shared<CompletionCall>(std::get<CompletionCall>(std::move(parsed)));
    std::vector<GenerationRequest> prompts;
    int64_t prompt_tokens = 0;
    for (const auto& ids : call->prompts) {
      GenerationRequest r = call->base;
      r.prompt = ids;
      if (absl::Status st = engine_->ValidateRequest(r); !st.ok()) {
        ApiError e;
        e.message = std::string(st.message());
        return send_error(res, e);
      }
      prompt_tokens += static_cast<int64_t>(ids.size());
      prompts.push_back(std::move(r));
    }
    auto stream = std::make_shared<RequestStream>();
    auto ids = hub_->Submit(std::move(prompts), stream);
    if (!ids.ok()) {
      ApiError e;
      e.status = 503;
      e.type = "service_unavailable";
      e.code = "overloaded";
      e.message = std::string(ids.status().message());
      return send_error(res, e);
    }
    metrics_->OnRequest(chat ? "chat" : "completions", prompt_tokens);
    const std::string id = NewId(chat ? "chatcmpl-" : "cmpl-");
    const int64_t created = UnixNow();
    auto choices = std::make_shared<std::vector<Choice>>();
    for (size_t i = 0; i < call->prompts.size(); ++i) choices->emplace_back(tokenizer_, call->stop);
    const std::vector<RequestId> request_ids = *ids;
    RequestHub* hub = hub_;
    const Tokenizer* tok = tokenizer_;
    const std::string model = o_.served_model_name;

    // Applies one event to its choice; returns the new text of that choice.
    auto apply = [call, choices, hub, request_ids, tok](const StreamEvent& ev) -> std::string {
      Choice& c = (*choices)[ev.index];
      if (c.finished) return "";
      std::string piece;
      if (ev.token >= 0) {
        c.tokens.push_back(ev.token);
        c.logprobs.push_back(ev.logprob);
        if (tok) {
          c.token_texts.push_back(tok->Decode({ev.token}));
          piece = c.text.Add(ev.token);
        }
        if (c.text.stopped()) {  // a stop string: this choice is done, the engine stops it
          c.finished = true;
          c.finish_reason = "stop";
          hub->Cancel({request_ids[ev.index]});
        }
      }
      if (ev.finished && !c.finished) {
        c.finished = true;
        c.finish_reason = ev.finish_reason == "abort" ? "stop" : ev.finish_reason;
        c.error = ev.error;
        if (tok) piece += c.text.Finish();
      }
      c.out += piece;
      return piece;
    };
    auto all_finished = [choices] {
      for (const Choice& c : *choices)
        if (!c.finished) return false;
      return true;
    };
    auto usage = [call, choices] {
      int64_t p = 0, g = 0;
      for (const auto& ids : call->prompts) p += static_cast<int64_t>(ids.size());
      for (const Choice& c : *choices) g += static_cast<int64_t>(c.tokens.size());
      return json{{"prompt_tokens", p}, {"completion_tokens", g}, {"total_tokens", p + g}};
    };
    // The logprobs object of `logprobs` for tokens whose texts are `texts` (empty texts when the
    // model has no tokenizer).
    auto logprobs_json = [call](const std::vector<float>& logprobs,
                                const std::vector<std::string>& texts) -> json {
      if (call->logprobs < 0) return nullptr;
      if (call->chat) {
        json content = json::array();
        for (size_t i = 0; i < logprobs.size(); ++i)
          content.push_back({{"token", i < texts.size() ? texts[i] : ""},
                             {"logprob", logprobs[i]},
                             {"top_logprobs", json::array()}});
        return {{"content", content}};
      }
      json offsets = json::array();
      size_t at = 0;
      for (const std::string& t : texts) {
        offsets.push_back(at);
        at += t.size();
      }
      return {{"tokens", texts}, {"token_logprobs", logprobs}, {"top_logprobs", nullptr},
              {"text_offset", offsets}};
    };

    if (!call->stream) {
      while (!all_finished())
        for (const StreamEvent& ev : stream->Wait(std::chrono::milliseconds(200))) apply(ev);
      json out_choices = json::array();
      for (size_t i = 0; i < choices->size(); ++i) {
        const Choice& c = (*choices)[i];
        if (!c.error.empty()) {
          ApiError e;
          e.message = c.error;
          return send_error(res, e);
        }
        json ch = {{"index", i},
                   {"finish_reason", c.finish_reason},
                   {"logprobs", logprobs_json(c.logprobs, c.token_texts)}};
        if (call->chat) {
          ch["message"] = {{"role", "assistant"}, {"content", c.out}};
        } else {
          ch["text"] = (call->echo ? call->prompt_texts[i] : "") + c.out;
        }
        if (call->return_token_ids) ch["token_ids"] = c.tokens;
        out_choices.push_back(ch);
      }
      json body = {{"id", id}, {"object", call->chat ? "chat.completion" : "text_completion"}, {"created", created},
                   {"model", model}, {"choices", out_choices}, {"usage", usage()}};
      res.set_content(Dump(body), "application/json");
      return;
    }

    // Streaming (server-sent events). The provider runs until every choice has finished; a
    // failed write means the client left: its requests are cancelled and their blocks freed.
    auto started = std::make_shared<bool>(false);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [=](size_t, httplib::DataSink& sink) {
          auto chunk = [&](const json& choice) {
            json c = {{"id", id}, {"object", call->chat ? "chat.completion.chunk" : "text_completion"},
                      {"created", created}, {"model", model}, {"choices", json::array({choice})}};
            const std::string s = "data: " + Dump(c) + "\n\n";
            return sink.write(s.data(), s.size());
          };
          if (!*started) {
            *started = true;
            for (size_t i = 0; i < choices->size(); ++i) {
              json first = call->chat ? json{{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                             {"logprobs", nullptr}, {"finish_reason", nullptr}}
                                      : json{{"index", i}, {"text", call->echo ? call->prompt_texts[i] : ""},
                                             {"logprobs", nullptr}, {"finish_reason", nullptr}};
              if (!chunk(first)) return false;
            }
          }
          for (const StreamEvent& ev : stream->Wait(std::chrono::milliseconds(500))) {
            Choice& c = (*choices)[ev.index];
            const bool was_finished = c.finished;
            const std::string piece = apply(ev);
            if (was_finished) continue;
            if (!c.error.empty()) {
              const std::string s = "data: " + Dump(ErrorBody(ApiError{400, c.error, "invalid_request_error", "", ""})) + "\n\n";
              if (!sink.write(s.data(), s.size())) return false;
              continue;
            }
            if (!piece.empty() || ev.token >= 0) {
              json lp = nullptr;
              if (call->logprobs >= 0 && ev.token >= 0) {
                lp = logprobs_json({ev.logprob}, {c.token_texts.empty() ? "" : c.token_texts.back()});
              }
              json ch = call->chat ? json{{"index", ev.index}, {"delta", {{"content", piece}}}, {"logprobs", lp},
                                          {"finish_reason", nullptr}}
                                   : json{{"index", ev.index}, {"text", piece}, {"logprobs", lp},
                                          {"finish_reason", nullptr}};
              if (call->return_token_ids && ev.token >= 0) ch["token_ids"] = {ev.token};
              if (!chunk(ch)) return false;
            }
            if (c.finished) {
              json fin = call->chat ? json{{"index", ev.index}, {"delta", json::object()}, {"logprobs", nullptr},
                                           {"finish_reason", c.finish_reason}}
                                    : json{{"index", ev.index}, {"text", ""}, {"logprobs", nullptr},
                                           {"finish_reason", c.finish_reason}};
              if (!chunk(fin)) return false;
            }
          }
          if (all_finished()) {
            if (call->include_usage) {
              json u = {{"id", id}, {"object", call->chat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created}, {"model", model}, {"choices", json::array()}, {"usage", usage()}};
              const std::string s = "data: " + Dump(u) + "\n\n";
              if (!sink.write(s.data(), s.size())) return false;
            }
            const std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
            sink.done();
          }
          return true;
        },
        [hub, request_ids](bool success) {
          if (!success) hub->Cancel(request_ids);  // the client disconnected mid-stream
        });
  };
  http_->Post("/v1/completions",
              [generate](const httplib::Request& req, httplib::Response& res) { generate(req, res, false); });
  http_->Post("/v1/chat/completions",
              [generate](const httplib::Request& req, httplib::Response& res) { generate(req, res, true); });
}

}  // namespace strata
