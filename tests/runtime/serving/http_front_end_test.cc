// The HTTP front end under load and abuse, against a real `strata serve` (one process, CPU):
//   * 2,000 concurrent streaming clients all end with [DONE], each with the tokens it gets alone,
//     while the server's thread count stays bounded;
//   * 1,000 half-open connections (half a request header, then silence) delay nobody: a normal
//     request still answers within a second;
//   * 10,000 idle connections cost no threads and little memory;
//   * a client that stops reading mid-stream is dropped once it is a bounded number of bytes
//     behind: its sequence is freed, the server's memory stays bounded and another stream keeps
//     its inter-token latency;
//   * every optional field sent as null answers 200, and seeded mutations of valid bodies over
//     HTTP never answer 5xx.
// Clients are raw non-blocking sockets driven by one epoll loop, so the test itself needs no
// thread per connection.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/shell.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string Bin() { return std::getenv("STRATA_BIN") ? std::getenv("STRATA_BIN") : "strata"; }
std::string Dir() { return ::testing::TempDir() + "/http-front-end-" + std::to_string(getpid()); }
// Below the ephemeral range (32768-) that this test's own 12,000 client sockets draw from.
const int kPort = 14000 + getpid() % 6000;

// A field of /proc/PID/status, as a number ("Threads", "VmRSS" in kB).
int64_t ProcStatus(int pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

int Connect(int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kPort);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));  // EINPROGRESS: epoll says when
  return fd;
}

std::string PostText(const std::string& path, const json& body) {
  const std::string b = body.dump();
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
         "Content-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
}

// The token ids of a streamed completion's raw HTTP bytes, and whether [DONE] came.
std::pair<std::vector<int>, bool> StreamTokens(const std::string& raw) {
  std::vector<int> ids;
  bool done = false;
  size_t at = 0;
  while ((at = raw.find("data: ", at)) != std::string::npos) {
    const size_t end = raw.find('\n', at);
    const std::string payload = raw.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
    at = end == std::string::npos ? raw.size() : end;
    if (payload == "[DONE]") {
      done = true;
      continue;
    }
    const json j = json::parse(payload, nullptr, false);
    if (j.is_object() && j.contains("choices") && !j["choices"].empty() && j["choices"][0].contains("token_ids"))
      for (int t : j["choices"][0]["token_ids"]) ids.push_back(t);
  }
  return {ids, done};
}

// Sends each request on its own connection at once and reads every response to EOF, all from
// one epoll loop; samples the server's thread count meanwhile.
struct Crowd {
  std::vector<std::string> responses;
  int64_t max_threads = 0;
  double seconds = 0;
};
Crowd RunCrowd(const std::vector<std::string>& requests, int server_pid, int timeout_s = 300) {
  Crowd c;
  c.responses.resize(requests.size());
  const int ep = epoll_create1(0);
  std::map<int, size_t> conn;        // fd -> request
  std::map<int, size_t> sent;        // fd -> bytes of the request written
  for (size_t i = 0; i < requests.size(); ++i) {
    const int fd = Connect();
    conn[fd] = i;
    sent[fd] = 0;
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
  }
  const auto start = Clock::now();
  std::vector<epoll_event> events(1024);
  char buf[65536];
  while (!conn.empty() && Clock::now() - start < std::chrono::seconds(timeout_s)) {
    c.max_threads = std::max(c.max_threads, ProcStatus(server_pid, "Threads"));
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int k = 0; k < n; ++k) {
      const int fd = events[k].data.fd;
      auto it = conn.find(fd);
      if (it == conn.end()) continue;
      const std::string& req = requests[it->second];
      if ((events[k].events & EPOLLOUT) && sent[fd] < req.size()) {
        const ssize_t w = ::send(fd, req.data() + sent[fd], req.size() - sent[fd], MSG_NOSIGNAL);
        if (w > 0) sent[fd] += static_cast<size_t>(w);
        if (sent[fd] == req.size()) {
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
        }
      }
      if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r;
        while ((r = ::recv(fd, buf, sizeof(buf), 0)) > 0) c.responses[it->second].append(buf, static_cast<size_t>(r));
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          conn.erase(it);
        }
      }
    }
  }
  for (auto& [fd, i] : conn) close(fd);
  close(ep);
  c.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return c;
}

class HttpFrontEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string d = Dir();
    std::system(("rm -rf " + d + " && mkdir -p " + d).c_str());
    ASSERT_EQ(std::system((Bin() + " make-model " + d + "/model --layers 2 --hidden 64 --heads 4 --vocab 512 "
                           "--max-position 4096 --seed 9 > /dev/null").c_str()),
              0);
    const std::string cmd = Bin() + " serve --model " + d + "/model --threads 1 --port " + std::to_string(kPort) +
                            " --max-pending 4096 --max-seqs 256 --kv-memory 268435456 --max-stream-buffer-bytes 65536 --socket-send-buffer-bytes 65536";
    std::system(("bash -c '(" + cmd + " & echo $! > " + d + "/pid; wait $!) > " + d + "/log 2>&1' &").c_str());
    httplib::Client c("127.0.0.1", kPort);
    for (int i = 0; i < 240; ++i) {
      if (auto r = c.Get("/health/ready"); r && r->status == 200) {
        pid_ = std::stoi(ReadFile(d + "/pid"));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    FAIL() << "the server did not become ready: " << ReadFile(d + "/log");
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) kill(pid_, SIGTERM);
    for (int i = 0; i < 80 && pid_ > 0 && kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  static json Completion(int prompt_seed, int max_tokens, bool stream) {
    std::vector<int> prompt;
    for (int k = 0; k < 3 + prompt_seed % 5; ++k) prompt.push_back((prompt_seed * 37 + k * 11) % 500 + 1);
    return {{"model", "model"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
            {"ignore_eos", true}, {"stream", stream}, {"return_token_ids", true}};
  }
  static inline int pid_ = -1;
};

TEST_F(HttpFrontEnd, TwoThousandConcurrentStreamsEachAsAlone) {
  constexpr int kPrompts = 20, kClients = 2000;
  std::vector<std::vector<int>> alone(kPrompts);
  for (int p = 0; p < kPrompts; ++p) {
    const Crowd one = RunCrowd({PostText("/v1/completions", Completion(p, 8, true))}, pid_);
    auto [ids, done] = StreamTokens(one.responses[0]);
    ASSERT_TRUE(done) << one.responses[0];
    ASSERT_EQ(ids.size(), 8u);
    alone[p] = ids;
  }
  std::vector<std::string> requests;
  for (int i = 0; i < kClients; ++i) requests.push_back(PostText("/v1/completions", Completion(i % kPrompts, 8, true)));
  const Crowd crowd = RunCrowd(requests, pid_);
  int complete = 0;
  for (int i = 0; i < kClients; ++i) {
    auto [ids, done] = StreamTokens(crowd.responses[i]);
    complete += done;
    EXPECT_EQ(ids, alone[i % kPrompts]) << "client " << i << ": " << crowd.responses[i].substr(0, 300);
  }
  EXPECT_EQ(complete, kClients);
  EXPECT_LE(crowd.max_threads, 32) << "the server's threads";
  std::printf("2000 concurrent streams: %d complete in %.1f s; server threads at most %lld\n", complete, crowd.seconds,
              static_cast<long long>(crowd.max_threads));
}

TEST_F(HttpFrontEnd, HalfOpenAndIdleConnectionsDelayNobody) {
  const int64_t rss_before = ProcStatus(pid_, "VmRSS");
  std::vector<int> half;
  for (int i = 0; i < 1000; ++i) {
    half.push_back(Connect());
    if (i % 200 == 199) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // within the backlog
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string partial = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
  for (int fd : half) ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
  std::vector<int> idle;
  for (int i = 0; i < 9000; ++i) {
    idle.push_back(Connect());
    if (i % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  httplib::Client c("127.0.0.1", kPort);
  c.set_read_timeout(10, 0);
  auto t0 = Clock::now();
  auto health = c.Get("/health");
  const double health_s = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  auto r = c.Post("/v1/completions", Completion(1, 4, false).dump(), "application/json");
  const double completion_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const int64_t threads = ProcStatus(pid_, "Threads"), rss_after = ProcStatus(pid_, "VmRSS");
  ASSERT_TRUE(health && r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_LT(health_s, 1.0);
  EXPECT_LT(completion_s, 1.0);
  EXPECT_LE(threads, 32);
  EXPECT_LT(rss_after - rss_before, 200 * 1024) << "kB for 10,000 connections";
  std::printf("10,000 open connections (1,000 half-open): /health %.3f s, a completion %.3f s, server threads %lld, "
              "RSS +%lld kB\n",
              health_s, completion_s, static_cast<long long>(threads), static_cast<long long>(rss_after - rss_before));
  for (int fd : half) close(fd);
  for (int fd : idle) close(fd);
}

TEST_F(HttpFrontEnd, AReaderThatStopsIsDroppedAndFreed) {
  const int64_t rss_before = ProcStatus(pid_, "VmRSS");
  // A client with a tiny receive window that never reads a byte of its long stream.
  const int slow = Connect(4096);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string req = PostText("/v1/completions", Completion(3, 3500, true));
  ASSERT_EQ(::send(slow, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  // Meanwhile a normal stream: its tokens keep coming (gaps between arrivals, blocking reads).
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kPort);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  const std::string normal = PostText("/v1/completions", Completion(4, 300, true));
  ASSERT_EQ(::send(fd, normal.data(), normal.size(), MSG_NOSIGNAL), static_cast<ssize_t>(normal.size()));
  std::string raw;
  std::vector<double> gaps;
  auto last = Clock::now();
  char buf[65536];
  ssize_t got;
  while ((got = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    raw.append(buf, static_cast<size_t>(got));
    const auto now = Clock::now();
    gaps.push_back(std::chrono::duration<double>(now - last).count());
    last = now;
  }
  close(fd);
  EXPECT_TRUE(StreamTokens(raw).second) << raw.substr(0, 300);
  EXPECT_EQ(StreamTokens(raw).first.size(), 300u);
  double worst = 0;
  for (size_t i = 1; i < gaps.size(); ++i) worst = std::max(worst, gaps[i]);
  EXPECT_LT(worst, 1.0) << "the other stream's longest gap between chunks";
  httplib::Client c("127.0.0.1", kPort);
  // The slow reader is dropped (the log says so) and its sequence freed.
  std::string log;
  for (int i = 0; i < 100; ++i) {
    log = ReadFile(Dir() + "/log");
    if (log.find("slow_reader_dropped") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(log.find("slow_reader_dropped"), std::string::npos) << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  std::string metrics;
  for (int i = 0; i < 50; ++i) {
    metrics = c.Get("/metrics")->body;
    if (metrics.find("strata_num_requests_running{model_name=\"model\"} 0") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(metrics.find("strata_num_requests_running{model_name=\"model\"} 0"), std::string::npos);
  EXPECT_LT(ProcStatus(pid_, "VmRSS") - rss_before, 64 * 1024) << "kB";
  close(slow);
}

TEST_F(HttpFrontEnd, NullFieldsAreDefaultsAndMutationsNever5xx) {
  httplib::Client c("127.0.0.1", kPort);
  c.set_read_timeout(30, 0);
  json nulls = Completion(2, 4, false);
  for (const char* f : {"stream", "n", "echo", "logprobs", "stop", "seed", "top_p", "top_k", "user", "best_of",
                        "presence_penalty", "frequency_penalty", "logit_bias", "stream_options", "suffix", "min_p",
                        "repetition_penalty", "min_tokens", "stop_token_ids", "temperature", "ignore_eos",
                        "return_token_ids"})
    nulls[f] = nullptr;
  auto r = c.Post("/v1/completions", nulls.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  json chat = {{"model", "model"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
               {"max_tokens", 4}, {"stream", nullptr}, {"n", nullptr}, {"logprobs", nullptr}, {"top_logprobs", nullptr},
               {"max_completion_tokens", nullptr}, {"temperature", nullptr}, {"top_p", nullptr}, {"seed", nullptr},
               {"stop", nullptr}, {"presence_penalty", nullptr}, {"frequency_penalty", nullptr},
               {"logit_bias", nullptr}, {"user", nullptr}, {"stream_options", nullptr}, {"min_p", nullptr},
               {"top_k", nullptr}, {"repetition_penalty", nullptr}, {"min_tokens", nullptr},
               {"stop_token_ids", nullptr}, {"ignore_eos", nullptr}, {"return_token_ids", nullptr}};
  r = c.Post("/v1/chat/completions", chat.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;

  std::mt19937 rng(77);
  const std::vector<json> values = {nullptr, true, 0, -1, 3, 1e300, "x", json::array(), json::array({1}),
                                    json::object(), json{{"a", nullptr}}};
  const std::vector<std::string> keys = {"prompt", "messages", "max_tokens", "temperature", "top_p", "stream",
                                         "stop", "logprobs", "n", "stream_options", "echo", "seed", "model",
                                         "top_logprobs", "best_of", "logit_bias", "min_tokens", "stop_token_ids",
                                         "presence_penalty", "repetition_penalty", "max_completion_tokens",
                                         "tokens", "add_special_tokens", "add_generation_prompt"};
  // Every endpoint that takes a body: generation, /tokenize and /detokenize.
  const std::vector<std::pair<std::string, json>> bases = {
      {"/v1/chat/completions", chat},
      {"/v1/completions", Completion(3, 2, false)},
      {"/v1/completions", Completion(4, 2, true)},
      {"/tokenize", {{"prompt", "hello"}}},
      {"/tokenize", {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}}},
      {"/detokenize", {{"tokens", {1, 2, 3}}}}};
  int over_499 = 0, answered = 0;
  for (int i = 0; i < 600; ++i) {
    const auto& [path, base] = bases[rng() % bases.size()];
    json body = base;
    for (int k = 0, n = 1 + rng() % 3; k < n; ++k) body[keys[rng() % keys.size()]] = values[rng() % values.size()];
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    if (rng() % 4 == 0) text[rng() % text.size()] = static_cast<char>(rng() % 256);
    auto m = c.Post(path.c_str(), text, "application/json");
    ASSERT_TRUE(m) << "no answer to " << text;
    ++answered;
    if (m->status >= 500) {
      ++over_499;
      ADD_FAILURE() << m->status << " for " << text << ": " << m->body;
    }
  }
  EXPECT_EQ(over_499, 0);
  EXPECT_EQ(answered, 600);
  EXPECT_EQ(c.Get("/health")->status, 200);
  auto models = c.Get("/v1/models?x=1");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
}


// The OpenAI surface users expect, each knob against an oracle built from plain requests: n and
// best_of against single requests with the derived seeds, top logprobs against the chosen token,
// logit_bias, stop_token_ids and min_tokens against the greedy continuation, /tokenize and
// /detokenize round trips.
TEST_F(HttpFrontEnd, OpenAiSurface) {
  httplib::Client c("127.0.0.1", kPort);
  c.set_read_timeout(30, 0);
  auto post = [&](const std::string& path, const json& body) {
    auto r = c.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    EXPECT_EQ(r ? r->status : 0, 200) << path << " " << body.dump() << ": " << (r ? r->body : "");
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  json sampled = Completion(5, 6, false);
  sampled["temperature"] = 1.0;
  sampled["seed"] = 40;
  sampled["logprobs"] = 0;
  std::vector<std::vector<int>> single;
  std::vector<double> total;
  for (int j = 0; j < 3; ++j) {
    json one = sampled;
    one["seed"] = 40 + j;
    const json r = post("/v1/completions", one);
    single.push_back(r["choices"][0]["token_ids"].get<std::vector<int>>());
    double sum = 0;
    for (double lp : r["choices"][0]["logprobs"]["token_logprobs"]) sum += lp;
    total.push_back(sum);
  }
  json n3 = sampled;
  n3["n"] = 3;
  const json many = post("/v1/completions", n3);
  ASSERT_EQ(many["choices"].size(), 3u);
  for (int j = 0; j < 3; ++j) EXPECT_EQ(many["choices"][j]["token_ids"].get<std::vector<int>>(), single[j]) << j;
  json best = sampled;
  best["best_of"] = 3;
  const json b = post("/v1/completions", best);
  ASSERT_EQ(b["choices"].size(), 1u);
  const int winner = static_cast<int>(std::max_element(total.begin(), total.end()) - total.begin());
  EXPECT_EQ(b["choices"][0]["token_ids"].get<std::vector<int>>(), single[winner]);
  EXPECT_EQ(b["usage"]["completion_tokens"], 18);  // every sequence generated counts

  // Chat top_logprobs: five alternatives per token, most likely first; greedy picks the first.
  json chat = {{"model", "model"}, {"messages", json::array({{{"role", "user"}, {"content", "hello"}}})},
               {"max_tokens", 5}, {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 5}};
  const json cr = post("/v1/chat/completions", chat);
  const json& content = cr["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 5u);
  for (const json& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 5u);
    for (size_t k = 1; k < 5; ++k) EXPECT_GE(t["top_logprobs"][k - 1]["logprob"], t["top_logprobs"][k]["logprob"]);
    EXPECT_NEAR(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-5);
  }
  // Completions logprobs = 3: a dict of at most three alternatives per position.
  json lp3 = Completion(6, 4, false);
  lp3["logprobs"] = 3;
  const json l = post("/v1/completions", lp3);
  ASSERT_EQ(l["choices"][0]["logprobs"]["top_logprobs"].size(), 4u);
  for (const json& d : l["choices"][0]["logprobs"]["top_logprobs"]) EXPECT_LE(d.size(), 3u);

  // Greedy continuation, then the stopping knobs against it.
  const std::vector<int> greedy = post("/v1/completions", Completion(7, 10, false))["choices"][0]["token_ids"];
  ASSERT_EQ(greedy.size(), 10u);
  json biased = Completion(7, 10, false);
  biased["logit_bias"] = {{"7", 100}};
  EXPECT_EQ(post("/v1/completions", biased)["choices"][0]["token_ids"].get<std::vector<int>>(), std::vector<int>(10, 7));
  const int stop_at = greedy[3];
  const size_t first = static_cast<size_t>(std::find(greedy.begin(), greedy.end(), stop_at) - greedy.begin());
  json stopping = Completion(7, 10, false);
  stopping["stop_token_ids"] = {stop_at};
  const json st = post("/v1/completions", stopping);
  EXPECT_EQ(st["choices"][0]["token_ids"].get<std::vector<int>>(),
            std::vector<int>(greedy.begin(), greedy.begin() + static_cast<long>(first) + 1));
  EXPECT_EQ(st["choices"][0]["finish_reason"], "stop");
  json minimum = Completion(7, 10, false);
  minimum["stop_token_ids"] = {greedy[0]};
  minimum["min_tokens"] = 2;
  const std::vector<int> m = post("/v1/completions", minimum)["choices"][0]["token_ids"];
  ASSERT_GE(m.size(), 2u);
  EXPECT_NE(m[0], greedy[0]);
  EXPECT_NE(m[1], greedy[0]);
  json penalized = Completion(7, 10, false);
  penalized["frequency_penalty"] = 1.5;
  penalized["presence_penalty"] = 0.5;
  penalized["repetition_penalty"] = 1.2;
  penalized["min_p"] = 0.1;
  EXPECT_EQ(post("/v1/completions", penalized)["choices"][0]["token_ids"].size(), 10u);

  // The same requests streamed: each choice's tokens and logprobs, chunk by chunk, equal the
  // non-streamed answer (n = 2 sampled, with completions logprobs).
  json twice = sampled;
  twice["n"] = 2;
  twice["logprobs"] = 2;
  const json whole = post("/v1/completions", twice);
  twice["stream"] = true;
  auto streamed = c.Post("/v1/completions", twice.dump(), "application/json");
  ASSERT_TRUE(streamed && streamed->status == 200);
  std::map<int, std::vector<int>> stream_ids;
  std::map<int, std::vector<double>> stream_lps;
  for (size_t at = 0; (at = streamed->body.find("data: {", at)) != std::string::npos; ++at) {
    const json j = json::parse(streamed->body.substr(at + 6, streamed->body.find('\n', at) - at - 6));
    for (const json& ch : j["choices"]) {
      const int i = ch["index"];
      if (ch.contains("token_ids") && ch["token_ids"].is_array())
        for (int t : ch["token_ids"]) stream_ids[i].push_back(t);
      if (ch["logprobs"].is_object())
        for (double lp : ch["logprobs"]["token_logprobs"]) stream_lps[i].push_back(lp);
    }
  }
  ASSERT_EQ(whole["choices"].size(), 2u);
  for (const json& ch : whole["choices"]) {
    const int i = ch["index"];
    EXPECT_EQ(stream_ids[i], ch["token_ids"].get<std::vector<int>>()) << i;
    const std::vector<double> lps = ch["logprobs"]["token_logprobs"];
    ASSERT_EQ(stream_lps[i].size(), lps.size()) << i;
    for (size_t k = 0; k < lps.size(); ++k) EXPECT_NEAR(stream_lps[i][k], lps[k], 1e-6) << i << " " << k;
  }
  // 20 alternatives, the most either endpoint takes; max_completion_tokens bounds a chat answer.
  chat["top_logprobs"] = 20;
  chat["max_completion_tokens"] = 3;
  chat.erase("max_tokens");
  const json c20 = post("/v1/chat/completions", chat);
  ASSERT_EQ(c20["choices"][0]["logprobs"]["content"].size(), c20["usage"]["completion_tokens"].get<size_t>());
  EXPECT_LE(c20["usage"]["completion_tokens"].get<int>(), 3);
  for (const json& t : c20["choices"][0]["logprobs"]["content"]) EXPECT_EQ(t["top_logprobs"].size(), 20u);
  json lp20 = Completion(6, 2, false);
  lp20["logprobs"] = 20;
  const json l20 = post("/v1/completions", lp20);
  EXPECT_EQ(l20["choices"][0]["token_ids"].size(), 2u);
  for (const json& d : l20["choices"][0]["logprobs"]["top_logprobs"]) {
    EXPECT_GE(d.size(), 1u);
    EXPECT_LE(d.size(), 20u);
  }
  // /v1/models states the context length; a request beyond it is a 400 naming max_tokens.
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  EXPECT_EQ(json::parse(models->body)["data"][0]["max_model_len"], 4096);
  json too_long = Completion(8, 4095, false);  // 6 prompt tokens + 4095 > 4096
  auto refused = c.Post("/v1/completions", too_long.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  const json err = json::parse(refused->body)["error"];
  EXPECT_EQ(err["param"], "max_tokens") << refused->body;
  EXPECT_EQ(err["code"], "context_length_exceeded") << refused->body;

  const json tok = post("/tokenize", {{"prompt", "hello world"}});
  EXPECT_EQ(tok["count"], tok["tokens"].size());
  EXPECT_EQ(tok["max_model_len"], 4096);
  EXPECT_EQ(post("/detokenize", {{"tokens", tok["tokens"]}})["prompt"], "hello world");
  auto bad = c.Post("/detokenize", json{{"tokens", {-1}}}.dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// A model whose config.json names an ordinary token as EOS (as a checkpoint whose eos_token_id
// is 2 beside GPT-2's tokenizer, where 2 is "#"): the EOS that ends an answer is in its token
// ids, never in its text (structured outputs ended in "}#" before), streamed or whole; the same
// for stop_token_ids; include_stop_str_in_output keeps that text; skip_special_tokens false
// shows a special token. The tokens are forced with logit_bias, the texts come from
// `strata tokenize --decode`.
TEST(HttpStopText, TheTokenThatStopsIsNoPartOfTheText) {
  const std::string d = Dir() + "-eos";
  const int port = kPort + 1;
  std::system(("rm -rf " + d + " && mkdir -p " + d).c_str());
  ASSERT_EQ(std::system((Bin() + " make-model " + d + "/model --layers 2 --hidden 64 --heads 4 --vocab 512 --seed 9"
                                 " > /dev/null").c_str()),
            0);
  constexpr int kEos = 65, kStop = 70, kSpecial = 511;  // kSpecial: the random tokenizer's <|endoftext|>
  json config = json::parse(ReadFile(d + "/model/config.json"));
  config["eos_token_id"] = kEos;
  std::ofstream(d + "/model/config.json") << config.dump(2);
  auto text_of = [&](int id) {
    const ShellResult r = RunShell(Bin() + " tokenize --model " + d + "/model --decode " + std::to_string(id));
    EXPECT_EQ(r.code, 0) << r.out;
    return r.out.substr(0, r.out.size() - 1);  // the trailing newline
  };
  const std::string eos_text = text_of(kEos), stop_text = text_of(kStop), special_text = text_of(kSpecial);
  ASSERT_FALSE(eos_text.empty());
  ASSERT_FALSE(stop_text.empty());
  ASSERT_EQ(special_text, "<|endoftext|>");
  const std::string cmd = Bin() + " serve --model " + d + "/model --threads 1 --port " + std::to_string(port);
  std::system(("bash -c '(" + cmd + " & echo $! > " + d + "/pid; wait $!) > " + d + "/log 2>&1' &").c_str());
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  bool ready = false;
  for (int i = 0; i < 240 && !ready; ++i) {
    if (auto r = c.Get("/health/ready"); r && r->status == 200) ready = true;
    else std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ASSERT_TRUE(ready) << ReadFile(d + "/log");
  const int pid = std::stoi(ReadFile(d + "/pid"));
  // The whole text and the streamed text of a completion whose first token is `forced`.
  auto complete = [&](int forced, json extra) {
    json body = {{"model", "model"}, {"prompt", {1, 2, 3}}, {"max_tokens", 4}, {"temperature", 0},
                 {"logit_bias", {{std::to_string(forced), 100}}}, {"return_token_ids", true}};
    body.update(extra);
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    const json whole = r ? json::parse(r->body, nullptr, false) : json();
    body["stream"] = true;
    std::string streamed;
    auto s = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(s && s->status == 200);
    for (size_t at = 0; s && (at = s->body.find("data: {", at)) != std::string::npos; ++at)
      streamed += json::parse(s->body.substr(at + 6, s->body.find('\n', at) - at - 6))["choices"][0]["text"].get<std::string>();
    return std::make_pair(whole, streamed);
  };
  {
    const auto [whole, streamed] = complete(kEos, json::object());
    EXPECT_EQ(whole["choices"][0]["text"], "");
    EXPECT_EQ(whole["choices"][0]["token_ids"], json::array({kEos}));
    EXPECT_EQ(whole["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(whole["usage"]["completion_tokens"], 1);
    EXPECT_EQ(streamed, "");
  }
  {
    const auto [whole, streamed] = complete(kEos, {{"include_stop_str_in_output", true}});
    EXPECT_EQ(whole["choices"][0]["text"], eos_text);
    EXPECT_EQ(streamed, eos_text);
  }
  {
    const auto [whole, streamed] = complete(kStop, {{"stop_token_ids", {kStop}}});
    EXPECT_EQ(whole["choices"][0]["text"], "");
    EXPECT_EQ(whole["choices"][0]["token_ids"], json::array({kStop}));
    EXPECT_EQ(whole["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(streamed, "");
  }
  {
    const auto [whole, streamed] = complete(kStop, {{"stop_token_ids", {kStop}}, {"include_stop_str_in_output", true}});
    EXPECT_EQ(whole["choices"][0]["text"], stop_text);
    EXPECT_EQ(streamed, stop_text);
  }
  {  // a special token that does not stop: skipped by default, shown with skip_special_tokens false
    const auto [whole, streamed] = complete(kSpecial, {{"max_tokens", 1}});
    EXPECT_EQ(whole["choices"][0]["text"], "");
    EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");
    const auto [shown, shown_streamed] = complete(kSpecial, {{"max_tokens", 1}, {"skip_special_tokens", false}});
    EXPECT_EQ(shown["choices"][0]["text"], special_text);
    EXPECT_EQ(shown_streamed, special_text);
  }
  {  // a stop string: cut by default, kept with include_stop_str_in_output
    const auto [whole, streamed] = complete(kStop, {{"stop", stop_text}, {"ignore_eos", true}});
    EXPECT_EQ(whole["choices"][0]["text"], "");
    const auto [kept, kept_streamed] = complete(kStop, {{"stop", stop_text}, {"include_stop_str_in_output", true}});
    EXPECT_EQ(kept["choices"][0]["text"], stop_text);
    EXPECT_EQ(kept_streamed, stop_text);
  }
  kill(pid, SIGTERM);
  for (int i = 0; i < 80 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace strata::testing
