#include "runtime/serving/request_deadlines.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/socket.h>

#include <chrono>
#include <limits>

namespace strata {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// bufferevent_free clears every callback; evhttp keeps at least the error callback set for as
// long as the connection lives.
bool FreedByEvhttp(bufferevent* bev) {
  bufferevent_data_cb read_cb = nullptr, write_cb = nullptr;
  bufferevent_event_cb event_cb = nullptr;
  bufferevent_getcb(bev, &read_cb, &write_cb, &event_cb, nullptr);
  return read_cb == nullptr && write_cb == nullptr && event_cb == nullptr;
}

}  // namespace

RequestDeadlines::RequestDeadlines(event_base* base, evhttp* http, double seconds) : base_(base), seconds_(seconds) {
  evhttp_set_bevcb(http, &RequestDeadlines::OnNewConnection, this);
  sweep_ = event_new(base, -1, EV_PERSIST, &RequestDeadlines::OnSweep, this);
  const timeval every{0, 250 * 1000};
  event_add(sweep_, &every);
}

RequestDeadlines::~RequestDeadlines() {
  if (sweep_) event_free(sweep_);
  // evhttp_free (before this) has freed every connection: only our references remain.
  for (auto& [bev, c] : connections_) bufferevent_decref(bev);
}

bufferevent* RequestDeadlines::OnNewConnection(event_base* base, void* self) {
  auto* d = static_cast<RequestDeadlines*>(self);
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) return nullptr;
  bufferevent_incref(bev);
  d->connections_[bev] = Connection{d->next_id_++, Now() + d->seconds_};
  return bev;
}

RequestDeadlines::Ticket RequestDeadlines::RequestArrived(bufferevent* bev) {
  auto it = connections_.find(bev);
  if (it == connections_.end()) return {};
  it->second.deadline = std::numeric_limits<double>::infinity();
  return {bev, it->second.id};
}

void RequestDeadlines::ResponseDone(const Ticket& t) {
  auto it = connections_.find(t.bev);
  if (it != connections_.end() && it->second.id == t.id) it->second.deadline = Now() + seconds_;
}

void RequestDeadlines::OnSweep(int, short, void* self) { static_cast<RequestDeadlines*>(self)->Sweep(); }

void RequestDeadlines::Sweep() {
  const double now = Now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    bufferevent* bev = it->first;
    if (FreedByEvhttp(bev)) {
      bufferevent_decref(bev);  // the last reference: the socket closes now
      it = connections_.erase(it);
      continue;
    }
    if (now > it->second.deadline) {
      const int fd = bufferevent_getfd(bev);
      if (fd >= 0) shutdown(fd, SHUT_RDWR);  // evhttp reads the end of stream and frees it
      it->second.deadline = std::numeric_limits<double>::infinity();
    }
    ++it;
  }
}

}  // namespace strata
