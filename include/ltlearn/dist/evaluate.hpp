#pragma once
/// \file
/// dist::evaluate: evaluation sharded across the ranks of a communicator. Rank r evaluates the
/// contiguous shard [⌊N·r/R⌋, ⌊N·(r+1)/R⌋) of the dataset; the integer counts (confusion
/// matrix, top-k hits, calibration bin counts) and the real sums (loss, calibration bins) are
/// all-reduced, so every rank returns the report of the whole set. Counts, and so every
/// accuracy, are identical to a single-process evaluation; the loss and ECE agree up to the
/// order of floating-point summation. With world size 1 this is eval::evaluate. The sums use the
/// communicator's host collectives (any_communicator::host()).

#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/transforms.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/eval/evaluate.hpp"

#include <algorithm>
#include <numeric>
#include <span>
#include <vector>

namespace ltl::dist {

/// The dataset indices [begin, end) that `rank` of `world` evaluates out of `n`.
inline std::pair<index_t, index_t> eval_shard(index_t n, int rank, int world) {
  LTL_CHECK(world > 0 && rank >= 0 && rank < world, value_error, "eval_shard: rank {} of world {}", rank, world);
  return {n * rank / world, n * (rank + 1) / world};
}

/// Evaluates `model` on `ds` across the ranks of `comm` (every rank must call it).
template <real_scalar T, device D, data::dataset Ds>
metrics::eval_report evaluate(nn::staged_model<T, D>& model, const Ds& ds, const data::normalize& norm,
                              const std::vector<double>& train_counts, any_communicator comm,
                              index_t batch_size = 256) {
  if (comm.single()) return eval::evaluate(model, ds, norm, train_counts, batch_size);
  comm = comm.host();  // the counts and sums are host buffers (NCCL's ranks over MPI)
  const auto N = static_cast<index_t>(ds.size());
  LTL_CHECK(N > 0 && batch_size > 0, value_error, "evaluate: {} images, batch size {}", N, batch_size);
  const auto C = static_cast<index_t>(ds.num_classes());
  metrics::classification_meter meter(C, std::min<index_t>(5, C));
  eval::eval_scope scope(model);
  no_grad_guard ng;
  double loss_sum = 0;
  const auto [lo, hi] = eval_shard(N, comm.rank(), comm.size());
  std::vector<index_t> idx;
  for (index_t b0 = lo; b0 < hi; b0 += batch_size) {
    const index_t b1 = std::min(hi, b0 + batch_size);
    idx.resize(static_cast<std::size_t>(b1 - b0));
    std::iota(idx.begin(), idx.end(), b0);
    auto bt = data::make_batch<T>(ds, std::span<const index_t>(idx), norm);
    const tensor<std::int64_t, D> labels = bt.labels.template to<D>();
    const variable<T, D> z = model.forward(variable<T, D>(bt.images.template to<D>()));
    loss_sum += static_cast<double>(cross_entropy(z, labels).value().item()) * static_cast<double>(b1 - b0);
    meter.add(z.value(), labels);
  }
  meter.reduce_with([&](auto s) { comm.all_reduce_sum(s); });
  comm.all_reduce_sum(std::span<double>(&loss_sum, 1));
  return metrics::eval_report::from(meter, loss_sum, train_counts);
}

}  // namespace ltl::dist
