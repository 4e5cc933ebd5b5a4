#pragma once
/// \file
/// dist::evaluate: evaluation sharded across the ranks of a communicator. Rank r evaluates the
/// contiguous shard [⌊N·r/R⌋, ⌊N·(r+1)/R⌋) of the dataset; the integer counts (confusion
/// matrix, top-k hits, calibration bin counts) and the real sums (loss, calibration bins) are
/// all-reduced, so every rank returns the report of the whole set. Counts, and so every
/// accuracy, are identical to a single-process evaluation; the loss and ECE agree up to the
/// order of floating-point summation. With world size 1 this is eval::evaluate. The sums use the
/// communicator's host collectives (any_communicator::host()).
///
/// The set is an in-memory dataset with its normalisation, or any eval::pass_source (a batch
/// source making its own evaluation batches, e.g. data::image_pipeline with
/// data::imagenet_eval_transform()); both run the one batched pass of eval/batched_pass.hpp.

#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/eval/batched_pass.hpp"
#include "ltlearn/eval/evaluate.hpp"

#include <algorithm>
#include <span>
#include <utility>
#include <vector>

namespace ltl::dist {

/// The dataset indices [begin, end) that `rank` of `world` evaluates out of `n`.
inline std::pair<index_t, index_t> eval_shard(index_t n, int rank, int world) {
  LTL_CHECK(world > 0 && rank >= 0 && rank < world, value_error, "eval_shard: rank {} of world {}", rank, world);
  return {n * rank / world, n * (rank + 1) / world};
}

/// Options of an evaluation over a batch source.
struct evaluate_options {
  index_t batch_size = 256;
  int workers = 0;  ///< loader threads building (decoding) batches ahead of the model
};

/// Evaluates `model` on the batch source `src` across the ranks of `comm` (every rank must call it).
template <real_scalar T, device D, class Src>
  requires eval::pass_source<Src, T>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Src& src, const std::vector<double>& train_counts,
                              any_communicator comm = {}, evaluate_options o = {}) {
  comm = comm.host();  // the counts and sums are host buffers (NCCL's ranks over MPI)
  const auto N = static_cast<index_t>(src.size());
  LTL_CHECK(N > 0 && o.batch_size > 0, value_error, "evaluate: {} images, batch size {}", N, o.batch_size);
  const auto [lo, hi] = eval_shard(N, comm.rank(), comm.size());
  eval::eval_scope scope(model);
  auto m = eval::measure_with<T, D>([&](const variable<T, D>& x) { return model.forward(x); }, src,
                                    {.batch_size = o.batch_size, .begin = lo, .end = hi, .workers = o.workers});
  if (!comm.single()) {
    m.meter.reduce_with([&](auto s) { comm.all_reduce_sum(s); });
    comm.all_reduce_sum(std::span<double>(&m.loss_sum, 1));
  }
  return metrics::eval_report::from(m.meter, m.loss_sum, train_counts);
}

/// Evaluates `model` on the in-memory dataset `ds` (normalised by `norm`) across the ranks of
/// `comm` (every rank must call it).
template <real_scalar T, device D, data::dataset Ds>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                              const std::vector<double>& train_counts, any_communicator comm,
                              index_t batch_size = 256) {
  if (comm.single()) return eval::evaluate(model, ds, norm, train_counts, batch_size);
  return dist::evaluate(model, eval::normalized_dataset<T, Ds>(ds, norm, eval::delivery_for<D, T>), train_counts,
                        std::move(comm), {.batch_size = batch_size});
}

}  // namespace ltl::dist
