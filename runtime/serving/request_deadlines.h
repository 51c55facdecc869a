// File: runtime/serving/request_deadlines.h
// Per-connection request deadlines for the evhttp server. evhttp's own timeout is an inactivity
// timer that every received byte resets, so a client trickling one byte at a time could hold a
// half-sent request (and its descriptor) forever. Here each connection must deliver each whole
// request, header and body, within `seconds`: counted from the accept, then from the end of its
// previous response (which also bounds keep-alive idleness by the same figure). A connection
// past its deadline is shut down, which evhttp sees as the client's close.
//
// libevent 2.1 has no hook for "a request began" or "a connection was freed", so connections
// are tracked through their bufferevents: created here (evhttp_set_bevcb) with one extra
// reference, so the pointer stays valid until a sweep sees that evhttp has freed it (all of its
// callbacks cleared, which bufferevent_free does) and drops the reference. Loop thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

struct bufferevent;
struct event;
struct event_base;
struct evhttp;

namespace strata {

class RequestDeadlines {
 public:
  // A connection's identity across the reuse of bufferevent addresses.
  struct Ticket {
    bufferevent* bev = nullptr;
    uint64_t id = 0;
  };

  RequestDeadlines(event_base* base, evhttp* http, double seconds);
  ~RequestDeadlines();
  RequestDeadlines(const RequestDeadlines&) = delete;
  RequestDeadlines& operator=(const RequestDeadlines&) = delete;

  // A whole request arrived on `bev`: no deadline while it is answered.
  Ticket RequestArrived(bufferevent* bev);
  // Its response is complete: the next request is due within `seconds`.
  void ResponseDone(const Ticket& t);
  size_t tracked() const { return connections_.size(); }

 private:
  struct Connection {
    uint64_t id;
    double deadline;  // seconds on the monotonic clock; infinite while a request is answered
  };
  static bufferevent* OnNewConnection(event_base* base, void* self);
  static void OnSweep(int, short, void* self);
  void Sweep();

  event_base* base_;
  double seconds_;
  event* sweep_ = nullptr;
  uint64_t next_id_ = 1;
  std::unordered_map<bufferevent*, Connection> connections_;
};

}  // namespace strata
