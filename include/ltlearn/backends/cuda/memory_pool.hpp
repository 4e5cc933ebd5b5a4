#pragma once
/// \file
/// ltl::cuda::block_pool<Source>: the caching logic of the CUDA allocator, written over an
/// abstract source of raw memory and stream events so that it runs (and is tested) on the host.
/// backends/cuda/memory.hpp instantiates it with the CUDA runtime as the source.
///
/// Blocks are cached per (device, stream, bucket size). Stream rule: a block belongs to the
/// stream it was allocated on and is only ever handed out again on that stream, where the
/// stream's own ordering makes reuse safe without waiting. A block that was also used on other
/// streams (`record_stream`, e.g. a batch uploaded on the copy stream and read on the compute
/// stream) is not reusable when released: the pool records an event on each of those streams
/// and returns the block to its owner's free list only once every event has completed.
///
/// Out of memory: the pool waits for the device, frees every cached block of that device
/// (those pending on events too), retries once, and then throws `out_of_memory_error` stating
/// the requested, in-use, cached and peak bytes.
///
/// Source requirements (see `runtime_memory_source` in memory.hpp and the fake in the tests):
///   `using event = ...;` a recorded marker on a stream
///   `const char* name() const` the raw allocation call, for messages ("cudaMalloc")
///   `void* try_allocate(int device, std::size_t bytes)` nullptr when out of memory; throws
///       cuda_error on any other failure
///   `void deallocate(int device, void* p, std::size_t bytes) noexcept`
///   `event record(int device, stream_id s)` records an event on stream s
///   `bool done(int device, const event& e)` true once the work before e has finished
///   `void destroy(int device, const event& e) noexcept`
///   `void synchronize(int device)` waits until all work on the device has finished

#include "ltlearn/backends/cuda/op_label.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/tensor/allocator.hpp"

#include <algorithm>
#include <cstddef>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ltl::cuda {

/// Device memory exhausted even after the caching allocator freed its cache and retried once.
class out_of_memory_error : public cuda_error {
 public:
  using cuda_error::cuda_error;
};

/// Identifies a stream to the pool. The null id stands for the device's compute stream
/// (context::stream()); other streams are identified by their handle.
using stream_id = const void*;

/// Caching pool of device blocks over `Source` (requirements in the file comment). Thread-safe.
template <class Source>
class block_pool {
 public:
  explicit block_pool(Source source = Source{}) : source_(std::move(source)) {}
  block_pool(const block_pool&) = delete;
  block_pool& operator=(const block_pool&) = delete;
  ~block_pool() { empty_cache(); }

