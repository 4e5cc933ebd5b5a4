#pragma once
/// \file
/// Samplers: the order in which an epoch visits the training set (Kang et al., ICLR 2020,
/// §3 and Eq. 1–2; SPEC §6).
///
///   p_j = N_j^q / Σ_i N_i^q   — instance-balanced q = 1, class-balanced q = 0, square-root q = ½;
///   progressively-balanced: p_j(t) = (1 − w_t)·p_j^{q=1} + w_t·p_j^{q=0}, w_t = t/(T − 1)
///   (Kang et al.'s code; their Eq. 2 writes t/T — see `progressive`).
/// Class-dependent draws are two-stage (a class from p, then an instance of it uniformly).
/// Every order is a pure function of (seed, epoch), so resuming mid-epoch regenerates the same
/// order and skips to the saved position, and distributed ranks agree without communication.

#include "ltlearn/core/rng.hpp"
#include "ltlearn/core/shape.hpp"

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace ltl::sampling {

/// An epoch-order policy.
///
/// Represents a rule that turns (epoch) into the sequence of dataset indices visited in that
/// epoch. Requires `epoch_indices(epoch)` returning indices into the dataset it was built on,
/// and a `name()`. Ensures the result depends only on the sampler's construction arguments
/// (including its seed) and the epoch — never on earlier calls.
template <class S>
concept sampler = requires(const S& s, index_t epoch) {
  { s.epoch_indices(epoch) } -> std::same_as<std::vector<index_t>>;
  { s.name() } -> std::convertible_to<std::string>;
};

/// Per-class index lists of a label vector (labels in [0, C)).
struct class_index {
  std::vector<std::vector<index_t>> members;  ///< members[c] = dataset indices of class c
  index_t size = 0;                           ///< total number of samples

  class_index(std::span<const std::int64_t> labels, index_t num_classes) : members(static_cast<std::size_t>(num_classes)) {
    LTL_CHECK(num_classes > 0, value_error, "sampler: number of classes must be positive");
    for (std::size_t i = 0; i < labels.size(); ++i) {
      LTL_CHECK(labels[i] >= 0 && labels[i] < num_classes, value_error,
                "sampler: label {} at index {} is outside [0, {})", labels[i], i, num_classes);
      members[static_cast<std::size_t>(labels[i])].push_back(static_cast<index_t>(i));
    }
    size = static_cast<index_t>(labels.size());
    LTL_CHECK(size > 0, value_error, "sampler: empty dataset");
  }
  [[nodiscard]] index_t num_classes() const noexcept { return static_cast<index_t>(members.size()); }
  [[nodiscard]] std::vector<double> counts() const {
    std::vector<double> n;
    for (auto& m : members) n.push_back(static_cast<double>(m.size()));
    return n;
  }
};

/// Class probabilities p_j ∝ N_j^q (classes with no samples get 0).
inline std::vector<double> power_probabilities(const std::vector<double>& counts, double q) {
  std::vector<double> p(counts.size(), 0.0);
  double s = 0;
  for (std::size_t j = 0; j < counts.size(); ++j)
    if (counts[j] > 0) s += p[j] = std::pow(counts[j], q);
  LTL_CHECK(s > 0, value_error, "sampler: all classes are empty");
  for (auto& v : p) v /= s;
  return p;
}

namespace detail {
/// n two-stage draws: a class from `p` (inverse CDF), then a uniform member of it.
inline std::vector<index_t> two_stage(const class_index& ci, const std::vector<double>& p, index_t n, rng& g) {
  std::vector<double> cdf(p.size());
  std::partial_sum(p.begin(), p.end(), cdf.begin());
  std::vector<index_t> out(static_cast<std::size_t>(n));
  for (auto& o : out) {
    const double u = g.uniform() * cdf.back();
    auto c = static_cast<std::size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    c = std::min(c, p.size() - 1);
    while (ci.members[c].empty()) c = (c + 1) % p.size();  // only reachable through rounding at p = 0
    const auto& m = ci.members[c];
    o = m[static_cast<std::size_t>(g.below(m.size()))];
  }
  return out;
}
inline constexpr std::uint64_t stream_of(index_t epoch) { return static_cast<std::uint64_t>(epoch) * 2 + 1; }
}  // namespace detail

/// Instance-balanced sampling: a fresh random permutation of the whole set each epoch
/// (every sample exactly once, as a shuffled DataLoader).
class instance_balanced {
 public:
  instance_balanced(std::span<const std::int64_t> labels, index_t num_classes, std::uint64_t seed)
      : ci_(labels, num_classes), seed_(seed) {}
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const {
    std::vector<index_t> v(static_cast<std::size_t>(ci_.size));
    std::iota(v.begin(), v.end(), index_t{0});
    rng g(seed_, detail::stream_of(epoch));
    g.shuffle(std::span<index_t>(v));
    return v;
  }
  [[nodiscard]] std::string name() const { return "instance_balanced"; }
  [[nodiscard]] std::vector<double> class_probabilities(index_t /*epoch*/) const {
    return power_probabilities(ci_.counts(), 1.0);
  }

 private:
  class_index ci_;
  std::uint64_t seed_;
};

/// Two-stage sampling with p_j ∝ N_j^q: q = 0 class-balanced, q = ½ square-root, any q.
class power_sampler {
 public:
  /// `epoch_size` draws per epoch (0: the dataset size N).
  power_sampler(std::span<const std::int64_t> labels, index_t num_classes, double q, std::uint64_t seed,
                index_t epoch_size = 0)
      : ci_(labels, num_classes), q_(q), seed_(seed), n_(epoch_size ? epoch_size : ci_.size) {}
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const {
    rng g(seed_, detail::stream_of(epoch));
    return detail::two_stage(ci_, class_probabilities(epoch), n_, g);
  }
  [[nodiscard]] std::vector<double> class_probabilities(index_t /*epoch*/) const {
    return power_probabilities(ci_.counts(), q_);
  }
  [[nodiscard]] std::string name() const {
    if (q_ == 0) return "class_balanced";
    if (q_ == 0.5) return "square_root";
    return "power_q" + std::to_string(q_);
  }

 private:
  class_index ci_;
  double q_;
  std::uint64_t seed_;
  index_t n_;
};

/// Kang et al.'s class-aware sampler: round-robin over a shuffled class list; each visit takes
/// `per_class` consecutive items from that class's shuffled list (reshuffled when exhausted);
/// the class list is reshuffled after each full round. `epoch_size` draws per epoch (0: N; the
/// last visit is cut short at the epoch's end). Kang et al.'s stage-2 configs use per_class = 4
/// and an epoch of max_c N_c × C draws (`class_aware_epoch_size`). Unlike their sampler, whose
/// cycling iterators carry over from one epoch to the next, each epoch here starts afresh from
/// (seed, epoch), so an epoch can be regenerated on resume or on another rank.
class class_aware {
 public:
  class_aware(std::span<const std::int64_t> labels, index_t num_classes, std::uint64_t seed, index_t per_class = 1,
              index_t epoch_size = 0)
      : ci_(labels, num_classes), seed_(seed), per_class_(per_class), n_(epoch_size ? epoch_size : ci_.size) {
    LTL_CHECK(per_class > 0, value_error, "class_aware: per_class must be positive");
  }
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const {
    rng g(seed_, detail::stream_of(epoch));
    std::vector<index_t> classes;
    for (index_t c = 0; c < ci_.num_classes(); ++c)
      if (!ci_.members[static_cast<std::size_t>(c)].empty()) classes.push_back(c);
    std::vector<std::vector<index_t>> lists = ci_.members;
    std::vector<std::size_t> pos(lists.size(), 0);
    for (auto& l : lists) g.shuffle(std::span<index_t>(l));
    std::vector<index_t> out;
    out.reserve(static_cast<std::size_t>(n_));
    std::size_t k = classes.size();
    while (static_cast<index_t>(out.size()) < n_) {
      if (k == classes.size()) {
        g.shuffle(std::span<index_t>(classes));
        k = 0;
      }
      const auto c = static_cast<std::size_t>(classes[k++]);
      for (index_t r = 0; r < per_class_ && static_cast<index_t>(out.size()) < n_; ++r) {
        if (pos[c] == lists[c].size()) {
          g.shuffle(std::span<index_t>(lists[c]));
          pos[c] = 0;
        }
        out.push_back(lists[c][pos[c]++]);
      }
    }
    return out;
  }
  [[nodiscard]] std::vector<double> class_probabilities(index_t /*epoch*/) const {
    return power_probabilities(ci_.counts(), 0.0);
  }
  [[nodiscard]] std::string name() const { return "class_aware"; }

 private:
  class_index ci_;
  std::uint64_t seed_;
  index_t per_class_, n_;
};

/// max_c N_c × C over the C non-empty classes: the epoch length of Kang et al.'s class-aware
/// sampler, in which every class is drawn about as often as the largest class has samples.
inline index_t class_aware_epoch_size(std::span<const std::int64_t> labels, index_t num_classes) {
  const class_index ci(labels, num_classes);
  index_t largest = 0, classes = 0;
  for (const auto& m : ci.members) {
    largest = std::max(largest, static_cast<index_t>(m.size()));
    classes += m.empty() ? 0 : 1;
  }
  return largest * classes;
}

/// Progressively-balanced sampling: p_j(t) = (1 − w_t)·p_j^{q=1} + w_t·p_j^{q=0}, t = epoch.
///
/// Kang et al.'s Eq. 2 writes w_t = t/T with T the number of epochs, which never reaches class-
/// balanced sampling (the last epoch, t = T − 1, has w = 1 − 1/T). Their code (the class weights
/// of MixedPrioritizedSampler, `np.linspace(0, 1, epochs)[t]`) uses w_t = t/(T − 1): epoch 0 is
/// instance-balanced and the last epoch fully class-balanced. ltlearn follows the code. Epochs
/// past the last stay class-balanced (w clamped to 1). With T = 1, linspace gives the single
/// value 0: every epoch is instance-balanced, as in the code (and no division by zero).
class progressive {
 public:
  progressive(std::span<const std::int64_t> labels, index_t num_classes, index_t total_epochs, std::uint64_t seed,
              index_t epoch_size = 0)
      : ci_(labels, num_classes), T_(total_epochs), seed_(seed), n_(epoch_size ? epoch_size : ci_.size) {
    LTL_CHECK(total_epochs > 0, value_error, "progressive: total epochs must be positive");
  }
  /// The weight w_t of class-balanced sampling in epoch t: t/(T − 1) clamped to [0, 1]; 0 if T = 1.
  [[nodiscard]] double balanced_weight(index_t epoch) const {
    if (T_ == 1) return 0.0;
    return std::clamp(static_cast<double>(epoch) / static_cast<double>(T_ - 1), 0.0, 1.0);
  }
  [[nodiscard]] std::vector<double> class_probabilities(index_t epoch) const {
    const auto pi = power_probabilities(ci_.counts(), 1.0), pc = power_probabilities(ci_.counts(), 0.0);
    const double t = balanced_weight(epoch);
    std::vector<double> p(pi.size());
    for (std::size_t j = 0; j < p.size(); ++j) p[j] = (1 - t) * pi[j] + t * pc[j];
    return p;
  }
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const {
    rng g(seed_, detail::stream_of(epoch));
    return detail::two_stage(ci_, class_probabilities(epoch), n_, g);
  }
  [[nodiscard]] std::string name() const { return "progressive"; }

 private:
  class_index ci_;
  index_t T_;
  std::uint64_t seed_;
  index_t n_;
};

/// Deferred re-sampling (DRS): policy `Before` until epoch `switch_epoch`, then `After`.
template <sampler Before, sampler After>
class deferred {
 public:
  deferred(Before before, After after, index_t switch_epoch)
      : before_(std::move(before)), after_(std::move(after)), at_(switch_epoch) {}
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const {
    return epoch < at_ ? before_.epoch_indices(epoch) : after_.epoch_indices(epoch);
  }
  [[nodiscard]] std::string name() const { return "deferred(" + before_.name() + "->" + after_.name() + ")"; }

 private:
  Before before_;
  After after_;
  index_t at_;
};

/// Rank `rank` of `world`'s share of a global order: positions rank, rank + world, …
/// The shards partition the order exactly (no duplicates, no drops).
inline std::vector<index_t> shard(const std::vector<index_t>& order, index_t rank, index_t world) {
  LTL_CHECK(world > 0 && rank >= 0 && rank < world, value_error, "shard: rank {} of world {} is invalid", rank, world);
  std::vector<index_t> out;
  for (auto i = static_cast<std::size_t>(rank); i < order.size(); i += static_cast<std::size_t>(world))
    out.push_back(order[i]);
  return out;
}

}  // namespace ltl::sampling
