// Serving pieces without a server: the hub's overload and drain refusals, cancellation, and
// stop strings held back across token boundaries.
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "runtime/serving/openai_api.h"
#include "runtime/serving/request_hub.h"

namespace strata::testing {
namespace {

TEST(RequestHub, RefusesBeyondTheQueueLimitAndWhileDraining) {
  RequestHub hub(3);
  auto stream = std::make_shared<RequestStream>();
  GenerationRequest r;
  r.prompt = {1};
  ASSERT_TRUE(hub.Submit({r, r}, stream).ok());
  auto over = hub.Submit({r, r}, stream);  // 4 > 3
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(over.status().message()).find("overloaded"), std::string::npos);
  auto one = hub.Submit({r}, stream);
  ASSERT_TRUE(one.ok());
  std::vector<std::pair<RequestId, GenerationRequest>> adds;
  std::vector<RequestId> cancels;
  hub.TakeWork(&adds, &cancels, std::chrono::milliseconds(0));
  EXPECT_EQ(adds.size(), 3u);
  hub.Cancel({(*one)[0]});
  hub.TakeWork(&adds, &cancels, std::chrono::milliseconds(0));
  EXPECT_EQ(cancels, (std::vector<RequestId>{(*one)[0]}));
  // Finishing frees room; events arrive in order on the stream.
  RequestOutput aborted;
  aborted.id = (*one)[0];
  aborted.token = 7;
  aborted.logprob = -0.5f;
  aborted.finished = true;
  aborted.finish_reason = "abort";
  hub.Deliver(aborted);
  EXPECT_EQ(hub.unfinished(), 2);
  auto events = stream->Wait(std::chrono::milliseconds(0));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token, 7);
  EXPECT_TRUE(hub.Submit({r}, stream).ok());
  hub.StartDraining();
  auto late = hub.Submit({r}, stream);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(std::string(late.status().message()).find("shutting down"), std::string::npos);
}

// The queue's memory bound: prompt tokens of unfinished requests, freed as they finish.
TEST(RequestHub, RefusesBeyondThePendingPromptTokens) {
  RequestHub hub(100, /*max_pending_tokens=*/10);
  auto stream = std::make_shared<RequestStream>();
  GenerationRequest six;
  six.prompt = {1, 2, 3, 4, 5, 6};
  auto first = hub.Submit({six}, stream);
  ASSERT_TRUE(first.ok());
  auto over = hub.Submit({six}, stream);  // 12 > 10
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(over.status().message()).find("--max-pending-tokens"), std::string::npos);
  RequestOutput done;
  done.id = (*first)[0];
  done.finished = true;
  done.finish_reason = "length";
  hub.Deliver(done);
  EXPECT_TRUE(hub.Submit({six}, stream).ok());
}

// Byte tokens (no merges) so that every byte of the text is one token.
std::unique_ptr<Tokenizer> ByteTokenizer() {
  nlohmann::json v = nlohmann::json::object();
  for (int c = 'a'; c <= 'z'; ++c) v[std::string(1, static_cast<char>(c))] = c;
  // A Fuse decoder: the pieces are concatenated (with no decoder at all, Hugging Face joins them
  // with spaces).
  return std::move(*Tokenizer::FromTokenizerJson(
      nlohmann::json{{"model", {{"type", "BPE"}, {"vocab", v}, {"merges", nlohmann::json::array()}}},
                     {"decoder", {{"type", "Fuse"}}}}
          .dump()));
}

TEST(StopAwareText, HoldsBackAPossibleStopAndCutsBeforeIt) {
  auto tok = ByteTokenizer();
  StopAwareText t(tok.get(), {"xyz", "qq"});
  std::string out;
  for (char c : std::string("abxy")) out += t.Add(c);
  EXPECT_EQ(out, "ab");  // "xy" could still become "xyz": held back
  out += t.Add('q');
  EXPECT_EQ(out, "abxy");  // now it cannot; "q" could start "qq": held back
  EXPECT_FALSE(t.stopped());
  out += t.Add('q');     // "qq" completes: the stop is never emitted
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(out, "abxy");
  EXPECT_EQ(t.Add('a'), "");
  StopAwareText u(tok.get(), {"xyz"});
  std::string o2;
  for (char c : std::string("axy")) o2 += u.Add(c);
  o2 += u.Finish();  // the end: held-back text that never became a stop is emitted
  EXPECT_EQ(o2, "axy");
  // include_stop_str_in_output: the stop string is kept, nothing after it.
  StopAwareText w(tok.get(), {"xyz", "qq"}, /*include_stop=*/true);
  std::string o3;
  for (char c : std::string("abqqxyz")) o3 += w.Add(c);
  EXPECT_TRUE(w.stopped());
  EXPECT_EQ(o3, "abqq");
}

}  // namespace
}  // namespace strata::testing
