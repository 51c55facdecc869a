#include "runtime/serving/http_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/serving/request_deadlines.h"

namespace strata {
namespace {

const char* MethodName(evhttp_cmd_type t) {
  switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "OTHER";
  }
}

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

// A listening socket with a deep backlog (evhttp's own bind uses a short one). Accepted sockets
// inherit its send buffer size (Linux), which bounds the kernel memory of a stalled reader.
absl::StatusOr<int> Listen(const std::string& host, int port, int backlog, int send_buffer) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve --host ", host));
  int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
  const int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd >= 0 && send_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof(send_buffer));
  const bool ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, backlog) == 0;
  freeaddrinfo(res);
  if (!ok) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port, ": ", std::strerror(errno)));
  }
  return fd;
}

}  // namespace

void RaiseDescriptorLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

HttpExchange::HttpExchange(evhttp_request* req) : req_(req), conn_(evhttp_request_get_connection(req)) {
  method_ = MethodName(evhttp_request_get_command(req));
  const char* uri = evhttp_request_get_uri(req);
  path_ = uri ? uri : "";
  path_ = path_.substr(0, path_.find('?'));
  evbuffer* in = evhttp_request_get_input_buffer(req);
  body_.resize(evbuffer_get_length(in));
  if (!body_.empty()) evbuffer_copyout(in, body_.data(), body_.size());
  if (conn_) evhttp_connection_set_closecb(conn_, &HttpExchange::ClosedCallback, this);
}

HttpExchange::~HttpExchange() {
  // An exchange dropped unanswered still owes libevent its request.
  if (!finished_ && req_ != nullptr) {
    if (streaming_) {
      EndStream();
    } else {
      Reply(500, "application/json", R"({"error":{"message":"no response","type":"internal_error"}})");
    }
  }
}

void HttpExchange::ClosedCallback(evhttp_connection*, void* self) {
  auto* x = static_cast<HttpExchange*>(self);
  // The request stays ours (libevent detaches it from the dead connection): finishing it frees it.
  x->closed_ = true;
  x->conn_ = nullptr;
  if (x->on_close_) {
    auto f = std::move(x->on_close_);
    f();
  }
}

void HttpExchange::Finish() {
  finished_ = true;
  if (on_done_) {
    auto f = std::move(on_done_);
    f();
  }
}

void HttpExchange::Detach() {
  if (conn_) evhttp_connection_set_closecb(conn_, nullptr, nullptr);
  conn_ = nullptr;
}

std::string HttpExchange::header(const char* name) const {
  if (req_ == nullptr) return "";
  const char* v = evhttp_find_header(evhttp_request_get_input_headers(req_), name);
  return v ? v : "";
}

void HttpExchange::Reply(int status, const std::string& content_type, const std::string& body) {
  if (finished_ || req_ == nullptr) return;
  Finish();
  Detach();
  evhttp_add_header(evhttp_request_get_output_headers(req_), "Content-Type", content_type.c_str());
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(req_, status, Reason(status), out);  // frees req_ (also when the client left)
  evbuffer_free(out);
  req_ = nullptr;
}

void HttpExchange::StartStream(const std::string& content_type) {
  if (finished_ || req_ == nullptr || streaming_) return;
  streaming_ = true;
  evkeyvalq* h = evhttp_request_get_output_headers(req_);
  evhttp_add_header(h, "Content-Type", content_type.c_str());
  evhttp_add_header(h, "Cache-Control", "no-cache");
  evhttp_send_reply_start(req_, 200, "OK");
  // evhttp would close a stream that stays silent for its timeout (a long prefill before the first
  // token). A stream's readers are bounded by max_stream_buffer_bytes instead, and once it ends the
  // request deadline (RequestDeadlines) bounds the connection's idleness.
  if (conn_ != nullptr) evhttp_connection_set_timeout(conn_, -1);
}

bool HttpExchange::Write(const std::string& data, size_t limit) {
  if (closed() || finished_ || !streaming_) return false;
  if (conn_ != nullptr) {
    bufferevent* bev = evhttp_connection_get_bufferevent(conn_);
    if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > limit) return false;
  }
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, data.data(), data.size());
  evhttp_send_reply_chunk(req_, out);
  evbuffer_free(out);
  return true;
}

void HttpExchange::EndStream() {
  if (finished_ || req_ == nullptr) return;
  Finish();
  Detach();
  evhttp_send_reply_end(req_);  // frees req_
  req_ = nullptr;
}

void HttpExchange::Drop() {
  if (finished_ || req_ == nullptr) return;
  Finish();
  closed_ = true;
  evhttp_connection* conn = conn_;
  Detach();
  if (conn != nullptr) {
    evhttp_connection_free(conn);  // frees the connection and its requests, req_ among them
  } else {
    evhttp_request_free(req_);  // already detached from a closed connection
  }
  req_ = nullptr;
}

HttpServer::HttpServer(HttpServerOptions options) : o_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  static const int threads_ready = evthread_use_pthreads();  // cross-thread Wake and Stop
  if (threads_ready != 0) return absl::InternalError("libevent: no pthreads support");
  base_ = event_base_new();
  http_ = base_ ? evhttp_new(base_) : nullptr;
  if (http_ == nullptr) return absl::InternalError("libevent: cannot create the event loop");
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(o_.max_body_bytes));
  evhttp_set_max_headers_size(http_, static_cast<ev_ssize_t>(o_.max_header_bytes));
  evhttp_set_timeout(http_, o_.timeout_seconds);
  deadlines_ = std::make_unique<RequestDeadlines>(base_, http_, o_.timeout_seconds);
  RaiseDescriptorLimit();
  // Read the rest of a refused body before closing: the client sees the 413, not a reset.
  evhttp_set_flags(http_, EVHTTP_SERVER_LINGERING_CLOSE);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(http_, &HttpServer::OnRequest, this);
  auto fd = Listen(o_.host, o_.port, o_.backlog, o_.socket_send_buffer_bytes);
  if (!fd.ok()) return fd.status();
  if (evhttp_accept_socket_with_handle(http_, *fd) == nullptr) {
    close(*fd);
    return absl::InternalError("libevent: cannot accept on the listening socket");
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  wake_ = event_new(base_, -1, 0, &HttpServer::OnWakeEvent, this);
  running_ = true;
  loop_ = std::thread([this] { event_base_dispatch(base_); });
  return absl::OkStatus();
}

void HttpServer::OnRequest(evhttp_request* req, void* self) {
  auto* s = static_cast<HttpServer*>(self);
  auto x = std::make_shared<HttpExchange>(req);
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) {
    RequestDeadlines* d = s->deadlines_.get();
    const RequestDeadlines::Ticket t = d->RequestArrived(evhttp_connection_get_bufferevent(conn));
    x->OnDone([d, t] { d->ResponseDone(t); });
  }
  s->handler_(x);
}

void HttpServer::OnWakeEvent(int, short, void* self) {
  auto* s = static_cast<HttpServer*>(self);
  if (s->on_wake_) s->on_wake_();
}

void HttpServer::Wake() {
  if (running_ && wake_ != nullptr) event_active(wake_, 0, 0);
}

void HttpServer::Stop() {
  if (running_.exchange(false)) {
    event_base_loopbreak(base_);
    loop_.join();
  }
  if (wake_) event_free(wake_);
  if (http_) evhttp_free(http_);
  deadlines_.reset();  // after evhttp has freed its connections: drops the last references
  if (base_) event_base_free(base_);
  wake_ = nullptr;
  http_ = nullptr;
  base_ = nullptr;
}

}  // namespace strata
