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

#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/dist/data_parallel.hpp"
#include "ltlearn/dist/gradient_reducer.hpp"
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
      : comm_(std::move(comm)), global_batch_(global_batch) {
    if (!active()) return;
    // The reducer's buckets are host memory (device gradients are staged through them).
    LTL_CHECK(comm_.name() != "nccl", value_error,
              "trainer: the NCCL communicator reduces device buffers, and the trainer's gradient buckets are host "
              "memory; give the trainer an mpi_communicator");
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
    t.normalizer = dist::global_normalizer(comm_, t, std::span<const std::int64_t>(y));
    return t;
  }
  /// Sums the ranks' step totals (this rank's loss share, batch size and correct count).
  [[nodiscard]] step_totals reduce(step_totals s) {
    if (!active()) return s;
    double real = s.loss;
    std::int64_t ints[2] = {s.seen, s.correct};
    comm_.all_reduce_sum(std::span<double>(&real, 1));
    comm_.all_reduce_sum(std::span<std::int64_t>(ints));
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
  /// Rank 0's parameters, buffers and momentum everywhere (start and resume).
  void sync(const nn::module<T, D>& model, const optim::sgd<T, D>& opt) {
    if (active()) dist::broadcast_state(comm_, model, &opt);
  }

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
  dist::any_communicator comm_;
  index_t global_batch_;
  std::unique_ptr<dist::gradient_reducer<T, D>> reducer_;
};

}  // namespace ltl::train
