#pragma once
/// \file
/// dist::gradient_reducer: sums parameter gradients across the ranks of a communicator, in
/// buckets of about `bucket_bytes`, in reverse parameter order (the order backward produces
/// them), started from inside the backward pass.
///
/// How the overlap works: the reducer holds every parameter's gradient accumulator (the leaf
/// node of the autograd graph) and registers a hook on it; the engine calls the hook with the
/// parameter's whole gradient just before storing it. The hook copies it into its bucket and,
/// once a bucket is complete and every earlier bucket has been started, starts that bucket's
/// non-blocking all-reduce (so every rank starts the same reductions in the same order, however
/// its graph is scheduled) and lets pending ones progress. finish() after backward fills zeros
/// for parameters that received no gradient, starts the remaining buckets, waits and writes the
/// sums into `.grad()`. Hooks act only between prepare() and finish(), so other backward passes
/// over the same model (analysis, a second optimizer) do not reach the communicator.
///
/// Bucket memory: host memory for a host communicator (MPI; device gradients are staged through
/// it), the parameters' device for a communicator of device buffers (NCCL: any_communicator::
/// device_memory()), where gradients are copied into the bucket with the device's own copy and
/// the reduction reads the bucket in place. Every device operation is enqueued on the device's
/// stream and NCCL enqueues on the stream it was given — the compute stream — so a bucket's
/// reduction starts after the copies that fill it, and finish()'s copies out after the reduction.
///
/// With MPI, a non-blocking reduction advances only inside MPI calls (each hook makes one), so
/// overlap is partial; with NCCL it runs on the GPU concurrently.

#include "ltlearn/autograd/node.hpp"
#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/dist/communicator.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::dist {

/// Options of gradient_reducer.
struct reducer_options {
  std::size_t bucket_bytes = std::size_t{1} << 20;  ///< gradient bytes per all-reduce, about
  bool overlap = true;  ///< start reductions from the backward pass (false: all after it)
  /// Data-parallel training (train::data_parallel) synchronises the model's batch norms: their
  /// training statistics are the global batch's (dist/sync_batch_norm.hpp). No effect on the
  /// reducer itself, nor in a world of one.
  bool sync_batch_norm = false;
};

/// Sums gradients across ranks; see the file comment. Not copyable or movable (its hooks
/// point to it); create it once per optimizer and keep it for the training run.
template <real_scalar T, device D>
class gradient_reducer {
 public:
  using var = variable<T, D>;

