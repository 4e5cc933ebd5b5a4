#pragma once
/// \file
/// ltl::storage: an owned, aligned block of device memory from the caching allocator.

#include "ltlearn/tensor/allocator.hpp"

#include <cstddef>
#include <memory>

namespace ltl {

/// Owning block of `bytes` bytes on device D; returns itself to the device's caching allocator.
/// Shared between tensor views through std::shared_ptr.
template <device D>
class storage {
 public:
  explicit storage(std::size_t bytes)
      : bytes_(bytes), ptr_(bytes ? caching_allocator<D>::instance().allocate(bytes) : nullptr) {}
  ~storage() { caching_allocator<D>::instance().release(ptr_, bytes_); }
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  [[nodiscard]] void* data() noexcept { return ptr_; }
  [[nodiscard]] const void* data() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  std::size_t bytes_;
  void* ptr_;
};

}  // namespace ltl
