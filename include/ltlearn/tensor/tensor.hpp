#pragma once
/// \file
/// ltl::tensor<T, Device>: a dense, strided, shared-storage N-d array.
///
/// A tensor is a cheap handle (shared storage + offset + shape + strides). Copying a handle
/// aliases; `clone()` copies data. Views (reshape of contiguous data, narrow, select,
/// transpose, expand, unsqueeze) never copy. Images are NCHW, row-major.

#include "ltlearn/core/concepts.hpp"
#include "ltlearn/core/device.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"
#include "ltlearn/detail/strided.hpp"
#include "ltlearn/tensor/storage.hpp"

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

namespace ltl {

/// Dense N-d array of T on device D. See the file comment for the handle semantics.
template <tensor_element T, device D = cpu::device>
class tensor {
 public:
  using value_type = T;
  using device_type = D;

  /// An undefined tensor (no storage); `defined()` is false.
  tensor() = default;

  /// Uninitialised contiguous tensor of shape `s`.
  explicit tensor(const shape& s) : shape_(s), strides_(contiguous_strides(s)) {
    for (index_t e : s) LTL_CHECK(e >= 0, shape_error, "tensor: negative extent in shape {}", s);
    storage_ = std::make_shared<storage<D>>(static_cast<std::size_t>(s.numel()) * sizeof(T));
  }

  static tensor empty(const shape& s) { return tensor(s); }
  static tensor zeros(const shape& s) {
    tensor t(s);
    D::zero(t.raw(), t.bytes());
    return t;
  }
  static tensor full(const shape& s, T value) {
    tensor t(s);
    t.fill_(value);
    return t;
  }
  static tensor ones(const shape& s) { return full(s, T(1)); }
  /// A tensor of shape `s` holding `values` in row-major order (sizes must agree).
  static tensor from(const shape& s, std::span<const T> values) {
    LTL_CHECK(static_cast<index_t>(values.size()) == s.numel(), shape_error,
              "tensor::from: {} values for shape {} ({} elements)", values.size(), s, s.numel());
    tensor<T, host_device> h(s);
    std::copy(values.begin(), values.end(), h.data());
    if constexpr (std::is_same_v<D, host_device>) {
      return h;
    } else {
      return h.template to<D>();
    }
  }
  static tensor from(const shape& s, std::initializer_list<T> values) {
    return from(s, std::span<const T>(values.begin(), values.size()));
  }
  /// A rank-0 tensor holding `v`.
  static tensor scalar(T v) { return full(shape{}, v); }

  [[nodiscard]] bool defined() const noexcept { return static_cast<bool>(storage_); }
  /// Index of the device of type D holding the elements (the GPU of a CUDA tensor; 0 for the
  /// CPU and for an undefined tensor).
  [[nodiscard]] int device_index() const noexcept { return storage_ ? storage_->device_index() : 0; }
  [[nodiscard]] const shape& sizes() const noexcept { return shape_; }
  [[nodiscard]] const shape& strides() const noexcept { return strides_; }
  [[nodiscard]] int dim() const noexcept { return shape_.size(); }
  [[nodiscard]] index_t numel() const noexcept { return shape_.numel(); }
  /// Extent of dimension `d` (negative counts from the back).
  [[nodiscard]] index_t size(int d) const { return shape_.at(d); }
  [[nodiscard]] index_t offset() const noexcept { return offset_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return static_cast<std::size_t>(numel()) * sizeof(T); }

  /// Pointer to the first element (at the view's offset).
  [[nodiscard]] T* data() noexcept { return storage_ ? static_cast<T*>(storage_->data()) + offset_ : nullptr; }
  [[nodiscard]] const T* data() const noexcept {
    return storage_ ? static_cast<const T*>(storage_->data()) + offset_ : nullptr;
  }

  /// True when the elements are laid out densely in row-major order.
  [[nodiscard]] bool is_contiguous() const noexcept {
    index_t expect = 1;
    for (int d = dim() - 1; d >= 0; --d) {
      if (shape_[d] != 1 && strides_[d] != expect) return false;
      expect *= shape_[d];
    }
    return true;
  }
  /// True when both handles view the same storage block (or one block's memory, seen through
  /// view_as_device).
  [[nodiscard]] bool shares_storage(const tensor& o) const noexcept {
    return storage_ && o.storage_ && memory_root() == o.memory_root();
  }
  /// Number of handles (views included) sharing this storage; 0 when undefined. Handles of
  /// another device type that view the memory (view_as_device) count too, so 1 still means
  /// that no other handle sees the memory.
  [[nodiscard]] long storage_use_count() const noexcept {
    if (!storage_) return 0;
    // The owner is referenced by this block and by every other handle of the memory.
    if (const auto& o = storage_->owner()) return storage_.use_count() + o.use_count() - 1;
    return storage_.use_count();
  }