  gradient_reducer(const std::vector<std::pair<std::string, var>>& params, any_communicator comm,
                   reducer_options o = {})
      : comm_(std::move(comm)), opt_(o), on_device_(comm_.device_memory()) {
    LTL_CHECK(!on_device_ || !D::is_host, value_error,
              "gradient_reducer: communicator '{}' sums device buffers, but the parameters are in host memory",
              comm_.name());
    const std::size_t per_bucket = std::max<std::size_t>(1, o.bucket_bytes / sizeof(T));
    std::size_t fill = per_bucket;  // start a new bucket at the first parameter
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      const var& p = it->second;
      if (!p.requires_grad()) continue;
      const auto n = static_cast<std::size_t>(p.numel());
      if (fill + n > per_bucket && fill > 0) {
        buckets_.emplace_back();
        fill = 0;
      }
      entries_.push_back({p, buckets_.size() - 1, fill, n});
      buckets_.back().size += n;
      ++buckets_.back().params;
      fill += n;
    }
    for (auto& b : buckets_) {
      if (on_device_) {
        b.device = tensor<T, D>(shape{static_cast<index_t>(b.size)});
      } else {
        b.data.resize(b.size);
      }
    }
    if (o.overlap) {
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        auto edge = entries_[i].p.gradient_edge();
        edge->hooks.push_back([this, i](const tensor<T, D>& g) { on_gradient(i, g); });
        edges_.push_back(std::move(edge));
      }
    }
  }
  gradient_reducer(const gradient_reducer&) = delete;
  gradient_reducer& operator=(const gradient_reducer&) = delete;

  /// Call before the backward pass whose gradients are to be summed (gradients must be zero:
  /// the hooks see each parameter's whole gradient of this pass).
  void prepare() {
    for (auto& e : entries_) e.ready = false;
    for (auto& b : buckets_) b.ready = 0;
    next_ = started_in_backward_ = 0;
    armed_ = true;
  }

  /// Call after backward (or instead of it, on a rank with no samples this step): every
  /// parameter's `.grad()` becomes the sum over ranks of this pass's gradients.
  void finish() {
    LTL_CHECK(armed_, value_error, "gradient_reducer: finish() without prepare()");
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      auto& e = entries_[i];
      if (e.ready) continue;
      auto& b = buckets_[e.bucket];
      const auto& g = e.p.grad();
      if (g.defined()) {
        copy_in(e, g);
      } else if (on_device_) {
        slot(e).zero_();
      } else {
        std::fill_n(b.data.begin() + static_cast<std::ptrdiff_t>(e.offset), e.numel, T(0));
      }
      e.ready = true;
      ++b.ready;
    }
    launch_ready();
    comm_.wait_all();
    armed_ = false;
    for (auto& e : entries_) {
      const auto& b = buckets_[e.bucket];
      if (on_device_) {
        e.p.grad() = slot(e).view(e.p.sizes()).clone();  // the bucket is refilled next step
      } else {
        e.p.grad() = tensor<T, D>::from(e.p.sizes(), std::span<const T>(b.data.data() + e.offset, e.numel));
      }
    }
  }

  /// Number of buckets (the reductions per step).
  [[nodiscard]] std::size_t num_buckets() const noexcept { return buckets_.size(); }
  /// Elements in each bucket, in the order they are reduced.
  [[nodiscard]] std::vector<std::size_t> bucket_sizes() const {
    std::vector<std::size_t> out;
    for (auto& b : buckets_) out.push_back(b.size);
    return out;
  }
  /// True when the buckets are in the parameters' device memory (a communicator of device buffers).
  [[nodiscard]] bool buckets_on_device() const noexcept { return on_device_; }
  /// Buckets started from inside the last backward pass (before finish()).
  [[nodiscard]] std::size_t started_during_backward() const noexcept { return started_in_backward_; }

 private:
  struct entry {
    var p;
    std::size_t bucket, offset, numel;
    bool ready = false;
  };
  struct bucket {
    std::vector<T> data;   // host buckets
    tensor<T, D> device;   // device buckets
    std::size_t size = 0, params = 0, ready = 0;
  };

  /// The entry's elements of its device bucket, flat.
  tensor<T, D> slot(const entry& e) {
    return buckets_[e.bucket].device.narrow(0, static_cast<index_t>(e.offset), static_cast<index_t>(e.numel));
  }

  void copy_in(const entry& e, const tensor<T, D>& g) {
    if (on_device_) {
      slot(e).view(g.sizes()).copy_(g);  // the device's strided copy, on its stream
      return;
    }
    const auto h = ltl::detail::to_host(g).contiguous();
    std::memcpy(buckets_[e.bucket].data.data() + e.offset, h.data(), e.numel * sizeof(T));
  }

  void on_gradient(std::size_t i, const tensor<T, D>& g) {
    if (!armed_) return;
    auto& e = entries_[i];
    LTL_CHECK(!e.ready && !e.p.grad().defined(), value_error,
              "gradient_reducer: a parameter's gradient arrived twice or on top of an old one (zero the gradients "
              "and run one backward between prepare() and finish())");
    copy_in(e, g);
    e.ready = true;
    ++buckets_[e.bucket].ready;
    const std::size_t before = next_;
    launch_ready();
    if (next_ == before && next_ > 0) comm_.progress();
    started_in_backward_ = next_;
  }

  /// Starts every complete bucket whose predecessors have all been started.
  void launch_ready() {
    while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params) {
      auto& b = buckets_[next_];
      comm_.start_all_reduce_sum(on_device_ ? std::span<T>(b.device.data(), b.size) : std::span<T>(b.data));
      ++next_;
    }
  }

  any_communicator comm_;
  reducer_options opt_;
  bool on_device_;
  std::vector<entry> entries_;
  std::vector<bucket> buckets_;
  std::vector<std::shared_ptr<node<T, D>>> edges_;
  std::size_t next_ = 0, started_in_backward_ = 0;
  bool armed_ = false;
};

}  // namespace ltl::dist
