// CUDA-graph capture sizes for decode steps (kernels/cuda/graph_buckets.h): vLLM's default list,
// the bucket and padding of every batch size, and the configuration errors.
#include "kernels/cuda/graph_buckets.h"

#include <gtest/gtest.h>

#include <vector>

namespace strata {
namespace {

GraphBuckets Default(int max_batch) {
  absl::StatusOr<GraphBuckets> b = GraphBuckets::Default(max_batch);
  EXPECT_TRUE(b.ok()) << b.status();
  return *std::move(b);
}

TEST(GraphBuckets, DefaultIsOneTwoFourThenMultiplesOfEight) {
  EXPECT_EQ(Default(64).sizes(), (std::vector<int>{1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64}));
  EXPECT_EQ(Default(1).sizes(), (std::vector<int>{1}));
  EXPECT_EQ(Default(2).sizes(), (std::vector<int>{1, 2}));
  // A maximum that is not in the scheme is added, so every batch up to it is captured.
  EXPECT_EQ(Default(3).sizes(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Default(6).sizes(), (std::vector<int>{1, 2, 4, 6}));
  EXPECT_EQ(Default(20).sizes(), (std::vector<int>{1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(Default(256).sizes().size(), 3u + 32u);
  EXPECT_EQ(Default(256).max_size(), 256);
}

// For every batch 1..max+5: the smallest capture size not below it, its padding, eager above.
void ExpectBucketsOf(const GraphBuckets& b) {
  const std::vector<int>& sizes = b.sizes();
  int previous_bucket = 0;
  for (int batch = 1; batch <= b.max_size() + 5; ++batch) {
    SCOPED_TRACE(::testing::Message() << "batch " << batch);
    int expected = 0;  // the smallest size >= batch, by a plain scan
    for (int s : sizes)
      if (s >= batch) {
        expected = s;
        break;
      }
    const std::optional<int> bucket = b.BucketFor(batch);
    const GraphStepShape shape = b.ShapeFor(batch);
    EXPECT_EQ(shape.real, batch);
    if (expected == 0) {
      EXPECT_FALSE(bucket.has_value());
      EXPECT_FALSE(shape.captured);
      EXPECT_EQ(shape.bucket, batch);  // eager: the batch as it is
      EXPECT_EQ(shape.padding, 0);
      continue;
    }
    ASSERT_TRUE(bucket.has_value());
    EXPECT_EQ(*bucket, expected);
    EXPECT_TRUE(shape.captured);
    EXPECT_EQ(shape.bucket, expected);
    EXPECT_EQ(shape.padding, expected - batch);
    EXPECT_GE(shape.padding, 0);
    EXPECT_GE(*bucket, previous_bucket);  // monotonic in the batch
    previous_bucket = *bucket;
  }
}

TEST(GraphBuckets, BucketAndPaddingOfEveryBatch) {
  for (int max_batch : {1, 2, 3, 4, 5, 8, 9, 17, 64, 100, 256}) {
    SCOPED_TRACE(::testing::Message() << "max " << max_batch);
    ExpectBucketsOf(Default(max_batch));
  }
  const GraphBuckets b = Default(64);
  EXPECT_EQ(b.ShapeFor(3).bucket, 4);
  EXPECT_EQ(b.ShapeFor(3).padding, 1);
  EXPECT_EQ(b.ShapeFor(9).bucket, 16);
  EXPECT_EQ(b.ShapeFor(9).padding, 7);
  EXPECT_EQ(b.ShapeFor(64).padding, 0);
  EXPECT_FALSE(b.ShapeFor(65).captured);
}

TEST(GraphBuckets, CustomSizes) {
  absl::StatusOr<GraphBuckets> b = GraphBuckets::FromSizes({1, 3, 10, 12});
  ASSERT_TRUE(b.ok()) << b.status();
  ExpectBucketsOf(*b);
  EXPECT_EQ(b->BucketFor(4), 10);
  EXPECT_EQ(b->ShapeFor(11).padding, 1);
  // A list that does not start at 1 still pads the smallest batches up to its first size.
  absl::StatusOr<GraphBuckets> from_eight = GraphBuckets::FromSizes({8, 16});
  ASSERT_TRUE(from_eight.ok());
  EXPECT_EQ(from_eight->ShapeFor(1).padding, 7);
  ExpectBucketsOf(*from_eight);
}

TEST(GraphBuckets, ConfigurationErrors) {
  for (int max_batch : {0, -1, -64}) {
    const absl::StatusOr<GraphBuckets> b = GraphBuckets::Default(max_batch);
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << max_batch;
  }
  const std::vector<std::vector<int>> bad = {{}, {0}, {-2, 4}, {1, 2, 2}, {4, 2}, {1, 8, 4, 16}};
  for (const std::vector<int>& sizes : bad) {
    const absl::StatusOr<GraphBuckets> b = GraphBuckets::FromSizes(sizes);
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << ::testing::PrintToString(sizes);
  }
  EXPECT_NE(GraphBuckets::FromSizes({1, 2, 2}).status().message().find("increase"), std::string::npos);
}

TEST(GraphBuckets, PaddingSequencesReadOnlyTheReservedBlock) {
  // A cache of 1000 blocks and 64 ring slots reserves block 1000 and slot 64 for padding.
  const PaddingSequence p = MakePaddingSequence(1000, 64);
  EXPECT_EQ(p.context_len, 0);  // its only key is its own step row: position 0, in block `block`
  EXPECT_EQ(p.block, 1000);
  EXPECT_EQ(p.slot, 64);
  EXPECT_EQ(p.token, 0);
}

}  // namespace
}  // namespace strata