  /// This tensor if contiguous, else a contiguous copy.
  [[nodiscard]] tensor contiguous() const {
    if (is_contiguous()) return *this;
    return clone();
  }
  /// A contiguous deep copy.
  [[nodiscard]] tensor clone() const {
    require_defined("clone");
    tensor out(shape_);
    out.copy_(*this);
    return out;
  }

  /// Copies the elements of `src` (same shape, any strides) into this tensor's view.
  tensor& copy_(const tensor& src) {
    LTL_CHECK(src.sizes() == sizes(), shape_error, "copy_: source shape {} differs from destination {}",
              src.sizes(), sizes());
    if (is_contiguous() && src.is_contiguous()) {
      D::copy(data(), src.data(), bytes());
    } else if constexpr (D::is_host) {
      T* dst = data();
      const T* s = src.data();
      detail::strided_for<2>(shape_, {strides_, src.strides()}, 0, numel(),
                             [&](const auto& o) { dst[o[0]] = s[o[1]]; });
    } else {
      strided_copy(*this, src);  // found by ADL in the device's backend namespace
    }
    return *this;
  }

  /// Sets every element of the view to `v`.
  tensor& fill_(T v) {
    if constexpr (D::is_host) {
      T* p = data();
      if (is_contiguous()) {
        std::fill(p, p + numel(), v);
      } else {
        detail::strided_for<1>(shape_, {strides_}, 0, numel(), [&](const auto& o) { p[o[0]] = v; });
      }
    } else {
      fill_device(*this, v);  // ADL into the device backend
    }
    return *this;
  }
  tensor& zero_() { return fill_(T(0)); }

