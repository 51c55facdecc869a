#include "cache/kv_layout.h"

#include <algorithm>

namespace strata {

KvLayout MakeKvLayout(const ModelSpec& spec, DType dtype, int block_size, int first_layer, int last_layer) {
  return MakeKvLayout(spec, dtype, block_size, ParallelLayout::Single(spec), first_layer, last_layer);
}

KvLayout MakeKvLayout(const ModelSpec& spec, DType dtype, int block_size, const ParallelLayout& parallel,
                      int first_layer, int last_layer) {
  if (last_layer < 0) last_layer = spec.num_layers - 1;
  KvLayout k;
  k.dtype = dtype;
  k.block_size = block_size;
  k.bank_of_layer.assign(spec.num_layers, -1);
  std::vector<int> producers;
  for (int l = first_layer; l <= last_layer; ++l) producers.push_back(spec.layers[l].kv_source);
  std::sort(producers.begin(), producers.end());
  producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  for (int p : producers) {
    const LayerSpec& ps = spec.layers[p];
    KvBank b;
    b.producer_layer = p;
    b.num_kv_heads = parallel.kv_heads_per_slice(ps.num_kv_heads);
    b.head_dim = spec.head_dim;
    b.window = ps.window;
    b.bytes_per_row = 2ll * b.num_kv_heads * b.head_dim * static_cast<int64_t>(DTypeSize(dtype));
    if (b.window > 0) {
      k.bytes_per_sequence += b.bytes_per_row * b.window;
    } else {
      k.bytes_per_token += b.bytes_per_row;
    }
    k.banks.push_back(b);
  }
  for (int l = 0; l < spec.num_layers; ++l) {
    auto it = std::find(producers.begin(), producers.end(), spec.layers[l].kv_source);
    if (it != producers.end()) k.bank_of_layer[l] = static_cast<int>(it - producers.begin());
  }
  return k;
}

KvCapacity ComputeKvCapacity(const KvLayout& layout, int64_t memory_bytes, int max_seqs) {
  KvCapacity c;
  c.max_seqs = max_seqs;
  const int64_t left = memory_bytes - layout.bytes_per_sequence * max_seqs;
  if (left < 0) return c;  // not even the ring banks of max_seqs sequences fit
  if (!layout.has_paged_banks()) {
    c.tokens = INT64_MAX;  // ring banks alone never run out
    return c;
  }
  c.num_blocks = left / layout.bytes_per_block();
  c.tokens = c.num_blocks * layout.block_size;
  return c;
}

}  // namespace strata
