#pragma once
/// \file
/// A size-bucketed caching allocator, one instance per device.
///
/// Training allocates the same activation sizes every step; returning freed blocks to a
/// per-bucket free list makes the second step allocation-free. Requests are rounded up to a
/// bucket (powers of two up to 1 MiB, then multiples of 1 MiB) so that nearby sizes share
/// blocks without wasting more than 2x on small ones or 1 MiB on large ones.

#include "ltlearn/core/concepts.hpp"

#include <cstddef>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace ltl {

/// Counters of a caching allocator (bytes are bucket sizes, i.e. what was really reserved).
struct allocator_stats {
  std::size_t requests = 0;      ///< allocate() calls
  std::size_t cache_hits = 0;    ///< requests served from a free list
  std::size_t bytes_in_use = 0;  ///< held by live storages
  std::size_t bytes_cached = 0;  ///< free, kept for reuse
  std::size_t peak_bytes_in_use = 0;
};

/// Bucket size a request of `bytes` is served from (shared by every device's allocator).
constexpr std::size_t allocation_bucket(std::size_t bytes) noexcept {
  constexpr std::size_t min_block = 64, mib = std::size_t{1} << 20;
  if (bytes <= min_block) return min_block;
  if (bytes <= mib) {
    std::size_t b = min_block;
    while (b < bytes) b <<= 1;
    return b;
  }
  return (bytes + mib - 1) / mib * mib;
}

/// Caching allocator for device `D`. Thread-safe. Obtain it with `instance()`. Devices with
/// streams specialise it (the CUDA one in backends/cuda/device.hpp).
template <device D>
class caching_allocator {
 public:
  /// The allocator of device D. Deliberately never destroyed, so storages released during
  /// static destruction still find it.
  static caching_allocator& instance() {
    static auto* inst = new caching_allocator();
    return *inst;
  }

  /// Bucket size a request of `bytes` is served from.
  static constexpr std::size_t bucket_size(std::size_t bytes) noexcept { return allocation_bucket(bytes); }

  /// A block of at least `bytes` bytes (≥ 1); pair it with `release(p, bytes)`.
  void* allocate(std::size_t bytes) {
    const std::size_t b = bucket_size(bytes);
    {
      std::lock_guard lock(mu_);
      ++stats_.requests;
      auto it = free_.find(b);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        ++stats_.cache_hits;
        stats_.bytes_cached -= b;
        note_in_use(b);
        return p;
      }
    }
    void* p = nullptr;
    try {
      p = D::allocate(b);
    } catch (const std::bad_alloc&) {
      // Out of memory: give the cached blocks back to the device and retry once.
      empty_cache();
      p = D::allocate(b);
    }
    std::lock_guard lock(mu_);
    note_in_use(b);
    return p;
  }

  /// Returns a block obtained from `allocate(bytes)` to its bucket's free list.
  void release(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    const std::size_t b = bucket_size(bytes);
    std::lock_guard lock(mu_);
    try {
      free_[b].push_back(p);
    } catch (...) {
      D::deallocate(p, b);  // could not record it: free it for real
      stats_.bytes_in_use -= b;
      return;
    }
    stats_.bytes_in_use -= b;
    stats_.bytes_cached += b;
  }

  /// Frees every cached block back to the device.
  void empty_cache() noexcept {
    std::lock_guard lock(mu_);
    for (auto& [b, list] : free_) {
      for (void* p : list) D::deallocate(p, b);
      list.clear();
    }
    stats_.bytes_cached = 0;
  }

  [[nodiscard]] allocator_stats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }
  /// Resets the peak counter to the current use (to measure one phase).
  void reset_peak() {
    std::lock_guard lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  caching_allocator() = default;
  void note_in_use(std::size_t b) noexcept {
    stats_.bytes_in_use += b;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

  mutable std::mutex mu_;
  std::map<std::size_t, std::vector<void*>> free_;
  allocator_stats stats_;
};

}  // namespace ltl
