// The evhttp server alone, with a short timeout: a client that trickles a request one byte at a
// time (which resets an inactivity timer forever) is closed at its request deadline, while a
// keep-alive client that sends whole requests is served on one connection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "runtime/serving/http_server.h"

namespace strata::testing {
namespace {

using Clock = std::chrono::steady_clock;

int ConnectTo(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Reads one response (headers + Content-Length body) from a blocking socket.
std::string ReadResponse(int fd) {
  std::string got;
  char buf[4096];
  while (true) {
    const size_t head = got.find("\r\n\r\n");
    if (head != std::string::npos) {
      const size_t at = got.find("Content-Length: ");
      const size_t len = at == std::string::npos ? 0 : std::stoul(got.substr(at + 16));
      if (got.size() >= head + 4 + len) return got;
    }
    const ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) return got;
    got.append(buf, static_cast<size_t>(r));
  }
}

class HttpServerDeadlines : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.port = 0;  // any free port
    o.timeout_seconds = 2;
    server_ = std::make_unique<HttpServer>(o);
    server_->SetHandler([](const std::shared_ptr<HttpExchange>& x) { x->Reply(200, "text/plain", "ok"); });
    ASSERT_TRUE(server_->Start().ok());
  }
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerDeadlines, ATricklingClientIsClosedAtItsDeadline) {
  const int fd = ConnectTo(server_->port());
  const std::string head = "GET /x HTTP/1.1\r\nHost: a\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  const auto start = Clock::now();
  bool closed = false;
  // One header byte every 200 ms for up to 8 s: well inside the 2 s inactivity timeout each time.
  while (Clock::now() - start < std::chrono::seconds(8)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (send(fd, "X", 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    char c;
    const ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      closed = true;
      break;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  EXPECT_TRUE(closed) << "a client trickling a header was still connected after " << seconds << " s";
  EXPECT_GT(seconds, 1.5);
  EXPECT_LT(seconds, 4.0);
}

TEST_F(HttpServerDeadlines, KeepAliveRequestsOnOneConnectionAreServed) {
  const int fd = ConnectTo(server_->port());
  const std::string req = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size())) << i;
    const std::string r = ReadResponse(fd);
    EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << i << ": " << r;
    // Idle between requests for less than the deadline, counted from the previous response.
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  }
  close(fd);
}

// A stream whose first chunk comes later than the timeout (a long prefill) is kept: only the
// request's arrival has a deadline, not the engine's pace.
TEST_F(HttpServerDeadlines, AStreamSilentLongerThanTheTimeoutIsKept) {
  std::shared_ptr<HttpExchange> pending;
  server_->SetHandler([&](const std::shared_ptr<HttpExchange>& x) {
    x->StartStream("text/event-stream");
    pending = x;
  });
  server_->SetWakeHandler([&] {
    if (!pending) return;
    pending->Write("data: late\n\n", 1 << 20);
    pending->EndStream();
    pending.reset();
  });
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));  // timeout: 2 s
    server_->Wake();
  });
  const int fd = ConnectTo(server_->port());
  const std::string req = "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[4096];
  for (ssize_t r; (r = recv(fd, buf, sizeof(buf), 0)) > 0;) got.append(buf, static_cast<size_t>(r));
  later.join();
  close(fd);
  EXPECT_NE(got.find("data: late"), std::string::npos) << got;
}

}  // namespace
}  // namespace strata::testing
