#pragma once
/// \file
/// Synchronised 2-D batch normalisation (PyTorch's SyncBatchNorm): in training, the batch
/// statistics are those of the global batch — the union of the batches of every process that
/// shares a batch_stat_reducer — so R processes at batch B/R normalise, back-propagate and update
/// their running statistics as one process at batch B does (up to float summation order).
///
/// Forward: each rank forms its per-channel (count, mean, M2 = Σ (x − mean)²) from shifted sums
/// on the device (shift: the local mean rounded to T, so no E[x²] − E[x]² cancellation), copies
/// the 2C + 1 values to the host and places them in its own slot of a zero-filled buffer of R
/// slots; one all-reduce of that buffer (adding zeros is exact) gives every rank every rank's
/// triple, which each combines in rank order with Chan et al.'s pairwise rule — the same doubles
/// on every rank. The output is then the batch-norm kernel's evaluation path applied with the
/// global mean and biased variance (with the fused residual and ReLU); the running statistics
/// move toward the global mean and the unbiased global variance M2/(M − 1), M the global count.
/// Backward: the kernel's evaluation path gives w·invstd·dy' (dy' the ReLU-masked gradient) and
/// the local Σ dy' and Σ dy'·x̂ (the local weight and bias gradients); those 2C sums are
/// all-reduced and dx = w·invstd·(dy' − Σdy'/M − x̂·Σdy'x̂/M) is completed with per-channel terms.
/// The weight and bias gradients stay local: the data-parallel gradient reduction sums them.
///
/// Device-generic: only [C]-sized vectors cross to the host (a few hundred bytes per layer), so
/// the reducer always sums host doubles — also on a GPU, where the copy costs far less than the
/// layer and keeps NCCL's device buffers out of this op.

#include "ltlearn/detail/host.hpp"
#include "ltlearn/ops/norm.hpp"
#include "ltlearn/ops/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

