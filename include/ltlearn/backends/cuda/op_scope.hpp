#pragma once
/// \file
/// ltl::cuda::op_scope: the first statement of every CUDA kernel function of the contract.
///
/// It refuses operands on another GPU than the calling thread's current one (where the kernel
/// is launched, on that device's stream, and where its result is allocated): a device_error that
/// names the op, the operand's position and both devices, instead of a kernel that faults or
/// reads another GPU's memory through peer access. Then, while it lives, every error raised
/// inside the op (out of memory, CUDA/cuBLAS/cuDNN statuses, launch failures) names the op
/// (op_label.hpp). Empty operands and absent ones (undefined tensors, null pointers) are not
/// checked: nothing of theirs is read, and an op whose operands are all empty asks the runtime
/// nothing (its shape checks run without a GPU). The cost is one cudaGetDevice per op.

#include "ltlearn/backends/cuda/device.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/backends/cuda/op_label.hpp"
#include "ltlearn/core/error.hpp"
#include "ltlearn/tensor/tensor.hpp"

namespace ltl::cuda {

/// Checks the operands of `op` and labels the errors raised while the scope lives.
class op_scope {
 public:
  template <class... Operands>
  explicit op_scope(const char* op, const Operands&... operands) : previous_(detail::current_op()) {
    [[maybe_unused]] int current = -1;  // asked at the first non-empty operand: empty ones need no GPU
    [[maybe_unused]] int position = 0;
    (check(op, current, ++position, operands), ...);
    if (!previous_) detail::current_op() = op;
  }
  ~op_scope() { detail::current_op() = previous_; }
  op_scope(const op_scope&) = delete;
  op_scope& operator=(const op_scope&) = delete;

 private:
  template <class T>
  static void check(const char* op, int& current, int position, const tensor<T, device>& t) {
    if (!t.defined() || t.numel() == 0) return;  // absent or empty: nothing of it is read
    if (current < 0) current = device::current_index();
    LTL_CHECK(t.device_index() == current, device_error,
              "{}: operand {} is on CUDA device {}, but the op runs on the current device {} (move it with "
              "to<cuda::device>() under that device, or make its device current)",
              op, position, t.device_index(), current);
  }
  template <class T>
  static void check(const char* op, int& current, int position, const tensor<T, device>* t) {
    if (t) check(op, current, position, *t);
  }

  const char* previous_;
};

}  // namespace ltl::cuda
