#pragma once
/// \file
/// Synchronised batch norm for data-parallel training: every nn::batch_norm2d of a model takes
/// its training statistics over the global batch (ops/sync_norm.hpp), the per-channel sums
/// exchanged through a communicator's host collectives. A communicator of device buffers
/// (NCCL) is replaced by its host one (any_communicator::host()): the exchanged vectors are a few
/// hundred bytes per layer, host doubles on every device.

#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/nn/batchnorm.hpp"
#include "ltlearn/nn/module.hpp"

#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace ltl::dist {

/// batch_stat_reducer over a communicator's host collectives.
class communicator_stat_reducer final : public batch_stat_reducer {
 public:
  explicit communicator_stat_reducer(any_communicator comm) : comm_(comm.host()) {}
  [[nodiscard]] int rank() const override { return comm_.rank(); }
  [[nodiscard]] int size() const override { return comm_.size(); }
  void all_reduce_sum(std::span<double> values) override { comm_.all_reduce_sum(values); }

 private:
  any_communicator comm_;
};

/// Synchronises every batch-norm layer below `model` (its descendants) over `comm` (or, given a null reducer,
/// makes them local again) while alive; the layers are shared, so they outlive the model
/// handle the caller holds. With a world of one the layers stay the plain ones bit for bit.
template <real_scalar T, device D>
class sync_batch_norm_scope {
 public:
  /// Synchronises the batch-norm layers of `model` (a module the caller owns) over `comm`.
  sync_batch_norm_scope(nn::module<T, D>& model, any_communicator comm)
      : reducer_(std::make_shared<communicator_stat_reducer>(std::move(comm))) {
    collect(model);
    for (auto& bn : layers_) bn->set_sync(reducer_);
  }
  sync_batch_norm_scope(const sync_batch_norm_scope&) = delete;
  sync_batch_norm_scope& operator=(const sync_batch_norm_scope&) = delete;
  /// The layers become local again (a later single-process use of the model cannot wait on
  /// the other ranks).
  ~sync_batch_norm_scope() {
    for (auto& bn : layers_)
      if (bn->sync() == reducer_) bn->set_sync(nullptr);
  }
  /// Number of synchronised layers.
  [[nodiscard]] std::size_t size() const noexcept { return layers_.size(); }

 private:
  void collect(nn::module<T, D>& m) {
    for (const auto& [name, child] : m.children()) {
      if (auto bn = std::dynamic_pointer_cast<nn::batch_norm2d<T, D>>(child)) layers_.push_back(std::move(bn));
      collect(*child);
    }
  }
  std::shared_ptr<batch_stat_reducer> reducer_;
  std::vector<std::shared_ptr<nn::batch_norm2d<T, D>>> layers_;
};

}  // namespace ltl::dist
