// strata serve --model DIR [--tp T --pp P] [--host 127.0.0.1] [--port 8000] [--api-key KEY]:
// the OpenAI-compatible server. Under mpirun every rank loads its share; rank 0 serves HTTP and
// schedules, the others follow its steps. SIGTERM drains: no new requests, in-flight ones finish,
// then every rank exits 0.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "launcher/commands.h"
#include "parallel/parallel_layout.h"
#include "launcher/flags.h"
#include "runtime/serving/api_server.h"
#include "runtime/serving/serve_loop.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "serve: address to listen on (0.0.0.0: every interface)");
ABSL_FLAG(int, port, 8000, "serve: HTTP port");
ABSL_FLAG(std::string, api_key, "", "serve: require 'Authorization: Bearer KEY' on /v1/* (or STRATA_API_KEY)");
ABSL_FLAG(std::string, served_model_name, "", "serve: the model name clients send (default: the directory name)");
ABSL_FLAG(int, max_pending, 0,
          "serve: unfinished requests accepted before answering 503 (0: auto, max(64 x --max-seqs, 65536); "
          "every request beyond the running batch waits in the queue, strata_num_requests_waiting)");
ABSL_FLAG(int64_t, max_pending_tokens, int64_t{1} << 26,
          "serve: prompt tokens of unfinished requests accepted before answering 503 (what bounds the queue's "
          "memory: 2^26 token ids are 256 MiB)");
ABSL_FLAG(int64_t, max_body_bytes, 1 << 20, "serve: larger request bodies get 413");
ABSL_FLAG(int, io_timeout, 30, "serve: seconds before a slow or idle connection is closed");
ABSL_FLAG(int, socket_send_buffer_bytes, 256 << 10,
          "serve: kernel send buffer per connection (SO_SNDBUF; 0: the kernel's autotuning)");
ABSL_FLAG(int64_t, max_stream_buffer_bytes, 4 << 20,
          "serve: unsent bytes a streaming client may fall behind by before it is dropped and its sequence freed");
ABSL_FLAG(std::string, chat_template, "auto",
          "serve: auto (tokenizer_config.json's chat_template if any, else the built-in ChatML), builtin, or a "
          "file holding a Jinja template");
ABSL_FLAG(std::string, tool_call_parser, "auto",
          "serve: how tool calls are read from chat output: hermes (<tool_call> JSON </tool_call>), llama3_json "
          "({\"name\": ..., \"parameters\": ...}), or auto (from the chat template's text; hermes when unsure)");

namespace strata {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// Where this rank sits, as the layout (the one owner of rank <-> stage and slice) says.
void LogRankPlacement(const JobComms& comms, const ParallelLayout& layout) {
  const int rank = comms.world->rank();
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  const std::string device = absl::GetFlag(FLAGS_device);
  const std::string where = device == "cuda" ? absl::StrCat("cuda:", CudaDeviceOfThisRank()) : device;
  spdlog::info("strata rank {}/{} host {} stage {} slice {} device {} (local rank {}) data plane {}", rank,
               comms.world->size(), host, layout.stage_of(rank), layout.slice_of(rank), where, LocalRank(),
               comms.data_plane);
}

// --max-pending: as given, else (0) far beyond the running batch, as vLLM queues every request. The
// queue's memory is bounded by --max-pending-tokens (the prompt ids it holds; a request's body is
// parsed and dropped before it queues), and a stream that falls behind by
// --max-stream-buffer-bytes on its own.
int MaxPendingRequests(int flag, int max_seqs) {
  if (flag > 0) {
    if (flag < max_seqs)
      spdlog::warn("strata serve: --max-pending {} is below --max-seqs {}: requests beyond it get 503 while the "
                   "engine could still run them", flag, max_seqs);
    return flag;
  }
  return std::max(64 * max_seqs, 65536);
}

// The HTTP front end's options from the flags (the served name defaults to the model's directory).
ApiServerOptions ApiServerOptionsFromFlags(const std::string& model) {
  ApiServerOptions so;
  so.host = absl::GetFlag(FLAGS_host);
  so.port = absl::GetFlag(FLAGS_port);
  so.api_key = absl::GetFlag(FLAGS_api_key);
  if (so.api_key.empty() && std::getenv("STRATA_API_KEY")) so.api_key = std::getenv("STRATA_API_KEY");
  so.served_model_name = absl::GetFlag(FLAGS_served_model_name);
  if (so.served_model_name.empty()) {
    std::string m = model;
    while (m.size() > 1 && m.back() == '/') m.pop_back();
    so.served_model_name = m.substr(m.find_last_of('/') + 1);
  }
  so.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_body_bytes));
  so.io_timeout_seconds = absl::GetFlag(FLAGS_io_timeout);
  so.max_stream_buffer_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_stream_buffer_bytes));
  so.socket_send_buffer_bytes = absl::GetFlag(FLAGS_socket_send_buffer_bytes);
  so.tool_call_parser = absl::GetFlag(FLAGS_tool_call_parser);
  return so;
}

// Rank 0's request queue and HTTP server, started before the weights load so that health
// answers meanwhile.
struct FrontEnd {
  std::unique_ptr<RequestHub> hub;
  std::unique_ptr<ApiServer> server;
  std::string served_name;
};
absl::StatusOr<FrontEnd> StartFrontEnd(const std::string& model) {
  FrontEnd f;
  const ApiServerOptions so = ApiServerOptionsFromFlags(model);
  f.served_name = so.served_model_name;
  f.hub = std::make_unique<RequestHub>(MaxPendingRequests(absl::GetFlag(FLAGS_max_pending), absl::GetFlag(FLAGS_max_seqs)),
                                       absl::GetFlag(FLAGS_max_pending_tokens));
  f.server = std::make_unique<ApiServer>(so, f.hub.get());
  if (absl::Status st = f.server->Start(); !st.ok()) return st;
  return f;
}

