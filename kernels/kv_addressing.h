// File: kernels/kv_addressing.h
// Where position `pos` of sequence `seq` lives inside a bank: the one rule shared by every
// backend's KV write and attention read.
#pragma once

#include <cstddef>

#include "kernels/backend.h"

namespace strata {

#if defined(__CUDACC__)
#define STRATA_HOST_DEVICE __host__ __device__
#else
#define STRATA_HOST_DEVICE
#endif

// Row index (in units of num_kv_heads * head_dim elements) of a bank.
STRATA_HOST_DEVICE inline size_t KvRow(const KvBankView& bank, const BatchLayout& batch, int seq, int pos) {
  if (bank.ring_size > 0)
    return static_cast<size_t>(batch.seq_slot[seq]) * bank.ring_size + pos % bank.ring_size;
  const int block = batch.block_table[static_cast<size_t>(seq) * batch.max_blocks + pos / bank.block_size];
  return static_cast<size_t>(block) * bank.block_size + pos % bank.block_size;
}

}  // namespace strata
