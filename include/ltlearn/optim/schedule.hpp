#pragma once
/// \file
/// Learning-rate schedules, evaluated per iteration (not per epoch), as small value types.
///
/// A schedule maps the global iteration index (0-based) to a learning rate. They compose:
/// `warmup<multistep_lr>{.iters = 390, .after = {...}}` ramps linearly to the base rate and
/// then follows the inner schedule. SPEC §4–5 recipes are one-liners (see make_* helpers).

#include "ltlearn/core/error.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <numbers>
#include <vector>

namespace ltl::optim {

/// A learning-rate schedule: `s(iteration)` gives the rate and `s.base()` the peak rate.
template <class S>
concept lr_schedule = requires(const S& s, index_t it) {
  { s(it) } -> std::convertible_to<double>;
  { s.base() } -> std::convertible_to<double>;
};

/// The same rate forever.
struct constant_lr {
  double lr = 0.1;
  [[nodiscard]] double base() const noexcept { return lr; }
  double operator()(index_t) const noexcept { return lr; }
};

/// lr · gamma^k where k is the number of milestones (iterations) already reached.
struct multistep_lr {
  double lr = 0.1;
  std::vector<index_t> milestones;  ///< iteration indices, ascending
  double gamma = 0.1;
  /// Optional per-milestone factors relative to lr (overrides gamma when non-empty), e.g.
  /// {0.01, 0.0001} for the CDT recipe's ×0.01 at 160 and ×0.0001 at 180.
  std::vector<double> factors;
  [[nodiscard]] double base() const noexcept { return lr; }
  double operator()(index_t it) const {
    std::size_t k = 0;
    while (k < milestones.size() && it >= milestones[k]) ++k;
    if (k == 0) return lr;
    if (!factors.empty()) {
      LTL_CHECK(factors.size() == milestones.size(), value_error, "multistep_lr: {} factors for {} milestones",
                factors.size(), milestones.size());
      return lr * factors[k - 1];
    }
    return lr * std::pow(gamma, static_cast<double>(k));
  }
};

/// Cosine annealing from lr at iteration `start` to `min_lr` at `start + total` (then held).
struct cosine_lr {
  double lr = 0.1;
  index_t total = 1;
  double min_lr = 0.0;
  index_t start = 0;
  [[nodiscard]] double base() const noexcept { return lr; }
  double operator()(index_t it) const {
    LTL_CHECK(total > 0, value_error, "cosine_lr: total iterations must be positive");
    const double t = std::clamp(static_cast<double>(it - start) / static_cast<double>(total), 0.0, 1.0);
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * t));
  }
};

/// Linear warm-up over the first `iters` iterations to the inner schedule's base rate:
/// lr(it) = base · (it + 1) / iters, then `after(it)`.
template <lr_schedule S>
struct warmup {
  index_t iters = 0;
  S after{};
  [[nodiscard]] double base() const { return after.base(); }
  double operator()(index_t it) const {
    if (it < iters) return after.base() * static_cast<double>(it + 1) / static_cast<double>(iters);
    return after(it);
  }
};

/// SPEC §5: warm-up over epoch 0 to `lr`, ×0.1 from `epoch_a`, ×0.01 from `epoch_b`.
inline warmup<multistep_lr> make_step_recipe(double lr, index_t iters_per_epoch, index_t warmup_epochs,
                                             index_t epoch_a, index_t epoch_b, double fa = 0.1, double fb = 0.01) {
  return {.iters = warmup_epochs * iters_per_epoch,
          .after = {.lr = lr, .milestones = {epoch_a * iters_per_epoch, epoch_b * iters_per_epoch}, .gamma = 0.1,
                    .factors = {fa, fb}}};
}
/// MFW recipe: warm-up, then cosine decay to 0 over the remaining epochs.
inline warmup<cosine_lr> make_cosine_recipe(double lr, index_t iters_per_epoch, index_t warmup_epochs, index_t epochs) {
  const index_t w = warmup_epochs * iters_per_epoch;
  return {.iters = w, .after = {.lr = lr, .total = std::max<index_t>(1, epochs * iters_per_epoch - w), .min_lr = 0, .start = w}};
}

}  // namespace ltl::optim
