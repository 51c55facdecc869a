#include "cache/kv_storage.h"

#include "runtime/base/status.h"

namespace strata {

absl::StatusOr<KvStorage> KvStorage::Create(Backend* backend, const KvLayout& layout,
                                            const KvCapacity& capacity) {
  KvStorage s;
  s.layout_ = layout;
  for (const KvBank& b : layout.banks) {
    const int64_t rows = b.window > 0 ? int64_t{b.window} * capacity.max_seqs
                                      : capacity.num_blocks * layout.block_size;
    const int64_t bytes = rows * (b.bytes_per_row / 2);
    ASSIGN_OR_RETURN(DeviceBuffer k, backend->Allocate(static_cast<size_t>(bytes)));
    ASSIGN_OR_RETURN(DeviceBuffer v, backend->Allocate(static_cast<size_t>(bytes)));
    // Zeroed now, so that the memory is really there before serving starts: on the CPU the
    // first write to each page would otherwise fault during decode steps (measured: 2% of a
    // Pythia-160M decode step), and a cache never holds garbage.
    backend->Zero(k.get(), static_cast<size_t>(bytes));
    backend->Zero(v.get(), static_cast<size_t>(bytes));
    s.k_.push_back(std::move(k));
    s.v_.push_back(std::move(v));
    s.allocated_bytes_ += 2 * bytes;
  }
  return s;
}

KvBankView KvStorage::View(int i) const {
  const KvBank& b = layout_.banks[i];
  KvBankView v;
  v.k = k_[i].get();
  v.v = v_[i].get();
  v.dtype = layout_.dtype;
  v.num_kv_heads = b.num_kv_heads;
  v.head_dim = b.head_dim;
  v.block_size = layout_.block_size;
  v.ring_size = b.window;
  return v;
}

}  // namespace strata
