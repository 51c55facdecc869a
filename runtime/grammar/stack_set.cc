#include "runtime/grammar/stack_set.h"

namespace strata::grammar {

int32_t StackStore::Intern(int32_t rule, int32_t state, int32_t parent) {
  std::vector<int32_t>& bucket = index_[Key(rule, state, parent)];
  for (int32_t id : bucket) {
    const StackNode& n = nodes_[id];
    if (n.rule == rule && n.state == state && n.parent == parent) return id;
  }
  const int32_t id = static_cast<int32_t>(nodes_.size());
  nodes_.push_back({rule, state, parent});
  stamp_.push_back(0);
  bucket.push_back(id);
  if (memoize_) {
    successor_.resize(successor_.size() + 256, -2);
    advanced_.resize(advanced_.size() + 256, nullptr);
  }
  return id;
}

int32_t StackStore::Successor(int32_t id, uint8_t b) {
  if (memoize_ && successor_[static_cast<size_t>(id) * 256 + b] != -2) return successor_[static_cast<size_t>(id) * 256 + b];
  const StackNode n = nodes_[id];
  const int32_t t = a_->rules[n.rule].states[n.state].Next(b);
  const int32_t next = t < 0 ? -1 : Intern(n.rule, t, n.parent);
  if (memoize_) successor_[static_cast<size_t>(id) * 256 + b] = next;
  return next;
}

void StackStore::Close(int32_t id, StackSet* out) {
  if (stamp_[id] == epoch_) return;
  stamp_[id] = epoch_;
  const StackNode n = nodes_[id];  // copied: Intern below may move nodes_
  const DfaState& st = a_->rules[n.rule].states[n.state];
  if (!st.bytes.empty()) out->tops.push_back(id);
  for (const CallEdge& c : st.calls) {
    const int32_t ret = Intern(n.rule, c.return_state, n.parent);
    Close(Intern(c.rule, 0, ret), out);
  }
  if (st.accepting) {
    if (n.parent == kBottom)
      out->ends = true;
    else if (n.parent == kUnknown)
      out->escapes = true;
    else
      Close(n.parent, out);  // the callee is done: the caller goes on at its return state
  }
}

void StackStore::Start(int32_t node, StackSet* out) {
  out->Clear();
  ++epoch_;
  Close(node, out);
}

void StackStore::Advance(const StackSet& in, uint8_t b, StackSet* out) {
  out->Clear();
  ++epoch_;
  for (int32_t id : in.tops) {
    const int32_t next = Successor(id, b);
    if (next >= 0) Close(next, out);
  }
}

const StackSet& StackStore::AdvanceShared(const StackSet& in, uint8_t b, StackSet* scratch) {
  if (!memoize_ || in.tops.size() != 1) {
    Advance(in, b, scratch);
    return *scratch;
  }
  const size_t k = static_cast<size_t>(in.tops[0]) * 256 + b;
  if (advanced_[k] == nullptr) {
    Advance(in, b, scratch);
    sets_.push_back(*scratch);
    advanced_[k] = &sets_.back();  // Advance may have grown advanced_: index it only now
  }
  return *advanced_[k];
}

bool StackStore::Accepts(int32_t node, const char* bytes, size_t n) {
  Start(node, &scratch_a_);
  for (size_t i = 0; i < n; ++i) {
    Advance(scratch_a_, static_cast<uint8_t>(bytes[i]), &scratch_b_);
    std::swap(scratch_a_, scratch_b_);
    if (scratch_a_.tops.empty() && !scratch_a_.ends && !scratch_a_.escapes) return false;
    if (i + 1 < n && !scratch_a_.alive()) return false;
  }
  return true;
}

}  // namespace strata::grammar
