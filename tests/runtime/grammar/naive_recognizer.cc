#include "tests/runtime/grammar/naive_recognizer.h"

#include <set>
#include <tuple>
#include <utility>

namespace strata::grammar {
namespace {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

bool IsSurrogate(uint32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

// The length of the UTF-8 sequence a lead byte starts, its payload bits and the smallest code
// point of that length (anything below is an overlong encoding); false for a byte that cannot
// start a code point.
bool LeadByte(unsigned char b, int* len, uint32_t* bits, uint32_t* min) {
  if (b < 0x80) {
    *len = 1, *bits = b, *min = 0;
  } else if (b >= 0xC2 && b <= 0xDF) {
    *len = 2, *bits = b & 0x1F, *min = 0x80;
  } else if (b >= 0xE0 && b <= 0xEF) {
    *len = 3, *bits = b & 0x0F, *min = 0x800;
  } else if (b >= 0xF0 && b <= 0xF4) {
    *len = 4, *bits = b & 0x07, *min = 0x10000;
  } else {
    return false;
  }
  return true;
}

bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// One strict UTF-8 code point at the start of `s`: its length, or 0 if there is none (invalid,
// or cut off by the end of `s`).
int DecodeUtf8(std::string_view s, uint32_t* out) {
  if (s.empty()) return 0;
  int len;
  uint32_t c, min;
  if (!LeadByte(static_cast<unsigned char>(s[0]), &len, &c, &min)) return 0;
  if (static_cast<int>(s.size()) < len) return 0;
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (!IsContinuation(b)) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min || c > kMaxCodePoint || IsSurrogate(c)) return 0;
  *out = c;
  return len;
}

}  // namespace

NaiveRecognizer::NaiveRecognizer(const Grammar& g) {
  num_rules_ = static_cast<int>(g.rules.size());
  for (int r = 0; r < num_rules_; ++r) NewNonterminal();
  for (int r = 0; r < num_rules_; ++r) {
    std::vector<Symbol> rhs;
    Lower(g.rules[r].body, &rhs);
    AddProduction(r, std::move(rhs));
  }
  // The augmented start S' -> root, whose completion over the whole input means a sentence.
  const int start = NewNonterminal();
  if (g.root >= 0 && g.root < num_rules_) {
    start_production_ = static_cast<int>(productions_.size());
    AddProduction(start, {{Symbol::Kind::kNonterminal, g.root}});
  }
  ComputeProductiveAndNullable();
}

int NaiveRecognizer::NewNonterminal() {
  by_lhs_.emplace_back();
  return static_cast<int>(by_lhs_.size()) - 1;
}

void NaiveRecognizer::AddProduction(int lhs, std::vector<Symbol> rhs) {
  by_lhs_[lhs].push_back(static_cast<int>(productions_.size()));
  productions_.push_back({lhs, std::move(rhs)});
}

void NaiveRecognizer::Lower(const Expr& e, std::vector<Symbol>* out) {
  switch (e.kind) {
    case Expr::Kind::kBytes:
      for (unsigned char b : e.bytes) out->push_back({Symbol::Kind::kByte, b});
      return;
    case Expr::Kind::kCharClass:
      classes_.push_back({e.ranges, e.negated});
      out->push_back({Symbol::Kind::kClass, static_cast<int>(classes_.size()) - 1});
      return;
    case Expr::Kind::kRuleRef:
      // A dangling reference: a fresh nonterminal with no productions, the empty language.
      out->push_back({Symbol::Kind::kNonterminal,
                      e.rule >= 0 && e.rule < num_rules_ ? e.rule : NewNonterminal()});
      return;
    case Expr::Kind::kSequence:
      for (const Expr& item : e.items) Lower(item, out);
      return;
    case Expr::Kind::kChoice:
    case Expr::Kind::kRepeat:
      out->push_back({Symbol::Kind::kNonterminal, LowerToNonterminal(e)});
      return;
  }
}

int NaiveRecognizer::LowerToNonterminal(const Expr& e) {
  const int n = NewNonterminal();
  if (e.kind == Expr::Kind::kChoice) {
    for (const Expr& item : e.items) {  // no items: no productions, the empty language
      std::vector<Symbol> rhs;
      Lower(item, &rhs);
      AddProduction(n, std::move(rhs));
    }
    return n;
  }
  if (e.kind != Expr::Kind::kRepeat) {
    std::vector<Symbol> rhs;
    Lower(e, &rhs);
    AddProduction(n, std::move(rhs));
    return n;
  }
  // Repeat: X^min, then X* (unbounded) or up to max-min optional X's, nested so that the
  // grammar stays unambiguous: O_k -> "" | X O_{k-1}.
  if (e.items.empty() || (e.max >= 0 && e.max < e.min) || e.min < 0) return n;  // malformed
  const int x = NewNonterminal();
  {
    std::vector<Symbol> rhs;
    Lower(e.items[0], &rhs);
    AddProduction(x, std::move(rhs));
  }
  const Symbol xs{Symbol::Kind::kNonterminal, x};
  std::vector<Symbol> rhs(e.min, xs);
  if (e.max < 0) {
    const int star = NewNonterminal();
    AddProduction(star, {});
    AddProduction(star, {xs, {Symbol::Kind::kNonterminal, star}});
    rhs.push_back({Symbol::Kind::kNonterminal, star});
  } else if (e.max > e.min) {
    int previous = -1;
    for (int k = 1; k <= e.max - e.min; ++k) {
      const int opt = NewNonterminal();
      AddProduction(opt, {});
      std::vector<Symbol> more = {xs};
      if (previous >= 0) more.push_back({Symbol::Kind::kNonterminal, previous});
      AddProduction(opt, std::move(more));
      previous = opt;
    }
    rhs.push_back({Symbol::Kind::kNonterminal, previous});
  }
  AddProduction(n, std::move(rhs));
  return n;
}

bool NaiveRecognizer::ClassMatches(int cls, uint32_t c) const {
  if (c > kMaxCodePoint || IsSurrogate(c)) return false;
  bool in = false;
  for (auto [lo, hi] : classes_[cls].ranges) in = in || (lo <= c && c <= hi);
  return in != classes_[cls].negated;
}

bool NaiveRecognizer::ClassMatchesSomeIn(int cls, uint32_t lo, uint32_t hi) const {
  for (uint32_t c = lo; c <= hi && c <= kMaxCodePoint; ++c) {  // brute force: obviously right
    if (ClassMatches(cls, c)) return true;
  }
  return false;
}

bool NaiveRecognizer::ClassMatchesPrefix(int cls, std::string_view tail) const {
  int len;
  uint32_t bits, min;
  if (tail.empty() || !LeadByte(static_cast<unsigned char>(tail[0]), &len, &bits, &min)) {
    return false;
  }
  if (static_cast<int>(tail.size()) >= len) return false;
  uint32_t lo = bits, hi = bits;
  for (size_t i = 1; i < tail.size(); ++i) {
    const auto b = static_cast<unsigned char>(tail[i]);
    if (!IsContinuation(b)) return false;
    lo = (lo << 6) | (b & 0x3F);
    hi = (hi << 6) | (b & 0x3F);
  }
  // The code points whose encoding starts with `tail`: the missing bytes anywhere in 80..BF.
  for (size_t i = tail.size(); i < static_cast<size_t>(len); ++i) {
    lo = lo << 6;
    hi = (hi << 6) | 0x3F;
  }
  if (lo < min) lo = min;  // below: overlong encodings, not code points
  if (hi > kMaxCodePoint) hi = kMaxCodePoint;
  return lo <= hi && ClassMatchesSomeIn(cls, lo, hi);
}

bool NaiveRecognizer::SymbolProductive(const Symbol& s) const {
  switch (s.kind) {
    case Symbol::Kind::kByte: return true;
    case Symbol::Kind::kClass: return class_nonempty_[s.index];
    case Symbol::Kind::kNonterminal: return productive_[s.index];
  }
  return false;
}

void NaiveRecognizer::ComputeProductiveAndNullable() {
  class_nonempty_.resize(classes_.size());
  for (size_t c = 0; c < classes_.size(); ++c) {
    class_nonempty_[c] = ClassMatchesSomeIn(static_cast<int>(c), 0, kMaxCodePoint);
  }
  productive_.assign(by_lhs_.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (const Production& p : productions_) {
      if (productive_[p.lhs]) continue;
      bool all = true;
      for (const Symbol& s : p.rhs) all = all && SymbolProductive(s);
      if (all) productive_[p.lhs] = changed = true;
    }
  }
  // Productions with an unproductive symbol can never finish: the parser never predicts them,
  // so every item in the chart can be completed into a sentence.
  production_ok_.resize(productions_.size());
  for (size_t i = 0; i < productions_.size(); ++i) {
    bool all = true;
    for (const Symbol& s : productions_[i].rhs) all = all && SymbolProductive(s);
    production_ok_[i] = all;
  }
  nullable_.assign(by_lhs_.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < productions_.size(); ++i) {
      const Production& p = productions_[i];
      if (nullable_[p.lhs] || !production_ok_[i]) continue;
      bool all = true;
      for (const Symbol& s : p.rhs) {
        all = all && s.kind == Symbol::Kind::kNonterminal && nullable_[s.index];
      }
      if (all) nullable_[p.lhs] = changed = true;
    }
  }
}

