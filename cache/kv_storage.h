// File: cache/kv_storage.h
// The memory of every bank of a KvLayout on one backend: paged banks get num_blocks * block_size
// rows, ring banks get max_seqs * window rows.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "cache/kv_layout.h"
#include "kernels/backend.h"

namespace strata {

class KvStorage {
 public:
  static absl::StatusOr<KvStorage> Create(Backend* backend, const KvLayout& layout,
                                          const KvCapacity& capacity);
  // The view of bank `bank_index` (an index into layout.banks).
  KvBankView View(int bank_index) const;
  int64_t allocated_bytes() const { return allocated_bytes_; }
  // Copies block `src`'s rows to block `dst` in every paged bank (K and V).
  void CopyBlock(Backend* backend, int src, int dst) const;
  const KvLayout& layout() const { return layout_; }
  const KvCapacity& capacity() const { return capacity_; }

 private:
  KvLayout layout_;
  KvCapacity capacity_;
  std::vector<DeviceBuffer> k_, v_;
  int64_t allocated_bytes_ = 0;
};

}  // namespace strata
