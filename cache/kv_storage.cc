#include "cache/kv_storage.h"

#include "runtime/base/status.h"

namespace strata {

absl::StatusOr<KvStorage> KvStorage::Create(Backend* backend, const KvLayout& layout,
                                            const KvCapacity& capacity) {
  KvStorage s;
  s.layout_ = layout;
  s.capacity_ = capacity;
  for (const KvBank& b : layout.banks) {
    const int64_t rows = b.window > 0 ? int64_t{b.window} * capacity.max_seqs
                                      : capacity.num_blocks * layout.block_size;
    const int64_t bytes = rows * (b.bytes_per_row / 2);
    // Zeroed (a cache never holds garbage). On the CPU these are fresh zero pages the kernel
    // supplies on first write, so a budget costs resident memory only as sequences fill it.
    ASSIGN_OR_RETURN(DeviceBuffer k, backend->AllocateZeroed(static_cast<size_t>(bytes)));
    ASSIGN_OR_RETURN(DeviceBuffer v, backend->AllocateZeroed(static_cast<size_t>(bytes)));
    s.k_.push_back(std::move(k));
    s.v_.push_back(std::move(v));
    s.allocated_bytes_ += 2 * bytes;
  }
  return s;
}

void KvStorage::CopyBlock(Backend* backend, int src, int dst) const {
  for (size_t i = 0; i < layout_.banks.size(); ++i) {
    const KvBank& b = layout_.banks[i];
    if (b.window > 0) continue;  // ring banks are per slot, not per block
    const size_t block_bytes = static_cast<size_t>(layout_.block_size) * static_cast<size_t>(b.bytes_per_row / 2);
    for (const DeviceBuffer* buf : {&k_[i], &v_[i]}) {
      char* base = static_cast<char*>(buf->get());
      backend->CopyDeviceToDevice(base + static_cast<size_t>(dst) * block_bytes, base + static_cast<size_t>(src) * block_bytes,
                                  block_bytes);
    }
  }
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
