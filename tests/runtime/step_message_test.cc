// The control-plane codec: what rank 0 encodes every rank decodes to the same plan, and a message
// of another protocol version, cut short or with extra words is refused with a DataLoss error.
#include "runtime/step_message.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace strata {
namespace {

std::vector<char> Bytes(const std::vector<int32_t>& words) {
  std::vector<char> b(words.size() * 4);
  if (!words.empty()) std::memcpy(b.data(), words.data(), b.size());
  return b;
}

StepMessage RandomMessage(std::mt19937& rng) {
  StepMessage m;
  m.report = rng() % 2;
  m.step_id = (static_cast<int64_t>(rng()) << 20) + rng();  // beyond 32 bits
  const int seqs = static_cast<int>(rng() % 5);
  for (int s = 0; s < seqs; ++s) {
    SequenceStep q;
    q.context_len = static_cast<int>(rng() % 1000);
    q.slot = static_cast<int>(rng() % 64);
    for (int t = 0, n = 1 + static_cast<int>(rng() % 9); t < n; ++t) q.tokens.push_back(static_cast<int>(rng() % 50000));
    for (int b = 0, n = static_cast<int>(rng() % 6); b < n; ++b) q.blocks.push_back(static_cast<int>(rng() % 4096));
    if (rng() % 3 == 0) {  // a block copy before the step
      q.copy_src = static_cast<int>(rng() % 4096);
      q.copy_dst = static_cast<int>(rng() % 4096);
    }
    m.seqs.push_back(std::move(q));
  }
  return m;
}

void ExpectSame(const StepMessage& a, const StepMessage& b) {
  EXPECT_EQ(a.stop, b.stop);
  EXPECT_EQ(a.report, b.report);
  EXPECT_EQ(a.step_id, b.step_id);
  ASSERT_EQ(a.seqs.size(), b.seqs.size());
  for (size_t i = 0; i < a.seqs.size(); ++i) {
    EXPECT_EQ(a.seqs[i].tokens, b.seqs[i].tokens);
    EXPECT_EQ(a.seqs[i].context_len, b.seqs[i].context_len);
    EXPECT_EQ(a.seqs[i].slot, b.seqs[i].slot);
    EXPECT_EQ(a.seqs[i].blocks, b.seqs[i].blocks);
    EXPECT_EQ(a.seqs[i].copy_src, b.seqs[i].copy_src);
    EXPECT_EQ(a.seqs[i].copy_dst, b.seqs[i].copy_dst);
  }
}

TEST(StepMessage, RoundTripsRandomPlans) {
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    const StepMessage m = RandomMessage(rng);
    auto back = DecodeStepMessage(Bytes(EncodeStepMessage(m)));
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSame(m, *back);
    // A decoded message owns its block tables: a copy outlives the original.
    StepMessage copy = *back;
    back->seqs.clear();
    ExpectSame(m, copy);
  }
  StepMessage stop;
  stop.stop = true;
  auto back = DecodeStepMessage(Bytes(EncodeStepMessage(stop)));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->stop);
}

TEST(StepMessage, RefusesAnotherProtocolVersion) {
  std::mt19937 rng(5);
  std::vector<int32_t> w = EncodeStepMessage(RandomMessage(rng));
  w[0] = kStepProtocolVersion + 1;
  auto m = DecodeStepMessage(Bytes(w));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(m.status().message().find("protocol version"), std::string::npos) << m.status();
}

TEST(StepMessage, RefusesEveryTruncationAndTrailingWords) {
  std::mt19937 rng(9);
  for (int i = 0; i < 20; ++i) {
    StepMessage msg = RandomMessage(rng);
    if (msg.seqs.empty()) continue;
    const std::vector<char> full = Bytes(EncodeStepMessage(msg));
    for (size_t cut = 0; cut < full.size(); ++cut) {
      auto m = DecodeStepMessage(std::vector<char>(full.begin(), full.begin() + cut));
      EXPECT_FALSE(m.ok()) << "cut at byte " << cut << " of " << full.size();
      if (!m.ok()) {
        EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
      }
    }
    std::vector<char> longer = full;
    longer.insert(longer.end(), 4, 0);
    EXPECT_FALSE(DecodeStepMessage(longer).ok());
  }
  // Negative counts never allocate or read out of bounds.
  std::vector<int32_t> w = {kStepProtocolVersion, 0, 0, 0, 0, -1};
  EXPECT_FALSE(DecodeStepMessage(Bytes(w)).ok());
  w = {kStepProtocolVersion, 0, 0, 0, 0, 1, 0, 0, -3, 0};
  EXPECT_FALSE(DecodeStepMessage(Bytes(w)).ok());
}

TEST(RankStats, RoundTripsAndRefusesGarbage) {
  RankStats s;
  s.step_id = 123456789012;
  s.rank = 5;
  s.stage = 2;
  s.slice = 1;
  s.steps = 77;
  s.busy_seconds = 1.25;
  s.wall_seconds = 9.5;
  s.edge_bytes[{3, 1}] = 4096;
  s.edge_bytes[{7, 0}] = 1;
  s.weight_bytes = 1 << 30;
  s.kv_bytes = 12345;
  const std::string enc = EncodeRankStats(s);
  auto back = DecodeRankStats(std::vector<char>(enc.begin(), enc.end()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->step_id, s.step_id);
  EXPECT_EQ(back->rank, 5);
  EXPECT_EQ(back->stage, 2);
  EXPECT_EQ(back->slice, 1);
  EXPECT_EQ(back->steps, 77);
  EXPECT_EQ(back->busy_seconds, 1.25);
  EXPECT_EQ(back->wall_seconds, 9.5);
  EXPECT_EQ(back->edge_bytes, s.edge_bytes);
  EXPECT_EQ(back->weight_bytes, s.weight_bytes);
  EXPECT_EQ(back->kv_bytes, 12345);
  for (const std::string& bad : {std::string("not json"), std::string("[1,2]"), enc.substr(0, enc.size() / 2),
                                std::string(R"({"step_id": 1})")}) {
    auto r = DecodeRankStats(std::vector<char>(bad.begin(), bad.end()));
    EXPECT_FALSE(r.ok()) << bad;
  }
}

}  // namespace
}  // namespace strata
