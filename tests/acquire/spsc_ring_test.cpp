// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/spsc_ring.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using wattpipe::acquire::SpscRing;

TEST(SpscRing, CapacityRoundsUpToPowerOfTwo) {
  EXPECT_EQ(SpscRing<int>(5).capacity(), 8u);
  EXPECT_EQ(SpscRing<int>(8).capacity(), 8u);
  EXPECT_EQ(SpscRing<int>(1).capacity(), 2u);
}

TEST(SpscRing, TryPopFailsWhenEmpty) {
  SpscRing<int> r(4);
  int v = -1;
  EXPECT_FALSE(r.try_pop(v));
  EXPECT_EQ(v, -1);
  EXPECT_EQ(r.front(), nullptr);
  EXPECT_EQ(r.size_approx(), 0u);
}

TEST(SpscRing, TryPushFailsWhenFull) {
  SpscRing<int> r(4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(r.try_push(i));
  EXPECT_FALSE(r.try_push(99));
  EXPECT_EQ(r.claim(), nullptr);
  EXPECT_EQ(r.size_approx(), 4u);
  int v;
  ASSERT_TRUE(r.try_pop(v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(r.try_push(4));
  for (int want = 1; want <= 4; ++want) {
    ASSERT_TRUE(r.try_pop(v));
    EXPECT_EQ(v, want);
  }
  EXPECT_FALSE(r.try_pop(v));
}

TEST(SpscRing, MovePushLeavesValueWhenFull) {
  SpscRing<std::string> r(2);
  EXPECT_TRUE(r.try_push(std::string("a")));
  EXPECT_TRUE(r.try_push(std::string("b")));
  std::string keep = "kept";
  EXPECT_FALSE(r.try_push(std::move(keep)));
  EXPECT_EQ(keep, "kept");
}

TEST(SpscRing, WrapsAroundManyTimesWithDataIntact) {
  SpscRing<std::uint64_t> r(8);
  std::uint64_t next_in = 0, next_out = 0;
  for (int lap = 0; lap < 10000; ++lap) {
    const int n = 1 + lap % 8;
    for (int i = 0; i < n; ++i) ASSERT_TRUE(r.try_push(next_in++));
    for (int i = 0; i < n; ++i) {
      std::uint64_t v;
      ASSERT_TRUE(r.try_pop(v));
      ASSERT_EQ(v, next_out++);
    }
  }
  EXPECT_EQ(next_out, next_in);
}

TEST(SpscRing, BulkPushAndPopTakeWhatFitsAcrossTheWrap) {
  SpscRing<int> r(8);
  std::vector<int> in(6);
  std::iota(in.begin(), in.end(), 0);
  EXPECT_EQ(r.try_push_n(in), 6u);
  std::array<int, 4> out{};
  EXPECT_EQ(r.try_pop_n(out), 4u);
  EXPECT_EQ(out, (std::array<int, 4>{0, 1, 2, 3}));
  // 2 queued, 6 free; the next 6 straddle the end of the storage.
  std::vector<int> more{6, 7, 8, 9, 10, 11, 12};
  EXPECT_EQ(r.try_push_n(more), 6u);
  EXPECT_EQ(r.try_push_n(more), 0u);
  std::array<int, 16> all{};
  EXPECT_EQ(r.try_pop_n(all), 8u);
  EXPECT_EQ((std::vector<int>(all.begin(), all.begin() + 8)), (std::vector<int>{4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(r.try_pop_n(all), 0u);
}

TEST(SpscRing, ClaimPublishPeekRelease) {
  SpscRing<std::array<int, 16>> r(4);
  for (int b = 0; b < 3; ++b) {
    auto* slot = r.claim();
    ASSERT_NE(slot, nullptr);
    slot->fill(b);
    r.publish();
  }
  ASSERT_NE(r.peek(2), nullptr);
  EXPECT_EQ((*r.peek(2))[15], 2);
  EXPECT_EQ(r.peek(3), nullptr);
  EXPECT_EQ((*r.front())[0], 0);
  r.release(2);
  EXPECT_EQ((*r.front())[0], 2);
  EXPECT_EQ(r.size_approx(), 1u);
}

TEST(SpscRing, TwoThreadsSingleItemsArriveOnceInOrder) {
  constexpr std::uint64_t kItems = 2'000'000;
  SpscRing<std::uint64_t> r(1024);
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < kItems;) {
      if (r.try_push(i)) ++i;
    }
  });
  std::uint64_t expect = 0, v;
  while (expect < kItems) {
    if (r.try_pop(v)) {
      ASSERT_EQ(v, expect);
      ++expect;
    }
  }
  producer.join();
  EXPECT_FALSE(r.try_pop(v));
}

TEST(SpscRing, TwoThreadsBulkArriveOnceInOrder) {
  constexpr std::uint64_t kItems = 4'000'000;
  SpscRing<std::uint64_t> r(512);
  std::thread producer([&] {
    std::array<std::uint64_t, 97> batch;  // odd size: exercises every wrap offset
    std::uint64_t next = 0;
    while (next < kItems) {
      const std::size_t n = std::min<std::uint64_t>(batch.size(), kItems - next);
      for (std::size_t k = 0; k < n; ++k) batch[k] = next + k;
      std::size_t done = 0;
      while (done < n) done += r.try_push_n(std::span<const std::uint64_t>(batch.data() + done, n - done));
      next += n;
    }
  });
  std::array<std::uint64_t, 64> out;
  std::uint64_t expect = 0;
  while (expect < kItems) {
    const std::size_t n = r.try_pop_n(out);
    for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(out[k], expect++);
  }
  producer.join();
}

TEST(SpscRing, TwoThreadsZeroCopyBlocksIntact) {
  struct Block {
    std::uint64_t seq = 0;
    std::array<std::uint32_t, 256> data{};
  };
  constexpr std::uint64_t kBlocks = 200'000;
  SpscRing<Block> r(16);
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < kBlocks;) {
      Block* b = r.claim();
      if (b == nullptr) continue;
      b->seq = i;
      for (std::size_t k = 0; k < b->data.size(); ++k) b->data[k] = static_cast<std::uint32_t>(i * 7 + k);
      r.publish();
      ++i;
    }
  });
  std::uint64_t expect = 0;
  while (expect < kBlocks) {
    const Block* b = r.front();
    if (b == nullptr) continue;
    ASSERT_EQ(b->seq, expect);
    for (std::size_t k = 0; k < b->data.size(); k += 31) ASSERT_EQ(b->data[k], static_cast<std::uint32_t>(expect * 7 + k));
    r.release();
    ++expect;
  }
  producer.join();
}