  /// A block of at least `bytes` (≥ 1) bytes on `device`, to be used on `stream`.
  void* allocate(int device, stream_id stream, std::size_t bytes) {
    const std::size_t b = allocation_bucket(bytes);
    std::lock_guard lock(mu_);
    ++total_.requests;
    auto& st = stats_[device];
    ++st.requests;
    collect_pending(device, false);
    auto it = free_.find(key{device, stream, b});
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      ++st.cache_hits, ++total_.cache_hits;
      st.bytes_cached -= b, total_.bytes_cached -= b;
      return note_live(p, device, stream, b);
    }
    void* p = source_.try_allocate(device, b);
    if (!p) {
      // Cached blocks of other sizes or streams may be what stands in the way.
      const std::size_t freed = release_cache(device);
      ++retries_;
      p = source_.try_allocate(device, b);
      if (!p) {
        throw out_of_memory_error(fmt::format(
            "{} of {} bytes on device {} failed: out of memory, also after freeing {} cached bytes and retrying "
            "(requested {} bytes; in use {} bytes, cached {} bytes, peak {} bytes on this device){}",
            source_.name(), b, device, freed, bytes, st.bytes_in_use, st.bytes_cached, st.peak_bytes_in_use,
            detail::op_suffix()));
      }
    }
    return note_live(p, device, stream, b);
  }

  /// Returns block `p` (from `allocate`; null is ignored) to the cache.
  void release(void* p) noexcept {
    if (!p) return;
    std::lock_guard lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a noexcept path
    const block blk = std::move(it->second);
    live_.erase(it);
    auto& st = stats_[blk.device];
    st.bytes_in_use -= blk.size, total_.bytes_in_use -= blk.size;
    st.bytes_cached += blk.size, total_.bytes_cached += blk.size;
    try {
      if (blk.also_used_on.empty()) {
        free_[key{blk.device, blk.stream, blk.size}].push_back(p);
        return;
      }
      pending_block pb{p, blk, {}};
      for (stream_id s : blk.also_used_on) pb.events.push_back(source_.record(blk.device, s));
      pending_.push_back(std::move(pb));
    } catch (...) {
      // Could not record the block (no memory for the list, or the event failed): waiting for
      // the device and freeing the block for real is always safe.
      try {
        source_.synchronize(blk.device);
      } catch (...) {
      }
      source_.deallocate(blk.device, p, blk.size);
      st.bytes_cached -= blk.size, total_.bytes_cached -= blk.size;
    }
  }

  /// Notes that block `p` is also used on `stream`, so that its reuse waits for that stream.
  void record_stream(void* p, stream_id stream) {
    std::lock_guard lock(mu_);
    auto it = live_.find(p);
    LTL_CHECK(it != live_.end(), value_error, "record_stream: {} is not a live block of the CUDA allocator", p);
    auto& users = it->second.also_used_on;
    if (stream != it->second.stream && std::find(users.begin(), users.end(), stream) == users.end())
      users.push_back(stream);
  }

  /// Frees every cached block of `device` (waiting for the device if blocks await events).
  void empty_cache(int device) noexcept {
    std::lock_guard lock(mu_);
    try {
      release_cache(device);
    } catch (...) {
    }
  }
  /// Frees every cached block of every device.
  void empty_cache() noexcept {
    std::lock_guard lock(mu_);
    std::vector<int> devices;
    for (const auto& [d, s] : stats_) devices.push_back(d);
    for (int d : devices) {
      try {
        release_cache(d);
      } catch (...) {
      }
    }
  }

  /// Counters of one device.
  [[nodiscard]] allocator_stats stats(int device) const {
    std::lock_guard lock(mu_);
    auto it = stats_.find(device);
    return it == stats_.end() ? allocator_stats{} : it->second;
  }
  /// Counters summed over devices; the peak is that of the sum.
  [[nodiscard]] allocator_stats stats() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  /// How often an allocation found the device full and retried after freeing the cache.
  [[nodiscard]] std::size_t out_of_memory_retries() const {
    std::lock_guard lock(mu_);
    return retries_;
  }
  /// Blocks released but waiting for events on other streams.
  [[nodiscard]] std::size_t pending_blocks() const {
    std::lock_guard lock(mu_);
    return pending_.size();
  }
  /// Resets every peak counter to the current use (to measure one phase).
  void reset_peak() {
    std::lock_guard lock(mu_);
    for (auto& [d, s] : stats_) s.peak_bytes_in_use = s.bytes_in_use;
    total_.peak_bytes_in_use = total_.bytes_in_use;
  }
  /// Counts a request that failed before it reached the pool (no usable device).
  void note_failed_request() {
    std::lock_guard lock(mu_);
    ++total_.requests;
  }
  /// The raw-memory source (tests inspect their fake through it).
  [[nodiscard]] Source& source() noexcept { return source_; }

 private:
  using key = std::tuple<int, stream_id, std::size_t>;  // device, owning stream, bucket size
  struct block {
    int device;
    stream_id stream;
    std::size_t size;
    std::vector<stream_id> also_used_on;
  };
  struct pending_block {
    void* p;
    block blk;
    std::vector<typename Source::event> events;
  };

  void* note_live(void* p, int device, stream_id stream, std::size_t b) {
    try {
      live_.emplace(p, block{device, stream, b, {}});
    } catch (...) {
      source_.deallocate(device, p, b);
      throw;
    }
    auto& st = stats_[device];
    st.bytes_in_use += b, total_.bytes_in_use += b;
    st.peak_bytes_in_use = std::max(st.peak_bytes_in_use, st.bytes_in_use);
    total_.peak_bytes_in_use = std::max(total_.peak_bytes_in_use, total_.bytes_in_use);
    return p;
  }

  /// Moves pending blocks of `device` whose events have all completed to their free lists
  /// (all of them when `all`, after the caller synchronised the device).
  void collect_pending(int device, bool all) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->blk.device != device) {
        ++it;
        continue;
      }
      bool ready = true;
      for (const auto& e : it->events) ready = ready && (all || source_.done(device, e));
      if (!ready) {
        ++it;
        continue;
      }
      for (const auto& e : it->events) source_.destroy(device, e);
      free_[key{device, it->blk.stream, it->blk.size}].push_back(it->p);
      it = pending_.erase(it);
    }
  }

  /// Frees every cached block of `device`; returns the bytes freed.
  std::size_t release_cache(int device) {
    bool any_pending = false;
    for (const auto& pb : pending_) any_pending = any_pending || pb.blk.device == device;
    if (any_pending) {
      source_.synchronize(device);
      collect_pending(device, true);
    }
    std::size_t freed = 0;
    for (auto& [k, list] : free_) {
      if (std::get<0>(k) != device) continue;
      for (void* p : list) source_.deallocate(device, p, std::get<2>(k));
      freed += std::get<2>(k) * list.size();
      list.clear();
    }
    auto& st = stats_[device];
    total_.bytes_cached -= freed;
    st.bytes_cached -= freed;
    return freed;
  }

  Source source_;
  mutable std::mutex mu_;
  std::unordered_map<void*, block> live_;
  std::map<key, std::vector<void*>> free_;
  std::vector<pending_block> pending_;
  std::map<int, allocator_stats> stats_;
  allocator_stats total_;
  std::size_t retries_ = 0;
};

}  // namespace ltl::cuda
