#pragma once
/// \file
/// ltl::storage: an owned, aligned block of device memory from the caching allocator, and the
/// index of the device (of its type) it was allocated on.

#include "ltlearn/core/device.hpp"
#include "ltlearn/tensor/allocator.hpp"

#include <cstddef>
#include <memory>
#include <utility>

namespace ltl {

/// Owning block of `bytes` bytes on device D; returns itself to the device's caching allocator.
/// Shared between tensor views through std::shared_ptr. A block may instead borrow memory that
/// another handle keeps alive (`owner`): tensor::view_as_device types one host device's memory
/// as another's that way, without a copy.
///
/// A device type with several instances (CUDA's GPUs) allocates on the calling thread's current
/// one, `D::current_index()`; the block remembers that index (0 for devices without one and for
/// empty blocks), so a kernel can refuse operands that live on another GPU than the one it runs on.
template <device D>
class storage {
 public:
  explicit storage(std::size_t bytes)
      : bytes_(bytes),
        ptr_(bytes ? caching_allocator<D>::instance().allocate(bytes) : nullptr),
        index_(bytes ? current_device_index<D>() : 0) {}
  /// A block over `bytes` bytes at `p`, which `owner` keeps alive; it allocates and frees nothing.
  /// (Host memory typed as another host device: index 0.)
  storage(void* p, std::size_t bytes, std::shared_ptr<const void> owner) noexcept
      : bytes_(bytes), ptr_(p), owner_(std::move(owner)) {}
  ~storage() {
    if (!owner_) caching_allocator<D>::instance().release(ptr_, bytes_);
  }
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  [[nodiscard]] void* data() noexcept { return ptr_; }
  [[nodiscard]] const void* data() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  /// Index of the device (of type D) the block lives on.
  [[nodiscard]] int device_index() const noexcept { return index_; }
  /// What keeps borrowed memory alive (null for a block that owns its memory).
  [[nodiscard]] const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

 private:
  std::size_t bytes_;
  void* ptr_;
  int index_ = 0;
  std::shared_ptr<const void> owner_;
};

}  // namespace ltl
