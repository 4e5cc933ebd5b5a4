#pragma once
/// \file
/// The pieces of data-parallel training (SPEC §14) that the trainer composes, each usable on
/// its own:
///   - rank_slice / rank_order: one global sample order per epoch, each global batch of b
///     split into R contiguous per-rank slices (sizes ⌊m·(r+1)/R⌋ − ⌊m·r/R⌋ for a batch of m),
///     so every rank runs ⌈n/b⌉ steps, the last partial batch included;
///   - broadcast_state: parameters, buffers and optimizer state from rank 0 (start, resume);
///   - gradient_reducer: gradients summed across ranks in buckets in reverse parameter order,
///     each bucket's reduction started from the backward pass as soon as its gradients exist;
///   - global_normalizer: Σ_i w_{y_i} of the fused loss over the global batch.
/// Scalars always travel through the communicator's host collectives; tensors through its own
/// (device memory for NCCL: broadcast_state then never stages through the host).
///
/// With world size 1 none of this runs in the trainer (single-process numbers are unchanged).

#include "ltlearn/autograd/variable.hpp"
#include "ltlearn/backends/contract/loss.hpp"
#include "ltlearn/detail/host.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/dist/gradient_reducer.hpp"
#include "ltlearn/nn/module.hpp"
#include "ltlearn/optim/sgd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace ltl::dist {

/// Positions [begin, end) of the global order that one rank trains on in one step.
struct slice {
  index_t begin = 0, end = 0;
  [[nodiscard]] index_t size() const noexcept { return end - begin; }
  friend bool operator==(const slice&, const slice&) = default;
};

/// Steps of an epoch of `n` samples at global batch `global_batch` (the last batch may be partial).
inline index_t global_steps(index_t n, index_t global_batch) {
  LTL_CHECK(n >= 0 && global_batch > 0, value_error, "global_steps: {} samples, global batch {}", n, global_batch);
  return (n + global_batch - 1) / global_batch;
}

/// The global batch must split into equal full-batch slices.
inline void check_global_batch(index_t global_batch, int world) {
  LTL_CHECK(world > 0 && global_batch % world == 0, value_error,
            "data parallel: the global batch size {} is not a multiple of the world size {}", global_batch, world);
}

/// Rank `rank`'s slice of global batch `step` of an order of `n` samples: contiguous, the R
/// slices partition the batch, sizes differ by at most one (empty only when the last batch
/// has fewer samples than ranks).
inline slice rank_slice(index_t n, index_t global_batch, index_t step, int rank, int world) {
  LTL_CHECK(world > 0 && rank >= 0 && rank < world, value_error, "rank_slice: rank {} of world {}", rank, world);
  LTL_CHECK(step >= 0 && step < global_steps(n, global_batch), value_error, "rank_slice: step {} outside [0, {})", step,
            global_steps(n, global_batch));
  const index_t b0 = step * global_batch, m = std::min(global_batch, n - b0);
  return {b0 + m * rank / world, b0 + m * (rank + 1) / world};
}

/// Rank `rank`'s samples of `order`, in step order: the concatenation of its slices. A loader
/// with batch size global_batch / world over this order yields exactly the rank's slices
/// (every slice before the last global batch is full), except that a final empty slice yields
/// no batch: the trainer runs that step with zero gradients.
inline std::vector<index_t> rank_order(const std::vector<index_t>& order, index_t global_batch, int rank, int world) {
  check_global_batch(global_batch, world);
  const auto n = static_cast<index_t>(order.size());
  std::vector<index_t> out;
  for (index_t s = 0; s < global_steps(n, global_batch); ++s) {
    const slice sl = rank_slice(n, global_batch, s, rank, world);
    out.insert(out.end(), order.begin() + sl.begin, order.begin() + sl.end);
  }
  return out;
}

/// Mixes a seed with a rank for a rank's own random streams (rank 0 keeps the seed).
inline constexpr std::uint64_t rank_seed(std::uint64_t seed, int rank) {
  return rank == 0 ? seed : seed ^ (0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(rank));
}

/// Random stream of the mixing draws of global step `step` of epoch `epoch` on `rank`.
inline constexpr std::uint64_t mixing_stream(index_t epoch, index_t step, int rank) {
  return (static_cast<std::uint64_t>(epoch) << 40) ^ (static_cast<std::uint64_t>(step) << 12) ^
         static_cast<std::uint64_t>(rank);
}

