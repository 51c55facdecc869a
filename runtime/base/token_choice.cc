#include "runtime/base/token_choice.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace strata {
namespace {

// Ascending key = the rank: descending logit, then ascending id. Never 0 for a logit below +inf
// (the high half is then at least 0x00800000), so 0 can stand for "before every key".
// Branch-free: signs are random in a row of logits.
uint64_t RankKey(float logit, int id) {
  logit += 0.f;  // -0 ranks as +0 (-0 + 0 = +0)
  uint32_t bits;
  std::memcpy(&bits, &logit, sizeof bits);
  // Ascending in the float's order: negatives flipped whole, positives get the sign bit.
  bits ^= static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u;
  return (static_cast<uint64_t>(~bits) << 32) | static_cast<uint32_t>(id);
}

int IdOf(uint64_t key) { return static_cast<int>(static_cast<uint32_t>(key)); }

// Per-thread scratch, grown to the vocabulary once.
struct Scratch {
  std::vector<double> p;        // p_i, written for the tokens still in play
  std::vector<uint64_t> ranks;  // rank keys of the candidate pool
  std::vector<uint64_t> best;   // BestKeys' or BucketByRank's output
  std::vector<uint32_t> buckets;  // BucketByRank's counts
  std::vector<int> ids;         // the pool's ids in ascending order
};

Scratch& ThreadScratch(int vocab) {
  thread_local Scratch s;
  if (static_cast<int>(s.p.size()) < vocab) s.p.resize(vocab);
  return s;
}

// The m best-ranked (smallest) keys greater than `after`, ascending. One pass with a buffer cut
// back to its m best whenever it reaches 2m: once cut, most keys fail one comparison against the
// current m-th best, so a top-40 of 50k costs about one read of the row (nth_element over the
// whole row cost 10x more, mostly mispredicted branches).
void BestKeys(const std::vector<uint64_t>& keys, uint64_t after, size_t m, std::vector<uint64_t>* out) {
  out->clear();
  uint64_t bound = UINT64_MAX;  // the m-th best so far, once the buffer was first cut
  for (uint64_t k : keys) {
    if (k <= after || k > bound) continue;
    out->push_back(k);
    if (out->size() == 2 * m) {
      std::nth_element(out->begin(), out->begin() + (m - 1), out->end());
      out->resize(m);
      bound = (*out)[m - 1];
    }
  }
  std::sort(out->begin(), out->end());
  if (out->size() > m) out->resize(m);
}

// Keys grouped by their top 16 bits, in ascending groups (a counting sort; unsorted inside a
// group): every key of a group ranks before every key of the next.
void BucketByRank(const std::vector<uint64_t>& keys, std::vector<uint64_t>* out, std::vector<uint32_t>* starts) {
  starts->assign((1u << 16) + 1, 0);
  uint32_t* start = starts->data();  // raw pointers: the stores below must not reload them
  for (uint64_t k : keys) ++start[(k >> 48) + 1];
  for (size_t b = 1; b < starts->size(); ++b) start[b] += start[b - 1];
  out->resize(keys.size());
  uint64_t* dst = out->data();
  for (uint64_t k : keys) dst[start[k >> 48]++] = k;
}

// Adds the keys' masses in rank order until they reach `target` and says the key that did. The
// keys come grouped as BucketByRank leaves them (a sorted list is such a grouping); each group
// is sorted on the way.
bool ReachMass(std::vector<uint64_t>* keys, const std::vector<double>& p, double target, uint64_t* last) {
  double cum = 0;
  for (size_t i = 0; i < keys->size();) {
    const uint64_t group = (*keys)[i] >> 48;
    size_t end = i + 1;
    while (end < keys->size() && ((*keys)[end] >> 48) == group) ++end;
    std::sort(keys->begin() + i, keys->begin() + end);
    for (; i < end; ++i) {
      cum += p[IdOf((*keys)[i])];
      if (cum >= target) {
        *last = (*keys)[i];
        return true;
      }
    }
  }
  return false;
}

// The draw over tokens `ids` (ascending) with masses p.
int Walk(const std::vector<int>& ids, const std::vector<double>& p, double u) {
  double total = 0;
  for (int i : ids) total += p[i];
  double left = u * total;
  int last_positive = -1;
  for (int i : ids) {
    if (p[i] == 0.0) continue;
    left -= p[i];
    if (left < 0) return i;
    last_positive = i;
  }
  return last_positive;
}

// The largest logit that is neither NaN nor -inf (-inf when none) and how many there are: eight
// independent lanes, branch-free, because the build's -O2 does not vectorize and one running
// max is a chain of dependent compares (std::max_element took 4.8 ns an element).
float BestCandidate(const float* logits, int vocab, int* candidates) {
  float lane[8];
  int count[8] = {};
  std::fill(lane, lane + 8, -INFINITY);
  int i = 0;
  for (; i + 8 <= vocab; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float x = logits[i + j];
      lane[j] = x > lane[j] ? x : lane[j];  // false for NaN
      count[j] += x > -INFINITY;
    }
  for (; i < vocab; ++i) {
    lane[0] = logits[i] > lane[0] ? logits[i] : lane[0];
    count[0] += logits[i] > -INFINITY;
  }
  *candidates = 0;
  for (int j = 0; j < 8; ++j) *candidates += count[j];
  return *std::max_element(lane, lane + 8);
}

}  // namespace

