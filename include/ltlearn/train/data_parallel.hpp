#pragma once
/// \file
/// train::data_parallel: what the trainer does differently when its communicator has more than
/// one rank (SPEC §14), gathered in one place so that the training loop reads the same at any
/// world size. With world size 1 every member is the identity and nothing is communicated.
///
/// Per step, every rank issues the same collectives in the same order: the loss normaliser
/// Σ w_{y_i} (before the loss), the step's loss/accuracy totals (before backward, so a
/// non-finite loss stops every rank at the same step), the gradient buckets (during and after
/// backward), and rank 0's buffers (after the update). A rank whose slice of the last batch is
/// empty runs the same sequence with zero contributions.
///
/// Communicators: scalars (normaliser, step totals) travel through the host collectives
/// (any_communicator::host()); gradient buckets and the broadcast of parameters and buffers use
/// the communicator itself — device memory with NCCL (give nccl_communicator the device's compute
/// stream), host memory with MPI.
///
/// Synchronised batch norm (reducer_options::sync_batch_norm): while the trainer lives, every
/// batch-norm layer of the model takes its training statistics over the global batch (forward:
/// per-channel count, mean and M2; backward: Σ dy and Σ dy·x̂; ops/sync_norm.hpp), so the running
/// statistics are identical on every rank and the step equals one process at the global batch
/// up to float summation order. Every rank then needs samples in every step: an epoch whose last
/// global batch has fewer samples than ranks is refused.

