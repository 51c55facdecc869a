// File: runtime/serving/http_server.h
// An event-driven HTTP/1.1 server on libevent's evhttp (the library Triton's HTTP endpoint
// uses; DESIGN.md says why): one thread runs the event loop and holds every connection, idle,
// half-sent or streaming, so a slow or silent client costs a file descriptor and a few KiB,
// never a thread. Keep-alive and chunked replies are evhttp's; a connection that stalls mid
// request is closed after the inactivity timeout; a streaming reader that falls behind by more
// than `max_stream_buffer_bytes` is dropped; one that trickles a request is closed at its
// deadline (runtime/serving/request_deadlines.h). Handlers run on the loop thread and must not block:
// work that completes later (generation) is finished from OnWake, which another thread triggers
// with Wake().
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_request;
struct evhttp_connection;

namespace strata {

// A process holding a descriptor per connection (the server, the load generator) takes the hard
// limit rather than the usual soft 1024.
void RaiseDescriptorLimit();

class RequestDeadlines;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  size_t max_body_bytes = 1 << 20;     // larger bodies get 413
  size_t max_header_bytes = 16 << 10;  // larger header blocks get 400
  // A connection silent this long, reading or writing, is closed; and each request must arrive
  // whole within it, from the accept or the end of the previous response (a client trickling
  // bytes cannot hold a half-sent request longer).
  int timeout_seconds = 30;
  size_t max_stream_buffer_bytes = 4 << 20;  // unsent bytes a streaming reader may fall behind by
  // The kernel's send buffer per connection (SO_SNDBUF; 0 leaves the kernel's autotuning, which
  // lets one stalled reader hold megabytes of kernel memory before the bound above sees any).
  int socket_send_buffer_bytes = 256 << 10;
  int backlog = 4096;                        // pending connections the kernel queues
};

// One request being answered. Loop thread only.
class HttpExchange {
 public:
  explicit HttpExchange(evhttp_request* req);
  ~HttpExchange();
  const std::string& method() const { return method_; }
  const std::string& path() const { return path_; }
  const std::string& body() const { return body_; }
  std::string header(const char* name) const;
  // The client went away (or was dropped): nothing more reaches it.
  bool closed() const { return req_ == nullptr || closed_; }
  // A whole response, once.
  void Reply(int status, const std::string& content_type, const std::string& body);
  // A chunked response: the head, then Write as often as needed, then End.
  void StartStream(const std::string& content_type);
  // False when the client's unsent bytes already exceed `limit` (a slow reader).
  bool Write(const std::string& data, size_t limit);
  void EndStream();
  // Closes the connection (a reader too slow to keep).
  void Drop();
  // Called once if the connection closes before the response is complete.
  void OnClose(std::function<void()> f) { on_close_ = std::move(f); }
  // Called once when the response is complete (sent, ended or dropped); the server's.
  void OnDone(std::function<void()> f) { on_done_ = std::move(f); }

 private:
  static void ClosedCallback(evhttp_connection* conn, void* self);
  void Detach();  // no more close callbacks for this exchange
  void Finish();  // the response is complete: once
  evhttp_request* req_;
  evhttp_connection* conn_;
  std::string method_, path_, body_;
  bool closed_ = false, streaming_ = false, finished_ = false;
  std::function<void()> on_close_, on_done_;
};

class HttpServer {
 public:
  using Handler = std::function<void(const std::shared_ptr<HttpExchange>&)>;
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  // Every request goes to `handler` (routing is the caller's), on the loop thread.
  void SetHandler(Handler handler) { handler_ = std::move(handler); }
  // Runs on the loop thread after Wake().
  void SetWakeHandler(std::function<void()> f) { on_wake_ = std::move(f); }
  absl::Status Start();  // binds, then runs the loop on a thread of its own
  void Wake();           // any thread
  void Stop();           // any thread but the loop's; idempotent
  int port() const { return port_; }
  const HttpServerOptions& options() const { return o_; }

 private:
  static void OnRequest(evhttp_request* req, void* self);
  static void OnWakeEvent(int, short, void* self);
  HttpServerOptions o_;
  std::unique_ptr<RequestDeadlines> deadlines_;
  Handler handler_;
  std::function<void()> on_wake_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* wake_ = nullptr;
  std::thread loop_;
  int port_ = 0;
  std::atomic<bool> running_{false};
};

}  // namespace strata