// --chat-template: auto (the model's, else ChatML), builtin (ChatML) or a Jinja file. A
// template that cannot be read ends the job: serving with the wrong one would be silent.
ModelChatTemplate ChatTemplateFromFlags(const std::string& model, HostComm* world) {
  ModelChatTemplate chat;
  const std::string which = absl::GetFlag(FLAGS_chat_template);
  if (which == "auto") {
    auto loaded = LoadChatTemplate(model);
    if (!loaded.ok())
      world->Abort(absl::StrCat("strata serve: ", loaded.status().message(),
                                " (--chat-template builtin serves with the built-in template)"));
    return std::move(*loaded);
  }
  if (which == "builtin") return chat;
  std::ifstream f(which);
  std::stringstream ss;
  ss << f.rdbuf();
  auto t = ChatTemplate::Parse(ss.str());
  if (!f || !t.ok())
    world->Abort(absl::StrCat("strata serve: --chat-template ", which, ": ",
                              f ? std::string(t.status().message()) : "cannot read"));
  chat.tmpl = std::move(*t);
  chat.source = ss.str();
  if (auto loaded = LoadChatTemplate(model); loaded.ok()) {
    chat.bos_token = loaded->bos_token;
    chat.eos_token = loaded->eos_token;
  }
  return chat;
}

void LogEngineSetup(const Engine& engine, const ModelChatTemplate& chat) {
  spdlog::info("strata serve: {}", engine.kv_budget());
  if (engine.prefix_caching()) {
    spdlog::info("strata serve: prefix caching on");
  } else if (!engine.prefix_caching_refusal().empty()) {
    spdlog::info("strata serve: prefix caching off for this model: {}", engine.prefix_caching_refusal());
  }
  spdlog::info("strata serve: chat template: {}", chat.tmpl ? "the model's (Jinja)" : "built-in ChatML");
}

// Rank 0 once every rank has loaded: the tokenizer and chat template, the metrics, then the
// serve loop until SIGTERM has drained it; the workers are released at the end.
int ServeOnRankZero(Engine& engine, FrontEnd& front, HostComm* world) {
  const std::string model = absl::GetFlag(FLAGS_model);
  std::unique_ptr<Tokenizer> tokenizer;
  if (auto t = Tokenizer::Load(model); t.ok()) {
    tokenizer = std::move(*t);
  } else {
    spdlog::warn("strata serve: {}; prompts must be token ids", std::string(t.status().message()));
  }
  const ModelChatTemplate chat = ChatTemplateFromFlags(model, world);
  LogEngineSetup(engine, chat);
  ServerMetrics metrics(engine, front.served_name);
  front.hub->set_observer([&metrics](const StreamEvent& ev, auto submitted, auto last, bool first) {
    metrics.OnDelivery(ev, submitted, last, first);
  });
  if (absl::Status ready = front.server->SetReady(&engine, tokenizer.get(), &chat, &metrics); !ready.ok())
    world->Abort(absl::StrCat("strata serve: ", ready.message()));
  spdlog::info("strata serve: ready on http://{}:{} (tp {} x pp {})", absl::GetFlag(FLAGS_host),
               front.server->port(), std::max(1, absl::GetFlag(FLAGS_tp)), absl::GetFlag(FLAGS_pp));
  absl::Status st = RunServeLoop(engine, *front.hub, metrics, g_stop);
  if (!st.ok()) world->Abort(std::string(st.message()));
  front.server->Stop();
  if (absl::Status s2 = engine.Shutdown(); !s2.ok()) world->Abort(std::string(s2.message()));
  spdlog::info("strata serve: drained and stopped");
  return 0;
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail("serve", "takes no positional arguments", 2);
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model.empty()) return Fail("serve", "--model is required", 2);
  if (auto parser = ResolveToolCallFormat(absl::GetFlag(FLAGS_tool_call_parser), ""); !parser.ok())
    return Fail("serve", std::string(parser.status().message()), 2);
  // Every rank drains on SIGTERM/SIGINT through rank 0 (mpirun forwards the signal to all).
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  JobComms comms = CreateJobCommsFromFlags();
  FrontEnd front;
  if (comms.world->rank() == 0) {  // health answers while the weights load
    absl::StatusOr<FrontEnd> started = StartFrontEnd(model);
    if (!started.ok()) {
      if (comms.world->size() > 1) comms.world->Abort(absl::StrCat("strata serve: ", started.status().message()));
      return Fail("serve", std::string(started.status().message()));
    }
    front = std::move(*started);
  }
  auto engine = CreateEngineOrAbort("serve", comms);
  if (!engine.ok()) return Fail("serve", std::string(engine.status().message()));
  LogRankPlacement(comms, (*engine)->plan().layout);
  // Every rank has loaded its weights once all are past this point.
  if (absl::Status st = comms.world->Barrier(); !st.ok()) comms.world->Abort(std::string(st.message()));
  if (comms.world->rank() == 0) return ServeOnRankZero(**engine, front, comms.world.get());
  absl::Status st = (*engine)->RunWorker();
  if (!st.ok()) comms.world->Abort(std::string(st.message()));
  return 0;
}

}  // namespace strata
