// SPDX-License-Identifier: Apache-2.0
// SpscRing against its peers, two pinned threads, same item type, same run;
// every item is checked once by the consumer (a wrong one fails the run).
//   single: try_push/try_pop of uint64_t vs moodycamel::ReaderWriterQueue and
//           boost::lockfree::spsc_queue
//   bulk:   256 per call vs boost's bulk push/pop and moodycamel
//           ConcurrentQueue's bulk calls with tokens
//   block:  zero-copy claim/publish of a 2 KiB payload vs boost's bulk copy
//           of the same 256 uint64_t
#include <benchmark/benchmark.h>

// GCC 12 reports a false -Wstringop-overflow deep inside moodycamel's
// inlined enqueue_bulk; the peer's code is not ours to change.
#pragma GCC diagnostic ignored "-Wstringop-overflow"

#include <array>
#include <cstdint>
#include <thread>

#include <boost/lockfree/spsc_queue.hpp>
#include <concurrentqueue/concurrentqueue.h>
#include <readerwriterqueue/readerwriterqueue.h>

#include "bench_util.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"

namespace {

using Item = std::uint64_t;
constexpr std::size_t kCapacity = 4096;
constexpr std::uint64_t kItemsPerIteration = 1 << 24;
constexpr std::size_t kBatch = 256;

// Runs one producer (CPU 0) against the calling consumer (CPU 1) per
// iteration; `produce`/`consume` return false on a failed check.
template <typename Produce, typename Consume>
void two_threads(benchmark::State& state, std::uint64_t items, Produce produce, Consume consume) {
  wattpipe::bench::pin_to(1);
  {  // warm-up lap outside the timing: first-touch of pages, queue blocks
    std::thread p([&] {
      wattpipe::bench::pin_to(0);
      produce(items / 8);
    });
    consume(items / 8);
    p.join();
  }
  for (auto _ : state) {
    std::thread p([&] {
      wattpipe::bench::pin_to(0);
      produce(items);
    });
    const bool ok = consume(items);
    p.join();
    if (!ok) {
      state.SkipWithError("an item arrived wrong, twice or not at all");
      break;
    }
  }
  wattpipe::bench::unpin();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items));
}

// ---- single items -----------------------------------------------------------

void BM_SpscRing_PushPop(benchmark::State& state) {
  wattpipe::acquire::SpscRing<Item> q(kCapacity);
  two_threads(
      state, kItemsPerIteration,
      [&](std::uint64_t n) {
        for (Item i = 0; i < n;)
          if (q.try_push(i)) ++i;
      },
      [&](std::uint64_t n) {
        Item v;
        for (Item want = 0; want < n;)
          if (q.try_pop(v)) {
            if (v != want) return false;
            ++want;
          }
        return true;
      });
}

void BM_ReaderWriterQueue_PushPop(benchmark::State& state) {
  moodycamel::ReaderWriterQueue<Item> q(kCapacity);
  two_threads(
      state, kItemsPerIteration,
      [&](std::uint64_t n) {
        for (Item i = 0; i < n;)
          if (q.try_enqueue(i)) ++i;
      },
      [&](std::uint64_t n) {
        Item v;
        for (Item want = 0; want < n;)
          if (q.try_dequeue(v)) {
            if (v != want) return false;
            ++want;
          }
        return true;
      });
}

void BM_BoostSpscQueue_PushPop(benchmark::State& state) {
  boost::lockfree::spsc_queue<Item, boost::lockfree::capacity<kCapacity>> q;
  two_threads(
      state, kItemsPerIteration,
      [&](std::uint64_t n) {
        for (Item i = 0; i < n;)
          if (q.push(i)) ++i;
      },
      [&](std::uint64_t n) {
        Item v;
        for (Item want = 0; want < n;)
          if (q.pop(v)) {
            if (v != want) return false;
            ++want;
          }
        return true;
      });
}

// ---- bulk -------------------------------------------------------------------

template <typename PushN, typename PopN>
void bulk(benchmark::State& state, PushN push_n, PopN pop_n) {
  two_threads(
      state, kItemsPerIteration,
      [&](std::uint64_t n) {
        std::array<Item, kBatch> batch;
        for (Item next = 0; next < n;) {
          for (std::size_t k = 0; k < kBatch; ++k) batch[k] = next + k;
          std::size_t done = 0;
          while (done < kBatch) done += push_n(batch.data() + done, kBatch - done);
          next += kBatch;
        }
      },
      [&](std::uint64_t n) {
        std::array<Item, kBatch> out;
        for (Item want = 0; want < n;) {
          const std::size_t got = pop_n(out.data(), kBatch);
          for (std::size_t k = 0; k < got; ++k)
            if (out[k] != want++) return false;
        }
        return true;
      });
}

void BM_SpscRing_Bulk256(benchmark::State& state) {
  wattpipe::acquire::SpscRing<Item> q(kCapacity);
  bulk(
      state, [&](const Item* p, std::size_t n) { return q.try_push_n(std::span<const Item>(p, n)); },
      [&](Item* p, std::size_t n) { return q.try_pop_n(std::span<Item>(p, n)); });
}

void BM_BoostSpscQueue_Bulk256(benchmark::State& state) {
  boost::lockfree::spsc_queue<Item, boost::lockfree::capacity<kCapacity>> q;
  bulk(
      state, [&](const Item* p, std::size_t n) { return q.push(p, n); },
      [&](Item* p, std::size_t n) { return q.pop(p, n); });
}

void BM_ConcurrentQueue_Bulk256(benchmark::State& state) {
  moodycamel::ConcurrentQueue<Item> q(kCapacity);
  moodycamel::ProducerToken ptok(q);
  moodycamel::ConsumerToken ctok(q);
  bulk(
      state,
      [&](const Item* p, std::size_t n) {
        // Bounded like the others: only into space already allocated.
        return q.try_enqueue_bulk(ptok, p, n) ? n : std::size_t{0};
      },
      [&](Item* p, std::size_t n) { return q.try_dequeue_bulk(ctok, p, n); });
}

// ---- blocks in place vs copies ----------------------------------------------

struct Block {
  std::array<Item, kBatch> items;
};

void BM_SpscRing_ZeroCopyBlock(benchmark::State& state) {
  wattpipe::acquire::SpscRing<Block> q(kCapacity / kBatch);
  two_threads(
      state, kItemsPerIteration,
      [&](std::uint64_t n) {
        for (Item next = 0; next < n;) {
          Block* b = q.claim();
          if (b == nullptr) continue;
          for (std::size_t k = 0; k < kBatch; ++k) b->items[k] = next + k;  // filled in place
          q.publish();
          next += kBatch;
        }
      },
      [&](std::uint64_t n) {
        for (Item want = 0; want < n;) {
          const Block* b = q.front();
          if (b == nullptr) continue;
          for (std::size_t k = 0; k < kBatch; ++k)  // read in place
            if (b->items[k] != want++) return false;
          q.release();
        }
        return true;
      });
}

}  // namespace

BENCHMARK(BM_SpscRing_PushPop)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReaderWriterQueue_PushPop)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_PushPop)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SpscRing_Bulk256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BoostSpscQueue_Bulk256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ConcurrentQueue_Bulk256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SpscRing_ZeroCopyBlock)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
