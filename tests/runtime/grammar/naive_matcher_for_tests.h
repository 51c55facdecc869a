// File: tests/runtime/grammar/naive_matcher_for_tests.h
// A deliberately simple oracle for tests: does a text match a Grammar (or an Expr) as a whole?
// Set-of-positions semantics over the UTF-8 bytes: Match(expr, pos) is the set of positions where
// a match of expr starting at pos can end, memoized per (expr node, pos). A rule entered again at
// the same position before it finished is left recursion; that path matches nothing.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/grammar/grammar.h"

namespace strata::grammar::testing {

class NaiveMatcher {
 public:
  NaiveMatcher(const Grammar& g, std::string_view text) : g_(&g), text_(text) {}
  NaiveMatcher(std::string_view text) : g_(nullptr), text_(text) {}

  std::set<size_t> Match(const Expr& e, size_t pos) {
    const auto key = std::make_pair(&e, pos);
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
    std::set<size_t> out = Compute(e, pos);
    memo_[key] = out;
    return out;
  }

 private:
  std::set<size_t> Compute(const Expr& e, size_t pos) {
    std::set<size_t> out;
    switch (e.kind) {
      case Expr::Kind::kBytes:
        if (text_.substr(pos, e.bytes.size()) == e.bytes) out.insert(pos + e.bytes.size());
        break;
      case Expr::Kind::kCharClass: {
        uint32_t cp = 0;
        const size_t len = DecodeUtf8(pos, &cp);
        if (len > 0 && InClass(e, cp)) out.insert(pos + len);
        break;
      }
      case Expr::Kind::kRuleRef: {
        if (g_ == nullptr || e.rule < 0 || e.rule >= static_cast<int>(g_->rules.size())) break;
        const auto key = std::make_pair(e.rule, pos);
        auto it = rule_memo_.find(key);
        if (it != rule_memo_.end()) return it->second;
        if (!in_progress_.insert(key).second) break;  // left recursion
        out = Match(g_->rules[e.rule].body, pos);
        in_progress_.erase(key);
        rule_memo_[key] = out;
        break;
      }
      case Expr::Kind::kSequence: {
        std::set<size_t> current = {pos};
        for (const Expr& item : e.items) {
          std::set<size_t> next;
          for (size_t p : current) {
            std::set<size_t> r = Match(item, p);
            next.insert(r.begin(), r.end());
          }
          current = std::move(next);
          if (current.empty()) break;
        }
        out = std::move(current);
        break;
      }
      case Expr::Kind::kChoice:
        for (const Expr& item : e.items) {
          std::set<size_t> r = Match(item, pos);
          out.insert(r.begin(), r.end());
        }
        break;
      case Expr::Kind::kRepeat: {
        std::set<size_t> frontier = {pos};
        std::set<size_t> seen_after_min;  // positions reached with count >= min
        if (e.min == 0) seen_after_min.insert(pos);
        for (int count = 1; !frontier.empty() && (e.max < 0 || count <= e.max); ++count) {
          std::set<size_t> next;
          for (size_t p : frontier) {
            std::set<size_t> r = Match(e.items[0], p);
            next.insert(r.begin(), r.end());
          }
          if (count >= e.min) {
            // Past min only new positions matter (keeps unbounded repeats of nullable items finite).
            std::set<size_t> fresh;
            for (size_t p : next)
              if (seen_after_min.insert(p).second) fresh.insert(p);
            next = std::move(fresh);
          }
          frontier = std::move(next);
        }
        out = std::move(seen_after_min);
        break;
      }
    }
    return out;
  }

  static bool InClass(const Expr& e, uint32_t cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    bool in = false;
    for (auto [lo, hi] : e.ranges)
      if (cp >= lo && cp <= hi) in = true;
    return in != e.negated;
  }

  // Length of the well-formed UTF-8 character at pos (0: none).
  size_t DecodeUtf8(size_t pos, uint32_t* cp) const {
    if (pos >= text_.size()) return 0;
    const unsigned char b0 = static_cast<unsigned char>(text_[pos]);
    size_t len = b0 < 0x80 ? 1 : (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || pos + len > text_.size()) return 0;
    uint32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(text_[pos + k]);
      if ((b & 0xC0) != 0x80) return 0;
      c = (c << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < kMin[len] || c > 0x10FFFF) return 0;
    *cp = c;
    return len;
  }

  const Grammar* g_;
  std::string_view text_;
  std::map<std::pair<const Expr*, size_t>, std::set<size_t>> memo_;
  std::map<std::pair<int, size_t>, std::set<size_t>> rule_memo_;
  std::set<std::pair<int, size_t>> in_progress_;
};

// Whether `text` as a whole matches the grammar's root rule.
inline bool FullMatch(const Grammar& g, std::string_view text) {
  if (g.root < 0 || g.root >= static_cast<int>(g.rules.size())) return false;
  NaiveMatcher m(g, text);
  return m.Match(g.rules[g.root].body, 0).count(text.size()) > 0;
}

// Whether `text` as a whole matches `e` (which must not refer to rules).
inline bool FullMatch(const Expr& e, std::string_view text) {
  NaiveMatcher m(text);
  return m.Match(e, 0).count(text.size()) > 0;
}

}  // namespace strata::grammar::testing