NaiveRecognizer::Chart NaiveRecognizer::Run(std::string_view bytes) const {
  const size_t n = bytes.size();
  Chart chart(n + 1);
  std::vector<std::set<std::tuple<int, int, int>>> seen(n + 1);
  auto add = [&](size_t set, Item item) {
    if (seen[set].insert({item.production, item.dot, item.origin}).second) {
      chart[set].push_back(item);
    }
  };
  if (start_production_ >= 0 && production_ok_[start_production_]) add(0, {start_production_, 0, 0});
  for (size_t i = 0; i <= n; ++i) {
    // chart[i] grows while we walk it; index, and copy items before adding.
    for (size_t k = 0; k < chart[i].size(); ++k) {
      const Item item = chart[i][k];
      const Production& p = productions_[item.production];
      const Item advanced{item.production, item.dot + 1, item.origin};
      if (item.dot == static_cast<int>(p.rhs.size())) {  // complete: advance the waiting items
        for (size_t j = 0; j < chart[item.origin].size(); ++j) {
          const Item parent = chart[item.origin][j];
          const auto& rhs = productions_[parent.production].rhs;
          if (parent.dot < static_cast<int>(rhs.size()) &&
              rhs[parent.dot].kind == Symbol::Kind::kNonterminal && rhs[parent.dot].index == p.lhs) {
            add(i, {parent.production, parent.dot + 1, parent.origin});
          }
        }
        continue;
      }
      const Symbol& next = p.rhs[item.dot];
      switch (next.kind) {
        case Symbol::Kind::kNonterminal:
          for (int q : by_lhs_[next.index]) {
            if (production_ok_[q]) add(i, {q, 0, static_cast<int>(i)});
          }
          // Aycock-Horspool: a nullable nonterminal may be skipped right away, since its empty
          // completion at this position may already have been processed.
          if (nullable_[next.index]) add(i, advanced);
          break;
        case Symbol::Kind::kByte:
          if (i < n && static_cast<unsigned char>(bytes[i]) == next.index) add(i + 1, advanced);
          break;
        case Symbol::Kind::kClass: {
          uint32_t c;
          const int len = DecodeUtf8(bytes.substr(i), &c);
          if (len > 0 && ClassMatches(next.index, c)) add(i + len, advanced);
          break;
        }
      }
    }
  }
  return chart;
}

