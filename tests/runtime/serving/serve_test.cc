// `strata serve` end to end under real mpirun (4 ranks, tp 2 x pp 2, CPU backend), driven over
// HTTP: greedy tokens equal `strata generate`'s, streaming equals non-streaming, 64 concurrent
// streaming clients each get what they get alone, every bad input is refused and leaves the
// server serving, a client that disconnects is cancelled, /metrics passes promtool and a real
// Prometheus scrapes it, and SIGTERM drains an in-flight request before every rank exits 0.
#include <gtest/gtest.h>
#include <httplib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <set>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/shell.h"

namespace strata::testing {
namespace {

using json = nlohmann::json;

std::string Bin() { return std::getenv("STRATA_BIN") ? std::getenv("STRATA_BIN") : "strata"; }
std::string Dir() { return ::testing::TempDir() + "/serve-test-" + std::to_string(getpid()); }
const int kPort = 20000 + getpid() % 6000;  // below the ephemeral range (32768-): no clash with clients
const char kKey[] = "test-key";

httplib::Headers Auth() { return {{"Authorization", std::string("Bearer ") + kKey}}; }

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string d = Dir();
    std::system(("rm -rf " + d + " && mkdir -p " + d).c_str());
    ASSERT_EQ(std::system((Bin() + " make-model " + d + "/model --family gpt_neox --layers 4 --hidden 64 --heads 4 "
                           "--kv-layers 2 --vocab 512 --max-position 1024 --seed 5 > /dev/null").c_str()),
              0);
    // A chat template of its own, so that the test can tell it from the built-in one.
    std::ofstream(d + "/model/tokenizer_config.json")
        << json{{"bos_token", "<s>"}, {"eos_token", {{"content", "</s>"}}},
                {"chat_template", "{% for m in messages %}[{{ m['role'] | upper }}] {{ m['content'] | trim }}\n"
                                  "{% endfor %}{% if add_generation_prompt %}{{ bos_token }}[ASSISTANT] {% endif %}"}}
               .dump();
    const char* mpiexec = std::getenv("STRATA_MPIEXEC");
    const std::string cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                            "OMPI_MCA_rmaps_base_oversubscribe=1 " +
                            std::string(mpiexec ? mpiexec : "mpirun") + " -np 4 " + Bin() + " serve --model " + d +
                            "/model --tp 2 --pp 2 --threads 1 --port " + std::to_string(kPort) + " --api-key " + kKey +
                            " --max-body-bytes 65536 --block-size 4 --log-format json";
    std::system(("bash -c '(" + cmd + " & echo $! > " + d + "/pid; wait $!; echo $? > " + d + "/rc) > " + d +
                 "/log 2>&1' &")
                    .c_str());
    httplib::Client c("127.0.0.1", kPort);
    for (int i = 0; i < 240; ++i) {
      if (auto r = c.Get("/health/ready"); r && r->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    FAIL() << "the server did not become ready: " << ReadFile(d + "/log");
  }

  static void TearDownTestSuite() {
    // SIGTERM while a request is in flight: it completes, then every rank exits 0.
    const std::string d = Dir();
    json done;
    std::thread client([&] {
      httplib::Client c("127.0.0.1", kPort);
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/completions", Auth(),
                      json{{"model", "model"}, {"prompt", json::array({1, 2, 3})}, {"max_tokens", 60},
                           {"temperature", 0}, {"ignore_eos", true}}.dump(),
                      "application/json");
      if (r) done = json::parse(r->body, nullptr, false);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::system(("kill -TERM $(cat " + d + "/pid)").c_str());
    client.join();
    EXPECT_EQ(done["usage"]["completion_tokens"], 60) << done.dump();
    for (int i = 0; i < 120 && !std::ifstream(d + "/rc"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    // Open MPI's mpirun itself exits 1 after forwarding a SIGTERM, however its ranks exit; the
    // ranks' own orderly exit is what is checked: a drain message and no abort or signal death.
    EXPECT_TRUE(std::ifstream(d + "/rc").good()) << "mpirun did not exit";
    const std::string log = ReadFile(d + "/log");
    EXPECT_NE(log.find("drained and stopped"), std::string::npos) << log;
    EXPECT_EQ(log.find("aborting"), std::string::npos) << log;
    EXPECT_EQ(log.find("exited on signal"), std::string::npos) << log;
  }

  static json Post(const std::string& path, const json& body, int* status = nullptr) {
    httplib::Client c("127.0.0.1", kPort);
    c.set_read_timeout(120, 0);
    auto r = c.Post(path.c_str(), Auth(), body.dump(), "application/json");
    if (!r) return json();
    if (status) *status = r->status;
    return json::parse(r->body, nullptr, false);
  }

  // A streamed request: the data payloads in order (without [DONE]), and whether [DONE] came.
  static std::vector<json> Stream(const std::string& path, const json& body, bool* done,
                                  std::string* error = nullptr) {
    httplib::Client c("127.0.0.1", kPort);
    c.set_read_timeout(120, 0);
    auto r = c.Post(path.c_str(), Auth(), body.dump(), "application/json");
    std::vector<json> out;
    *done = false;
    if (!r) {
      if (error) *error = httplib::to_string(r.error());
      return out;
    }
    if (error && r->status != 200) *error = "status " + std::to_string(r->status) + ": " + r->body;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("data: ", 0) != 0) continue;
      if (line == "data: [DONE]") {
        *done = true;
        continue;
      }
      out.push_back(json::parse(line.substr(6)));
    }
    return out;
  }
};

TEST_F(Serve, GreedyTokensEqualGenerate) {
  const std::vector<int> prompt = {5, 17, 3, 250, 9, 42, 7};
  const json gen = json::parse(RunShell(Bin() + " generate --model " + Dir() +
                                   "/model --prompt-ids 5,17,3,250,9,42,7 --max-tokens 12 --ignore-eos --json --threads 1").out);
  int status = 0;
  const json r = Post("/v1/completions", {{"model", "model"}, {"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0},
                                          {"ignore_eos", true}, {"return_token_ids", true}, {"logprobs", 1}},
                      &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["choices"][0]["token_ids"], gen["tokens"]);
  for (size_t i = 0; i < gen["logprobs"].size(); ++i)
    EXPECT_NEAR(r["choices"][0]["logprobs"]["token_logprobs"][i].get<double>(), gen["logprobs"][i].get<double>(), 1e-4);
  // Streamed, each token's chunk carries its logprob: the same list.
  json sb = {{"model", "model"}, {"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true},
             {"return_token_ids", true}, {"logprobs", 1}, {"stream", true}};
  bool done = false;
  std::vector<double> streamed;
  for (const json& c : Stream("/v1/completions", sb, &done))
    if (c["choices"][0]["logprobs"].is_object())
      for (const json& lp : c["choices"][0]["logprobs"]["token_logprobs"]) streamed.push_back(lp.get<double>());
  ASSERT_TRUE(done);
  ASSERT_EQ(streamed.size(), gen["logprobs"].size());
  for (size_t i = 0; i < streamed.size(); ++i) EXPECT_NEAR(streamed[i], gen["logprobs"][i].get<double>(), 1e-4);
  EXPECT_EQ(r["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(r["usage"]["completion_tokens"], 12);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
}

// --log-format json: every line a rank writes is one JSON object naming its rank, and each
// finished request has one line with its id, token counts, timings and finish reason.
TEST_F(Serve, JsonLogsNameTheRankAndOneLinePerRequest) {
  int status = 0;
  const json r = Post("/v1/completions", {{"model", "model"}, {"prompt", json::array({4, 5, 6})}, {"max_tokens", 3},
                                          {"temperature", 0}, {"ignore_eos", true}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the line follows the response
  std::istringstream log(ReadFile(Dir() + "/log"));
  std::set<int> ranks;
  json request_line;
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.empty() || line[0] != '{') continue;  // mpirun's own lines
    const json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    ++lines;
    ASSERT_TRUE(j.contains("rank") && j.contains("level") && j.contains("time")) << line;
    ranks.insert(j["rank"].get<int>());
    if (j.value("event", "") == "request" && j.value("id", "") == r["id"]) request_line = j;
  }
  EXPECT_GE(lines, 8);
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2, 3}));
  ASSERT_TRUE(request_line.is_object()) << "no log line for request " << r["id"];
  EXPECT_EQ(request_line["prompt_tokens"], 3);
  EXPECT_EQ(request_line["output_tokens"], 3);
  EXPECT_EQ(request_line["finish_reason"], "length");
  EXPECT_EQ(request_line["rank"], 0);
  EXPECT_GE(request_line["e2e_ms"].get<double>(), request_line["ttft_ms"].get<double>());
}

TEST_F(Serve, TextStreamingAndChat) {
  const json base = {{"model", "model"}, {"prompt", "Hello, world"}, {"max_tokens", 10}, {"temperature", 0},
                     {"ignore_eos", true}};
  const json plain = Post("/v1/completions", base);
  ASSERT_TRUE(plain.contains("choices")) << plain.dump();
  json sb = base;
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  bool done = false;
  std::string text;
  auto chunks = Stream("/v1/completions", sb, &done);
  ASSERT_TRUE(done);
  for (const json& c : chunks)
    if (!c["choices"].empty()) text += c["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, plain["choices"][0]["text"]);
  EXPECT_EQ(chunks.back()["usage"]["completion_tokens"], 10);
  // Echo puts the prompt in front.
  json eb = base;
  eb["echo"] = true;
  EXPECT_EQ(Post("/v1/completions", eb)["choices"][0]["text"], "Hello, world" + plain["choices"][0]["text"].get<std::string>());

  const json chat = {{"model", "model"}, {"messages", {{{"role", "user"}, {"content", "Hi there"}}}}, {"max_tokens", 8},
                     {"temperature", 0}, {"ignore_eos", true}};
  const json c1 = Post("/v1/chat/completions", chat);
  ASSERT_EQ(c1["object"], "chat.completion") << c1.dump();
  // The model's own chat template (tokenizer_config.json) made the prompt.
  const json as_text = Post("/v1/completions", {{"model", "model"}, {"prompt", "[USER] Hi there\n<s>[ASSISTANT] "},
                                                {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(c1["choices"][0]["message"]["content"], as_text["choices"][0]["text"]);
  EXPECT_EQ(c1["usage"]["prompt_tokens"], as_text["usage"]["prompt_tokens"]);
  EXPECT_EQ(c1["choices"][0]["message"]["role"], "assistant");
  json cs = chat;
  cs["stream"] = true;
  std::string streamed;
  auto cchunks = Stream("/v1/chat/completions", cs, &done);
  ASSERT_TRUE(done);
  EXPECT_EQ(cchunks.front()["choices"][0]["delta"]["role"], "assistant");
  for (const json& c : cchunks) streamed += c["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(streamed, c1["choices"][0]["message"]["content"]);
  EXPECT_EQ(cchunks.back()["choices"][0]["finish_reason"], "length");

  // A stop string cuts the text before it, in both modes.
  const std::string full = plain["choices"][0]["text"];
  size_t at = 1;  // two ASCII letters inside the text make the stop string
  while (at + 2 < full.size() && !(std::isalpha(static_cast<unsigned char>(full[at])) &&
                                   std::isalpha(static_cast<unsigned char>(full[at + 1]))))
    ++at;
  if (at + 2 < full.size()) {
    json st = base;
    const std::string stop = full.substr(at, 2);
    st["stop"] = stop;
    const json cut = Post("/v1/completions", st);
    EXPECT_EQ(cut["choices"][0]["text"], full.substr(0, full.find(stop))) << "stop " << stop;
    EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
    st["stream"] = true;
    std::string t2;
    for (const json& c : Stream("/v1/completions", st, &done)) t2 += c["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(t2, cut["choices"][0]["text"]);
  }
  // Several prompts in one request: one choice each.
  json multi = base;
  multi["prompt"] = {"Hello, world", "Another"};
  const json m = Post("/v1/completions", multi);
  ASSERT_EQ(m["choices"].size(), 2u);
  EXPECT_EQ(m["choices"][0]["text"], plain["choices"][0]["text"]);
}

TEST_F(Serve, SixtyFourConcurrentStreamingClientsEachAsAlone) {
  const int n = 64;
  std::vector<json> bodies(n);
  for (int i = 0; i < n; ++i) {
    std::vector<int> p;
    for (int k = 0; k < 1 + (i * 7) % 40; ++k) p.push_back((i * 31 + k * 17) % 500);
    bodies[i] = {{"model", "model"}, {"prompt", p}, {"max_tokens", 4 + i % 17}, {"temperature", 0},
                 {"ignore_eos", true}, {"return_token_ids", true}, {"stream", true}};
  }
  std::vector<std::vector<int>> streamed(n);
  std::vector<bool> finished(n, false);
  std::vector<std::string> errors(n);
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&, i] {
      bool done = false;
      for (const json& c : Stream("/v1/completions", bodies[i], &done, &errors[i]))
        if (c["choices"][0].contains("token_ids"))
          for (int t : c["choices"][0]["token_ids"]) streamed[i].push_back(t);
      finished[i] = done;
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(finished[i]) << "client " << i << ": " << errors[i];
    json alone = bodies[i];
    alone["stream"] = false;
    const json r = Post("/v1/completions", alone);
    EXPECT_EQ(json(streamed[i]), r["choices"][0]["token_ids"]) << "client " << i;
    EXPECT_EQ(static_cast<int>(streamed[i].size()), bodies[i]["max_tokens"].get<int>());
  }
}

TEST_F(Serve, BadInputsAreRefusedAndTheServerKeepsServing) {
  httplib::Client c("127.0.0.1", kPort);
  auto post = [&](const std::string& body, const httplib::Headers& h = Auth()) {
    auto r = c.Post("/v1/completions", h, body, "application/json");
    return r ? std::make_pair(r->status, json::parse(r->body, nullptr, false)) : std::make_pair(0, json());
  };
  const json ok = {{"model", "model"}, {"prompt", "hi"}, {"max_tokens", 3}};
  auto with = [&](const std::string& k, const json& v) {
    json b = ok;
    b[k] = v;
    return b.dump();
  };
  struct Case {
    std::string name, body;
    int status;
    std::string param;
  };
  std::vector<Case> cases = {
      {"malformed JSON", "{\"model\": ", 400, ""},
      {"not an object", "[1,2]", 400, ""},
      {"wrong type", with("max_tokens", "ten"), 400, "max_tokens"},
      {"unknown field", with("frobnicate", 1), 400, "frobnicate"},
      {"prompt too long", with("prompt", std::vector<int>(1024, 1)), 400, "prompt"},
      {"max_tokens past the context", with("max_tokens", 5000), 400, "max_tokens"},
      {"negative temperature", with("temperature", -1), 400, "temperature"},
      {"absurd top_p", with("top_p", 7), 400, "top_p"},
      {"token outside the vocabulary", with("prompt", std::vector<int>{1, 99999}), 400, "prompt"},
      {"n of 0", with("n", 0), 400, "n"},
      {"unknown model", with("model", "gpt-9"), 404, "model"},
      {"empty prompt", with("prompt", ""), 400, "prompt"},
  };
  for (const Case& k : cases) {
    auto [status, body] = post(k.body);
    EXPECT_EQ(status, k.status) << k.name << ": " << body.dump();
    ASSERT_TRUE(body.contains("error")) << k.name;
    EXPECT_TRUE(body["error"]["message"].is_string()) << k.name;
    if (!k.param.empty()) {
      EXPECT_EQ(body["error"]["param"], k.param) << k.name;
    }
  }
  EXPECT_EQ(post(ok.dump(), {}).first, 401);  // no API key
  EXPECT_EQ(post(ok.dump(), {{"Authorization", "Bearer wrong"}}).first, 401);
  EXPECT_EQ(post(with("prompt", std::string(70000, 'x'))).first, 413);
  // Probes and the scraper need no key.
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Get("/metrics")->status, 200);
  auto models = c.Get("/v1/models", Auth());
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "model");
  EXPECT_EQ(post(ok.dump()).first, 200);
}

TEST_F(Serve, ADisconnectedStreamIsCancelled) {
  {  // A raw client: send a long streaming request, read the first bytes, hang up.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(kPort));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    const std::string body =
        json{{"model", "model"}, {"prompt", "x"}, {"max_tokens", 900}, {"ignore_eos", true}, {"stream", true}}.dump();
    const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + std::string(kKey) +
                            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body;
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    char buf[512];
    ASSERT_GT(read(fd, buf, sizeof(buf)), 0);  // the stream has started
    close(fd);
  }
  httplib::Client c("127.0.0.1", kPort);
  bool idle = false;
  for (int i = 0; i < 40 && !idle; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string m = c.Get("/metrics")->body;
    idle = m.find("strata_num_requests_running{model_name=\"model\"} 0") != std::string::npos &&
           m.find("strata_kv_cache_usage_perc{model_name=\"model\"} 0\n") != std::string::npos;
  }
  EXPECT_TRUE(idle) << "the abandoned request still holds the engine";
  EXPECT_EQ(Post("/v1/completions", {{"model", "model"}, {"prompt", "y"}, {"max_tokens", 2}})["usage"]["completion_tokens"], 2);
}

// strata bench serve against this server: every request completes, the token counts match what
// was asked, and the server's own counters moved by exactly what the generator reports.
TEST_F(Serve, LoadGeneratorAgreesWithTheServersCounters) {
  httplib::Client c("127.0.0.1", kPort);
  auto counter = [&](const std::string& name) {
    const std::string m = c.Get("/metrics")->body;
    double sum = 0;
    std::istringstream in(m);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(name, 0) == 0 && (line[name.size()] == '{' || line[name.size()] == ' '))
        sum += std::stod(line.substr(line.rfind(' ') + 1));
    return sum;
  };
  const double requests0 = counter("strata_requests_total"), tokens0 = counter("strata_generation_tokens_total");
  for (const std::string mode : {"--concurrency 6", "--rate 40 --concurrency 16"}) {
    const std::string out = RunShell(Bin() + " bench serve --url http://127.0.0.1:" + std::to_string(kPort) +
                                       " --api-key " + kKey + " " + mode +
                                       " --num-prompts 12 --prompt-len 9 --output-len 7 --vocab-range 500 --seed 3 --json").out;
    const json j = json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_EQ(j["completed"], 12) << out;
    EXPECT_EQ(j["errors"], 0) << out;
    EXPECT_EQ(j["output_tokens"], 12 * 7);
    EXPECT_EQ(j["prompt_tokens"], 12 * 9);
    EXPECT_EQ(j["config"]["model"], "model");
    EXPECT_GT(j["ttft_ms"]["p50"].get<double>(), 0);
    EXPECT_LE(j["ttft_ms"]["p50"].get<double>(), j["ttft_ms"]["p99"].get<double>());
    EXPECT_LE(j["e2e_ms"]["p50"].get<double>(), j["e2e_ms"]["p99"].get<double>());
    EXPECT_GT(j["output_tokens_per_s"].get<double>(), 0);
  }
  EXPECT_EQ(counter("strata_requests_total") - requests0, 24);
  EXPECT_EQ(counter("strata_generation_tokens_total") - tokens0, 24 * 7);
  // Shared prefixes (prefix caching's workload): 12 prompts, each one of 2 prefixes of 16 tokens
  // and 3 of its own. Every prompt is looked up (19 tokens); all but the first of each prefix find
  // its 4 blocks (block size 4) cached, or wait for them while the first computes them.
  const double hits0 = counter("strata_prefix_cache_hits_total");
  const double queries0 = counter("strata_prefix_cache_queries_total");
  const std::string shared = RunShell(Bin() + " bench serve --url http://127.0.0.1:" + std::to_string(kPort) +
                                      " --api-key " + kKey + " --concurrency 4 --num-prompts 12 --prompt-len 3"
                                      " --output-len 2 --shared-prefix-len 16 --num-prefixes 2 --vocab-range 500"
                                      " --seed 5 --json").out;
  const json sj = json::parse(shared, nullptr, false);
  ASSERT_FALSE(sj.is_discarded()) << shared;
  EXPECT_EQ(sj["completed"], 12) << shared;
  EXPECT_EQ(sj["prompt_tokens"], 12 * 19);
  EXPECT_EQ(counter("strata_prefix_cache_queries_total") - queries0, 12 * 19);
  EXPECT_EQ(counter("strata_prefix_cache_hits_total") - hits0, 10 * 16);
  // A wrong key is reported as errors, with a non-zero exit.
  const ShellResult bad = RunShell(Bin() + " bench serve --url http://127.0.0.1:" + std::to_string(kPort) +
                                   " --served-model-name model --api-key wrong --num-prompts 2 --json");
  EXPECT_NE(bad.out.find("\"errors\":2"), std::string::npos) << bad.out;
  EXPECT_EQ(bad.code, 1) << bad.out;
}

TEST_F(Serve, MetricsPassPromtoolAndARealPrometheusScrapesThem) {
  Post("/v1/completions", {{"model", "model"}, {"prompt", "metrics"}, {"max_tokens", 2}});
  const std::string d = Dir();
  httplib::Client c("127.0.0.1", kPort);
  std::ofstream(d + "/metrics.txt") << c.Get("/metrics")->body;
  const ShellResult check = RunShell("promtool check metrics < " + d + "/metrics.txt 2>&1");
  EXPECT_EQ(check.code, 0) << check.out;
  for (const char* name : {"strata_num_requests_running", "strata_num_requests_waiting", "strata_prompt_tokens_total",
                           "strata_generation_tokens_total", "strata_time_to_first_token_seconds_bucket",
                           "strata_time_per_output_token_seconds_bucket", "strata_e2e_request_latency_seconds_bucket",
                           "strata_num_preemptions_total", "strata_kv_cache_usage_perc", "strata_stage_kv_usage_tokens",
                           "strata_stage_kv_capacity_tokens", "strata_kv_bytes_per_token",
                           "strata_stage_step_seconds", "strata_pipeline_bubble_ratio", "strata_request_success_total",
                           "strata_prefix_cache_queries_total", "strata_prefix_cache_hits_total",
                           "strata_stage_kv_blocks_cached", "strata_stage_kv_blocks_free"})
    EXPECT_NE(ReadFile(d + "/metrics.txt").find(name), std::string::npos) << name;

  const int prom_port = kPort + 1;
  std::ofstream(d + "/prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: strata\n"
                                          "    static_configs:\n      - targets: ['127.0.0.1:"
                                       << kPort << "']\n";
  std::system(("prometheus --config.file=" + d + "/prometheus.yml --storage.tsdb.path=" + d +
               "/tsdb --web.listen-address=127.0.0.1:" + std::to_string(prom_port) + " > " + d +
               "/prometheus.log 2>&1 & echo $! > " + d + "/prometheus.pid")
                  .c_str());
  httplib::Client p("127.0.0.1", prom_port);
  auto query = [&](const std::string& q) -> double {
    auto r = p.Post("/api/v1/query", httplib::Params{{"query", q}});
    if (!r || r->status != 200) return -1;
    const json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) return -1;
    return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  };
  double up = -1, requests = -1;
  for (int i = 0; i < 120 && (up != 1 || requests <= 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    up = query("up{job=\"strata\"}");
    requests = query("sum(strata_requests_total)");
  }
  std::system(("kill $(cat " + d + "/prometheus.pid)").c_str());
  EXPECT_EQ(up, 1) << ReadFile(d + "/prometheus.log");
  EXPECT_GT(requests, 0);
}

}  // namespace
}  // namespace strata::testing