#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/dist/data_parallel.hpp"
#include "ltlearn/dist/gradient_reducer.hpp"
#include "ltlearn/dist/sync_batch_norm.hpp"
#include "ltlearn/train/checkpoint.hpp"

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::train {

/// The data-parallel side of a trainer (see the file comment).
template <real_scalar T, device D>
class data_parallel {
 public:
  /// Totals of one step over the ranks.
  struct step_totals {
    double loss = 0;    ///< the step's loss (the sum of the ranks' shares)
    index_t seen = 0;   ///< samples in the global batch
    index_t correct = 0;
  };

  data_parallel(dist::any_communicator comm, index_t global_batch,
                const std::vector<std::pair<std::string, variable<T, D>>>& params, dist::reducer_options ro = {})
      : comm_(std::move(comm)), host_(comm_.host()), global_batch_(global_batch), sync_bn_(ro.sync_batch_norm) {
    if (!active()) return;
    LTL_CHECK(!comm_.device_memory() || !D::is_host, value_error,
              "trainer: communicator '{}' sums device buffers; the model is in host memory (use an mpi_communicator)",
              comm_.name());
    dist::check_global_batch(global_batch, comm_.size());
    reducer_ = std::make_unique<dist::gradient_reducer<T, D>>(params, comm_, ro);
  }

  [[nodiscard]] bool active() const { return !comm_.single(); }
  /// Rank 0 alone writes logs, results and checkpoints.
  [[nodiscard]] bool root() const { return comm_.rank() == 0; }
  [[nodiscard]] dist::any_communicator& comm() noexcept { return comm_; }
  [[nodiscard]] const dist::gradient_reducer<T, D>* reducer() const noexcept { return reducer_.get(); }

  /// The loader's batch size: this rank's share of a full global batch.
  [[nodiscard]] index_t local_batch() const { return global_batch_ / comm_.size(); }
  /// The loader's augmentation seed (rank 0 keeps the run's seed).
  [[nodiscard]] std::uint64_t loader_seed(std::uint64_t seed) const { return dist::rank_seed(seed, comm_.rank()); }
  /// This rank's part of the epoch's global order.
  [[nodiscard]] std::vector<index_t> order(std::vector<index_t> global) const {
    if (!active()) return global;
    const auto n = static_cast<index_t>(global.size()), tail = n % global_batch_;
    LTL_CHECK(!sync_bn_ || tail == 0 || tail >= comm_.size(), value_error,
              "trainer: synchronised batch norm needs samples on every rank in every step, but the epoch's {} samples "
              "leave a last global batch of {} for {} ranks (change the batch size or turn synchronised batch norm off)",
              n, tail, comm_.size());
    return dist::rank_order(global, global_batch_, comm_.rank(), comm_.size());
  }
  /// Steps of the epoch (the same on every rank).
  [[nodiscard]] index_t steps(index_t global_order_size) const {
    return dist::global_steps(global_order_size, global_batch_);
  }

  /// `t` with the global batch's normaliser (unchanged at world size 1).
  [[nodiscard]] loss_terms global_terms(loss_terms t, const tensor<std::int64_t, D>& labels) {
    if (!active()) return t;
    std::vector<std::int64_t> y;
    if (labels.defined()) y = ltl::detail::to_host(labels).to_vector();
    t.normalizer = dist::global_normalizer(host_, t, std::span<const std::int64_t>(y));
    return t;
  }
  /// Sums the ranks' step totals (this rank's loss share, batch size and correct count).
  [[nodiscard]] step_totals reduce(step_totals s) {
    if (!active()) return s;
    double real = s.loss;
    std::int64_t ints[2] = {s.seen, s.correct};
    host_.all_reduce_sum(std::span<double>(&real, 1));
    host_.all_reduce_sum(std::span<std::int64_t>(ints));
    return {real, ints[0], ints[1]};
  }
  void before_backward() {
    if (active()) reducer_->prepare();
  }
  void after_backward() {
    if (active()) reducer_->finish();
  }
  /// After the optimizer step: rank 0's buffers everywhere.
  void after_step(const nn::module<T, D>& model) {
    if (active()) dist::broadcast_buffers(comm_, model);
  }
  /// Rank 0's parameters, buffers and momentum everywhere (start and resume); the first call
  /// also synchronises the model's batch norms when asked to.
  void sync(nn::module<T, D>& model, const optim::sgd<T, D>& opt) {
    if (!active()) return;
    dist::broadcast_state(comm_, model, &opt);
    if (sync_bn_ && !sync_scope_) sync_scope_ = std::make_unique<dist::sync_batch_norm_scope<T, D>>(model, host_);
  }
  /// Batch-norm layers whose statistics are synchronised (0 unless sync_batch_norm at world > 1).
  [[nodiscard]] std::size_t synchronised_batch_norms() const noexcept { return sync_scope_ ? sync_scope_->size() : 0; }

  /// Records the world size and global batch in a checkpoint's state.
  void stamp(train_state& st) const {
    st.extra["world_size"] = comm_.size();
    st.extra["global_batch"] = global_batch_;
  }
  /// A checkpoint written at another world size resumes only with the same global batch (the
  /// saved position counts global steps). Removes the stamp from `st.extra`.
  void check_resume(train_state& st, const std::string& file) const {
    for (const char* key : {"world_size", "global_batch"})
      LTL_CHECK(!st.extra.contains(key) || st.extra[key].is_number_integer(), io_error,
                "{}: 'ltlearn.state' field 'extra.{}' is not an integer", file, key);
    const auto world = st.extra.value("world_size", index_t{1});
    const auto batch = st.extra.value("global_batch", index_t{-1});
    st.extra.erase("world_size");
    st.extra.erase("global_batch");
    LTL_CHECK(world == comm_.size() || batch == global_batch_, value_error,
              "{}: the checkpoint was written by {} processes with global batch {}; resuming on {} processes needs "
              "the same global batch, not {} (set the batch size to {})",
              file, world, batch < 0 ? std::string("unknown") : std::to_string(batch), comm_.size(), global_batch_,
              batch);
  }

 private:
  dist::any_communicator comm_, host_;
  index_t global_batch_;
  bool sync_bn_;
  std::unique_ptr<dist::gradient_reducer<T, D>> reducer_;
  std::unique_ptr<dist::sync_batch_norm_scope<T, D>> sync_scope_;
};

}  // namespace ltl::train