// std::max_element's answer (the first largest; a NaN first element wins, later NaNs never do),
// from BestCandidate and one search for its first occurrence.
int ArgmaxToken(const float* logits, int vocab) {
  if (vocab <= 0 || std::isnan(logits[0])) return 0;
  int candidates = 0;
  float best = BestCandidate(logits, vocab, &candidates);
  if (best == -INFINITY) return 0;  // only -inf and NaN after a non-NaN first: the first (-inf) wins
  for (int i = 0; i < vocab; ++i)
    if (logits[i] == best) return i;
  return 0;
}

double LogSoftmaxAt(const float* logits, int vocab, int token) {
  double mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(logits[i] - mx);
  return logits[token] - mx - std::log(sum);
}

int ChooseToken(const float* logits, int vocab, const TokenCuts& cuts, double u) {
  int candidates = 0;
  const float best = BestCandidate(logits, vocab, &candidates);
  if (!std::isfinite(best)) return ArgmaxToken(logits, vocab);

  Scratch& s = ThreadScratch(vocab);
  const double temperature = cuts.temperature;
  auto mass = [&](int i) { return std::exp((static_cast<double>(logits[i]) - best) / temperature); };
  const bool cut_k = cuts.top_k > 0 && cuts.top_k < candidates;
  const bool cut_p = cuts.top_p < 1.f;
  s.ids.clear();
  if (!cut_k) {  // every candidate has a mass (the draw or top-p's total needs it)
    for (int i = 0; i < vocab; ++i)
      if (logits[i] > -INFINITY) {
        s.p[i] = mass(i);
        s.ids.push_back(i);
      }
  }
  if (cut_k || cut_p) {
    s.ranks.resize(vocab);
    size_t n = 0;
    for (int i = 0; i < vocab; ++i) {  // the candidates' keys in id order, written branch-free
      s.ranks[n] = RankKey(logits[i], i);
      n += logits[i] > -INFINITY;
    }
    s.ranks.resize(n);
  }
  if (cut_k) {  // the k best, ascending by rank; only they need a mass
    BestKeys(s.ranks, 0, static_cast<size_t>(cuts.top_k), &s.best);
    s.ranks.swap(s.best);
    for (uint64_t r : s.ranks) s.ids.push_back(IdOf(r));
    std::sort(s.ids.begin(), s.ids.end());
    for (int i : s.ids) s.p[i] = mass(i);
  }
  if (cut_p) {
    double target = 0;
    for (int i : s.ids) target += s.p[i];  // the total, in id order
    target *= cuts.top_p;
    // The rank prefix reaching the target. The k best are sorted already. Otherwise the 64 best
    // usually suffice (a model's row is peaked); where they do not (a flat row keeps thousands),
    // every key is bucketed by rank and the buckets are sorted one at a time up to the cut.
    uint64_t last = 0;
    bool reached = false;
    if (cut_k) {
      reached = ReachMass(&s.ranks, s.p, target, &last);
    } else {
      BestKeys(s.ranks, 0, 64, &s.best);
      reached = ReachMass(&s.best, s.p, target, &last);
      if (!reached && s.best.size() < s.ranks.size()) {
        BucketByRank(s.ranks, &s.best, &s.buckets);
        reached = ReachMass(&s.best, s.p, target, &last);
      }
    }
    if (reached) s.ids.erase(std::remove_if(s.ids.begin(), s.ids.end(), [&](int i) { return RankKey(logits[i], i) > last; }),
                             s.ids.end());
  }
  if (cuts.min_p > 0.f)  // p_best = 1 always stays
    s.ids.erase(std::remove_if(s.ids.begin(), s.ids.end(),
                               [&](int i) { return s.p[i] < cuts.min_p && s.p[i] != 1.0; }),
                s.ids.end());
  const int chosen = Walk(s.ids, s.p, u);
  return chosen >= 0 ? chosen : ArgmaxToken(logits, vocab);
}

}  // namespace strata