bool NaiveRecognizer::IsSentence(std::string_view bytes) const {
  if (start_production_ < 0) return false;
  const Chart chart = Run(bytes);
  for (const Item& item : chart[bytes.size()]) {
    if (item == Item{start_production_, 1, 0}) return true;
  }
  return false;
}

bool NaiveRecognizer::IsViablePrefix(std::string_view bytes) const {
  const Chart chart = Run(bytes);
  const size_t n = bytes.size();
  // Every item in the chart is built from productive productions, so any item at the end can
  // be finished into a sentence.
  if (!chart[n].empty()) return true;
  // Or the input ends inside a code point that a class waiting at its start could accept.
  for (size_t i = n >= 3 ? n - 3 : 0; i < n; ++i) {
    for (const Item& item : chart[i]) {
      const auto& rhs = productions_[item.production].rhs;
      if (item.dot < static_cast<int>(rhs.size()) && rhs[item.dot].kind == Symbol::Kind::kClass &&
          ClassMatchesPrefix(rhs[item.dot].index, bytes.substr(i))) {
        return true;
      }
    }
  }
  return false;
}

bool IsSentence(const Grammar& g, std::string_view bytes) {
  return NaiveRecognizer(g).IsSentence(bytes);
}

bool IsViablePrefix(const Grammar& g, std::string_view bytes) {
  return NaiveRecognizer(g).IsViablePrefix(bytes);
}

}  // namespace strata::grammar