namespace ltl {

/// Sums host buffers of doubles across the processes of a synchronised batch norm.
///
/// Every process must call all_reduce_sum in the same order with the same lengths; rank() in
/// [0, size()).
class batch_stat_reducer {
 public:
  virtual ~batch_stat_reducer() = default;
  /// This process's index.
  [[nodiscard]] virtual int rank() const = 0;
  /// Number of processes.
  [[nodiscard]] virtual int size() const = 0;
  /// In place: every process gets the element-wise sum.
  virtual void all_reduce_sum(std::span<double> values) = 0;
};

namespace detail {
/// Host copy of a [C] tensor (or ones when undefined) in double.
template <real_scalar T, device D>
std::vector<double> channel_values(const tensor<T, D>& t, index_t c) {
  if (!t.defined()) return std::vector<double>(static_cast<std::size_t>(c), 1.0);
  const auto v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}
/// A [1, C, 1, 1] tensor on D holding `v` rounded to T (broadcasts over [N, C, H, W]).
template <real_scalar T, device D>
tensor<T, D> channel_tensor(const std::vector<double>& v) {
  std::vector<T> t(v.begin(), v.end());
  return tensor<T, D>::from(shape{1, static_cast<index_t>(v.size()), 1, 1}, std::span<const T>(t));
}
}  // namespace detail

/// Batch normalisation of x [N, C, H, W] in training mode with the statistics of the global
/// batch of every process sharing `reducer` (see the file comment); the arguments are those of
/// ltl::batch_norm2d, whose options must have `.training = true`. Every process must call it
/// for the same layers in the same order (and run its backward the same way).
template <real_scalar T, device D>
variable<T, D> sync_batch_norm2d(const variable<T, D>& x, const variable<T, D>& weight, const variable<T, D>& bias,
                                 tensor<T, D> running_mean, tensor<T, D> running_var, const batch_norm_options& opt,
                                 const variable<T, D>& residual, std::shared_ptr<batch_stat_reducer> reducer) {
  const shape none;
  check_batch_norm2d(x.sizes(), weight.defined() ? weight.sizes() : none, weight.defined(),
                     bias.defined() ? bias.sizes() : none, bias.defined(),
                     running_mean.defined() ? running_mean.sizes() : none, running_mean.defined(),
                     running_var.defined() ? running_var.sizes() : none, running_var.defined(), opt);
  LTL_CHECK(opt.training && reducer != nullptr, value_error,
            "sync_batch_norm2d: needs training mode and a statistics reducer");
  LTL_CHECK(!residual.defined() || residual.sizes() == x.sizes(), shape_error,
            "sync_batch_norm2d: residual {} does not match input {}", residual.defined() ? residual.sizes() : none,
            x.sizes());
  const tensor<T, D> xv = x.value();
  const index_t c = xv.size(1);
  const auto m_local = static_cast<double>(xv.size(0) * xv.size(2) * xv.size(3));
  const auto C = static_cast<std::size_t>(c);
  const std::vector<bool> over_nhw{true, false, true, true};

  // Local (count, mean, M2) from sums shifted by the local mean rounded to T.
  const auto raw = sum_dims_keep(xv, over_nhw).to_vector();
  std::vector<double> shift(C);
  for (std::size_t k = 0; k < C; ++k) shift[k] = static_cast<double>(static_cast<T>(static_cast<double>(raw[k]) / m_local));
  const tensor<T, D> d = sub(xv, detail::channel_tensor<T, D>(shift));
  const auto s1 = sum_dims_keep(d, over_nhw).to_vector();
  const auto s2 = sum_dims_keep(mul(d, d), over_nhw).to_vector();
  const int R = reducer->size(), me = reducer->rank();
  LTL_CHECK(R > 0 && me >= 0 && me < R, value_error, "sync_batch_norm2d: rank {} of {} processes", me, R);
  const std::size_t slot = 1 + 2 * C;
  std::vector<double> all(slot * static_cast<std::size_t>(R), 0.0);
  double* mine = all.data() + slot * static_cast<std::size_t>(me);
  mine[0] = m_local;
  for (std::size_t k = 0; k < C; ++k) {
    const double a = static_cast<double>(s1[k]), b = static_cast<double>(s2[k]);
    mine[1 + k] = shift[k] + a / m_local;
    mine[1 + C + k] = std::max(0.0, b - a * a / m_local);
  }
  reducer->all_reduce_sum(std::span<double>(all));

  // Chan et al.: (n_a, mean_a, M2_a) ⊕ (n_b, mean_b, M2_b), ranks in order.
  double count = 0;
  std::vector<double> mean(C, 0.0), m2(C, 0.0);
  for (int r = 0; r < R; ++r) {
    const double* p = all.data() + slot * static_cast<std::size_t>(r);
    const double nb = p[0];
    if (nb == 0) continue;
    const double n = count + nb;
    for (std::size_t k = 0; k < C; ++k) {
      const double delta = p[1 + k] - mean[k];
      mean[k] += delta * nb / n;
      m2[k] += p[1 + C + k] + delta * delta * count * nb / n;
    }
    count = n;
  }
  LTL_CHECK(count > 1, value_error, "sync_batch_norm2d: training needs more than one value per channel over all {} "
            "processes, got {}", R, count);
  std::vector<T> mean_t(C), var_t(C);
  for (std::size_t k = 0; k < C; ++k) {
    mean_t[k] = static_cast<T>(mean[k]);
    var_t[k] = static_cast<T>(m2[k] / count);
  }
  if (running_mean.defined()) {
    auto rm = detail::channel_values(running_mean, c), rv = detail::channel_values(running_var, c);
    std::vector<T> rm_t(C), rv_t(C);
    for (std::size_t k = 0; k < C; ++k) {
      rm_t[k] = static_cast<T>((1.0 - opt.momentum) * rm[k] + opt.momentum * mean[k]);
      rv_t[k] = static_cast<T>((1.0 - opt.momentum) * rv[k] + opt.momentum * m2[k] / (count - 1));
    }
    running_mean.copy_(tensor<T, D>::from(shape{c}, std::span<const T>(rm_t)));
    running_var.copy_(tensor<T, D>::from(shape{c}, std::span<const T>(rv_t)));
  }

  // The kernel's evaluation path normalises with the given statistics (fused epilogue included).
  tensor<T, D> gm = tensor<T, D>::from(shape{c}, std::span<const T>(mean_t));
  tensor<T, D> gv = tensor<T, D>::from(shape{c}, std::span<const T>(var_t));
  batch_norm_options eval_opt = opt;
  eval_opt.training = false;
  const tensor<T, D> w = weight.defined() ? weight.value() : tensor<T, D>();
  auto r = batch_norm2d_forward(xv, w, bias.defined() ? bias.value() : tensor<T, D>(), gm, gv, eval_opt,
                                residual.defined() ? residual.value() : tensor<T, D>());
  const variable<T, D> absent(tensor<T, D>(), false);
  const variable<T, D>& win = weight.defined() ? weight : absent;
  const variable<T, D>& bin = bias.defined() ? bias : absent;
  const variable<T, D>& rin = residual.defined() ? residual : absent;
  auto bw = [xv, w, c, count, red = std::move(reducer), mu = std::move(r.mean), invstd = std::move(r.invstd),
             y = opt.relu ? r.y : tensor<T, D>()](const tensor<T, D>& g, const std::vector<bool>& need) {
    // Local Σ dy' (dbias) and Σ dy'·x̂ (dweight) always: the global ones complete dx.
    auto b = batch_norm2d_backward(g, xv, w, mu, invstd, false, std::array<bool, 3>{need[0], true, true}, y, need[3]);
    if (need[0]) {
      const auto CC = static_cast<std::size_t>(c);
      const auto gw = b.dweight.to_vector(), gb = b.dbias.to_vector();
      std::vector<double> sums(2 * CC);
      for (std::size_t k = 0; k < CC; ++k) sums[k] = static_cast<double>(gb[k]), sums[CC + k] = static_cast<double>(gw[k]);
      red->all_reduce_sum(std::span<double>(sums));
      const auto wv = detail::channel_values(w, c), inv = detail::channel_values(invstd, c);
      std::vector<double> k0(CC), k1(CC);
      for (std::size_t k = 0; k < CC; ++k) {
        const double scale = wv[k] * inv[k];
        k0[k] = -scale * sums[k] / count;                     // − w·inv·mean(dy')
        k1[k] = -scale * sums[CC + k] * inv[k] / count;        // − w·inv·mean(dy'·x̂)·inv, times (x − μ)
      }
      const tensor<T, D> centred = sub(xv, mu.view(shape{1, c, 1, 1}));
      b.dx = add(add(b.dx, mul(centred, detail::channel_tensor<T, D>(k1))), detail::channel_tensor<T, D>(k0));
    }
    if (!need[1]) b.dweight = tensor<T, D>();
    if (!need[2]) b.dbias = tensor<T, D>();
    return grads_t<T, D>{std::move(b.dx), std::move(b.dweight), std::move(b.dbias), std::move(b.dmasked)};
  };
  return make_result<T, D>(std::move(r.y), "sync_batch_norm2d", {&x, &win, &bin, &rin}, std::move(bw));
}

}  // namespace ltl