  /// A view with a new shape (one extent may be -1). Copies only if not contiguous.
  [[nodiscard]] tensor reshape(shape s) const {
    s = infer_shape(s, "reshape");
    if (!is_contiguous()) return clone().reshape(s);
    tensor v = *this;
    v.shape_ = s;
    v.strides_ = contiguous_strides(s);
    return v;
  }
  /// Like reshape, but throws instead of copying when the tensor is not contiguous.
  [[nodiscard]] tensor view(shape s) const {
    LTL_CHECK(is_contiguous(), shape_error, "view: tensor of shape {} is not contiguous; use reshape", sizes());
    return reshape(s);
  }
  /// Elements [start, start+length) along dimension `d`, as a view.
  [[nodiscard]] tensor narrow(int d, index_t start, index_t length) const {
    d = normalize_dim(d, dim(), "narrow");
    LTL_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], shape_error,
              "narrow: [{}, {}) out of range for dimension {} of shape {}", start, start + length, d, sizes());
    tensor v = *this;
    v.offset_ += start * strides_[d];
    v.shape_[d] = length;
    return v;
  }
  /// The slice at `index` along `d`, with that dimension removed (a view).
  [[nodiscard]] tensor select(int d, index_t index) const {
    d = normalize_dim(d, dim(), "select");
    LTL_CHECK(index >= 0 && index < shape_[d], shape_error, "select: index {} out of range for dimension {} of {}",
              index, d, sizes());
    tensor v = narrow(d, index, 1);
    v.shape_.erase(d);
    v.strides_.erase(d);
    return v;
  }
  /// Dimensions d0 and d1 swapped (a view).
  [[nodiscard]] tensor transpose(int d0, int d1) const {
    d0 = normalize_dim(d0, dim(), "transpose");
    d1 = normalize_dim(d1, dim(), "transpose");
    tensor v = *this;
    std::swap(v.shape_[d0], v.shape_[d1]);
    std::swap(v.strides_[d0], v.strides_[d1]);
    return v;
  }
  /// Transpose of a matrix (a view).
  [[nodiscard]] tensor t() const {
    LTL_CHECK(dim() == 2, shape_error, "t: expects a matrix, got shape {}", sizes());
    return transpose(0, 1);
  }
  /// A size-1 dimension inserted before `d` (a view).
  [[nodiscard]] tensor unsqueeze(int d) const {
    d = normalize_dim(d, dim() + 1, "unsqueeze");
    tensor v = *this;
    const index_t st = d < dim() ? strides_[d] * shape_[d] : 1;
    v.shape_.insert(d, 1);
    v.strides_.insert(d, st);
    return v;
  }
  /// Dimension `d`, which must have extent 1, removed (a view).
  [[nodiscard]] tensor squeeze(int d) const {
    d = normalize_dim(d, dim(), "squeeze");
    LTL_CHECK(shape_[d] == 1, shape_error, "squeeze: dimension {} of {} is not 1", d, sizes());
    tensor v = *this;
    v.shape_.erase(d);
    v.strides_.erase(d);
    return v;
  }
  /// A broadcast view to shape `s` (size-1 or missing leading dimensions get stride 0).
  [[nodiscard]] tensor expand(const shape& s) const {
    LTL_CHECK(s.size() >= dim(), shape_error, "expand: cannot expand {} to {}", sizes(), s);
    tensor v = *this;
    v.shape_ = s;
    v.strides_ = shape::filled(s.size(), 0);
    const int lead = s.size() - dim();
    for (int d = 0; d < dim(); ++d) {
      const index_t from = shape_[d], to = s[lead + d];
      LTL_CHECK(from == to || from == 1, shape_error, "expand: cannot expand {} to {}", sizes(), s);
      v.strides_[lead + d] = from == to ? strides_[d] : 0;
    }
    return v;
  }

  /// Element access (host devices only): `t.at({n, c, h, w})`.
  [[nodiscard]] T& at(std::initializer_list<index_t> idx) { return data()[element_offset(idx)]; }
  [[nodiscard]] const T& at(std::initializer_list<index_t> idx) const { return data()[element_offset(idx)]; }
  /// The value of a one-element tensor.
  [[nodiscard]] T item() const {
    LTL_CHECK(numel() == 1, shape_error, "item: tensor of shape {} has {} elements, not 1", sizes(), numel());
    if constexpr (D::is_host) {
      return *data();
    } else {
      return to<host_device>().item();
    }
  }

  /// A contiguous copy on device D2 (this tensor itself when D2 == D and contiguous).
  template <device D2>
  [[nodiscard]] tensor<T, D2> to() const {
    require_defined("to");
    if constexpr (std::is_same_v<D, D2>) {
      return contiguous();
    } else {
      const tensor c = contiguous();
      tensor<T, D2> out(sizes());
      device_transfer<D2, D>::copy(out.data(), c.data(), c.bytes());
      return out;
    }
  }

  /// This host tensor's elements typed as a tensor of another host device D2: same memory,
  /// offset, shape and strides, no copy (an undefined tensor gives an undefined one). Writes
  /// through either handle are seen by both, and the memory lives while either does. For host
  /// device types that share the CPU's memory, e.g. a device whose kernels forward to the CPU's.
  template <device D2>
  [[nodiscard]] tensor<T, D2> view_as_device() const {
    static_assert(D::is_host && D2::is_host, "view_as_device: both devices must be host memory; use to<D2>() to copy");
    tensor<T, D2> v;
    if (storage_) {
      // Borrow from the block that owns the memory, so that views of views do not chain.
      std::shared_ptr<const void> owner = storage_->owner() ? storage_->owner() : std::shared_ptr<const void>(storage_);
      v.storage_ = std::make_shared<storage<D2>>(storage_->data(), storage_->bytes(), std::move(owner));
    }
    v.offset_ = offset_;
    v.shape_ = shape_;
    v.strides_ = strides_;
    return v;
  }

  /// The elements in row-major order, copied to the host.
  [[nodiscard]] std::vector<T> to_vector() const {
    const auto h = to<host_device>();
    return std::vector<T>(h.data(), h.data() + h.numel());
  }

 private:
  template <tensor_element, device>
  friend class tensor;

  void* raw() noexcept { return data(); }
  /// The block that owns this tensor's memory (itself unless borrowed through view_as_device).
  const void* memory_root() const noexcept {
    return storage_->owner() ? storage_->owner().get() : static_cast<const void*>(storage_.get());
  }
  void require_defined(const char* op) const {
    LTL_CHECK(defined() || numel() == 0, value_error, "{}: tensor is undefined", op);
  }
  index_t element_offset(std::initializer_list<index_t> idx) const {
    static_assert(D::is_host, "element access needs a host tensor: call .to<ltl::host_device>() first");
    LTL_CHECK(static_cast<int>(idx.size()) == dim(), shape_error, "at: {} indices for a tensor of shape {}",
              idx.size(), sizes());
    index_t off = 0;
    int d = 0;
    for (index_t i : idx) {
      LTL_CHECK(i >= 0 && i < shape_[d], shape_error, "at: index {} out of range for dimension {} of {}", i, d,
                sizes());
      off += i * strides_[d++];
    }
    return off;
  }
  shape infer_shape(shape s, const char* op) const {
    int infer = -1;
    index_t known = 1;
    for (int d = 0; d < s.size(); ++d) {
      if (s[d] == -1) {
        LTL_CHECK(infer < 0, shape_error, "{}: more than one -1 in {}", op, s);
        infer = d;
      } else {
        LTL_CHECK(s[d] >= 0, shape_error, "{}: negative extent in {}", op, s);
        known *= s[d];
      }
    }
    if (infer >= 0) {
      LTL_CHECK(known > 0 && numel() % known == 0, shape_error, "{}: cannot view {} as {}", op, sizes(), s);
      s[infer] = numel() / known;
    }
    LTL_CHECK(s.numel() == numel(), shape_error, "{}: cannot view {} ({} elements) as {} ({} elements)", op,
              sizes(), numel(), s, s.numel());
    return s;
  }

  std::shared_ptr<storage<D>> storage_;
  index_t offset_ = 0;
  shape shape_;
  shape strides_;
};

}  // namespace ltl