namespace detail {
/// Broadcasts the tensors from rank 0 as one buffer: in host memory, or, for a communicator of
/// device buffers, in the tensors' device memory (filled and emptied with the device's copies).
template <real_scalar T, device D, communicator C>
void broadcast_tensors(C& comm, std::vector<tensor<T, D>> ts) {
  std::int64_t count[2] = {static_cast<std::int64_t>(ts.size()), 0};
  for (auto& t : ts) count[1] += t.numel();
  std::int64_t root_count[2] = {count[0], count[1]};
  auto host = host_communicator(comm);
  broadcast_values(host, std::span<std::int64_t>(root_count), 0);
  LTL_CHECK(root_count[0] == count[0] && root_count[1] == count[1], value_error,
            "broadcast_state: rank {} holds {} tensors ({} values), rank 0 holds {} ({})", comm.rank(), count[0],
            count[1], root_count[0], root_count[1]);
  if (sums_device_memory(comm)) {
    if constexpr (!D::is_host) {
      tensor<T, D> flat(shape{count[1]});
      index_t at = 0;
      for (auto& t : ts) {
        flat.narrow(0, at, t.numel()).view(t.sizes()).copy_(t);
        at += t.numel();
      }
      broadcast_values(comm, std::span<T>(flat.data(), static_cast<std::size_t>(count[1])), 0);
      at = 0;
      for (auto& t : ts) {
        t.copy_(flat.narrow(0, at, t.numel()).view(t.sizes()));
        at += t.numel();
      }
      return;
    } else {
      throw value_error(fmt::format("broadcast_state: communicator '{}' sums device buffers, but the tensors are in "
                                    "host memory",
                                    host.name()));
    }
  }
  std::vector<T> flat;
  flat.reserve(static_cast<std::size_t>(count[1]));
  for (auto& t : ts) {
    const auto h = ltl::detail::to_host(t).contiguous();
    flat.insert(flat.end(), h.data(), h.data() + h.numel());
  }
  broadcast_values(comm, std::span<T>(flat), 0);
  std::size_t at = 0;
  for (auto& t : ts) {
    const auto n = static_cast<std::size_t>(t.numel());
    t.copy_(tensor<T, D>::from(t.sizes(), std::span<const T>(flat.data() + at, n)));
    at += n;
  }
}
}  // namespace detail

/// Makes every rank hold rank 0's parameters and buffers (and, given `opt`, its momentum
/// buffers, which every rank must hold for the same parameters).
template <real_scalar T, device D, communicator C>
void broadcast_state(C& comm, const nn::module<T, D>& model, const optim::sgd<T, D>* opt = nullptr) {
  if (comm.size() == 1) return;
  std::vector<tensor<T, D>> ts;
  for (auto& [n, t] : model.state_dict()) ts.push_back(t);  // handles: writes reach the model
  if (opt)
    for (auto& [n, t] : opt->state_dict()) ts.push_back(t);
  detail::broadcast_tensors<T, D>(comm, std::move(ts));
}

/// Makes every rank hold rank 0's buffers (batch-norm running statistics after a step: each
/// rank measured its own slice; rank 0's values are kept, as PyTorch's DDP does).
template <real_scalar T, device D, communicator C>
void broadcast_buffers(C& comm, const nn::module<T, D>& model) {
  if (comm.size() == 1) return;
  std::vector<tensor<T, D>> ts;
  for (auto& [n, t] : model.named_buffers()) ts.push_back(t);
  if (!ts.empty()) detail::broadcast_tensors<T, D>(comm, std::move(ts));
}

/// Σ_i w_{y_i} over this rank's labels (w = terms.weights; empty: 1 per sample).
inline double local_normalizer(const loss_terms& terms, std::span<const std::int64_t> labels) {
  double s = 0;
  for (const std::int64_t y : labels) {
    LTL_CHECK(terms.weights.empty() || (y >= 0 && static_cast<std::size_t>(y) < terms.weights.size()), value_error,
              "global_normalizer: label {} outside the {} class weights", y, terms.weights.size());
    s += terms.weights.empty() ? 1.0 : terms.weights[static_cast<std::size_t>(y)];
  }
  return s;
}

/// Σ_i w_{y_i} over the global batch (every rank passes its slice's labels).
template <communicator C>
double global_normalizer(C& comm, const loss_terms& terms, std::span<const std::int64_t> labels) {
  double s = local_normalizer(terms, labels);
  host_communicator(comm).all_reduce_sum(std::span<double>(&s, 1));
  return s;
}

}  // namespace ltl::dist
