// CUDA-graph capture sizes for decode steps (graph_buckets.h says how they are used).
#include "kernels/cuda/graph_buckets.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/base/status.h"

namespace strata {

PaddingSequence MakePaddingSequence(int reserved_block, int reserved_slot) {
  return {.token = 0, .context_len = 0, .block = reserved_block, .slot = reserved_slot};
}

absl::StatusOr<GraphBuckets> GraphBuckets::Default(int max_batch) {
  if (max_batch < 1)
    return absl::InvalidArgumentError(absl::StrCat("CUDA graph capture: the largest batch ", max_batch,
                                                   " must be at least 1"));
  std::vector<int> sizes;
  for (int s : {1, 2, 4})
    if (s <= max_batch) sizes.push_back(s);
  for (int s = 8; s <= max_batch; s += 8) sizes.push_back(s);
  if (sizes.back() != max_batch) sizes.push_back(max_batch);  // e.g. 3, or 20 after 16
  return GraphBuckets(std::move(sizes));
}

absl::StatusOr<GraphBuckets> GraphBuckets::FromSizes(std::vector<int> sizes) {
  if (sizes.empty()) return absl::InvalidArgumentError("CUDA graph capture sizes: the list is empty");
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 1)
      return absl::InvalidArgumentError(absl::StrCat("CUDA graph capture sizes: size ", sizes[i], " at index ", i,
                                                     " must be at least 1"));
    if (i > 0 && sizes[i] <= sizes[i - 1])
      return absl::InvalidArgumentError(absl::StrCat("CUDA graph capture sizes must increase: ", sizes[i],
                                                     " at index ", i, " follows ", sizes[i - 1]));
  }
  return GraphBuckets(std::move(sizes));
}

std::optional<int> GraphBuckets::BucketFor(int batch) const {
  STRATA_CHECK(batch >= 1);
  const auto it = std::lower_bound(sizes_.begin(), sizes_.end(), batch);
  if (it == sizes_.end()) return std::nullopt;
  return *it;
}

GraphStepShape GraphBuckets::ShapeFor(int batch) const {
  const std::optional<int> bucket = BucketFor(batch);
  if (!bucket) return {.captured = false, .bucket = batch, .real = batch, .padding = 0};
  return {.captured = true, .bucket = *bucket, .real = batch, .padding = *bucket - batch};
}

}  // namespace strata
