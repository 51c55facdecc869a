#include "runtime/step_message.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace strata {

std::vector<int32_t> EncodeStepMessage(const StepMessage& m) {
  std::vector<int32_t> w = {kStepProtocolVersion, m.stop ? 1 : 0, m.report ? 1 : 0,
                            static_cast<int32_t>(m.step_id & 0xffffffff), static_cast<int32_t>(m.step_id >> 32),
                            static_cast<int32_t>(m.seqs.size())};
  for (const SequenceStep& s : m.seqs) {
    const int nb = static_cast<int>(s.blocks.size());
    w.insert(w.end(), {s.context_len, s.slot, static_cast<int32_t>(s.tokens.size()), nb, s.copy_src, s.copy_dst});
    w.insert(w.end(), s.tokens.begin(), s.tokens.end());
    w.insert(w.end(), s.blocks.begin(), s.blocks.end());
  }
  return w;
}

absl::StatusOr<StepMessage> DecodeStepMessage(const std::vector<char>& bytes) {
  const size_t n = bytes.size() / 4;
  std::vector<int32_t> w(n);
  if (n) std::memcpy(w.data(), bytes.data(), n * 4);
  auto bad = [&](const char* why) {
    return absl::DataLossError(absl::StrCat("step message (", bytes.size(), " bytes): ", why));
  };
  if (bytes.size() % 4 != 0 || n < 6) return bad("truncated");
  if (w[0] != kStepProtocolVersion)
    return bad(absl::StrCat("protocol version ", w[0], ", this build speaks ", kStepProtocolVersion).c_str());
  StepMessage m;
  m.stop = w[1] != 0;
  m.report = w[2] != 0;
  m.step_id = static_cast<int64_t>(static_cast<uint32_t>(w[3])) | (static_cast<int64_t>(w[4]) << 32);
  const int num = w[5];
  if (num < 0) return bad("negative sequence count");
  m.seqs.resize(num);
  size_t at = 6;
  for (int i = 0; i < num; ++i) {
    if (at + 6 > n) return bad("truncated sequence header");
    SequenceStep& s = m.seqs[i];
    s.context_len = w[at];
    s.slot = w[at + 1];
    const int nt = w[at + 2], nb = w[at + 3];
    s.copy_src = w[at + 4];
    s.copy_dst = w[at + 5];
    at += 6;
    if (nt < 0 || nb < 0 || at + nt + nb > n) return bad("truncated sequence body");
    s.tokens.assign(w.begin() + at, w.begin() + at + nt);
    at += nt;
    s.blocks.assign(w.begin() + at, w.begin() + at + nb);
    at += nb;
  }
  if (at != n) return bad("trailing words");
  return m;
}

std::string EncodeRankStats(const RankStats& s) {
  nlohmann::json edges = nlohmann::json::array();
  for (const auto& [edge, bytes] : s.edge_bytes) edges.push_back({edge.first, edge.second, bytes});
  return nlohmann::json{{"step_id", s.step_id}, {"rank", s.rank},   {"stage", s.stage},
                        {"slice", s.slice}, {"steps", s.steps},
                        {"busy", s.busy_seconds}, {"wall", s.wall_seconds},
                        {"edges", edges}, {"weight_bytes", s.weight_bytes}, {"kv_bytes", s.kv_bytes}}
      .dump();
}

absl::StatusOr<RankStats> DecodeRankStats(const std::vector<char>& bytes) {
  auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("rank statistics: not a JSON object");
  try {
    RankStats s;
    s.step_id = j.at("step_id").get<int64_t>();
    s.rank = j.at("rank").get<int>();
    s.stage = j.at("stage").get<int>();
    s.slice = j.at("slice").get<int>();
    s.steps = j.at("steps").get<int64_t>();
    s.busy_seconds = j.at("busy").get<double>();
    s.wall_seconds = j.at("wall").get<double>();
    s.weight_bytes = j.at("weight_bytes").get<int64_t>();
    s.kv_bytes = j.at("kv_bytes").get<int64_t>();
    for (const auto& e : j.at("edges")) s.edge_bytes[{e.at(0).get<int>(), e.at(1).get<int>()}] = e.at(2).get<int64_t>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("rank statistics: ", e.what()));
  }
}

}  // namespace strata
