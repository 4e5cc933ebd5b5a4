#pragma once
/// \file
/// Online feature space augmentation (Chu, Bian, Liu, Ye, ECCV 2020, §4.2–4.3, Algorithm 1;
/// SPEC §10): fsa_generator draws phase-II batches from a feature_bank.
///
/// A batch holds N_t real tail samples; after each, N_a augmented samples of its class; then
/// N_t·(1 + N_a) real head samples (§4.3: batch size 2·N_t·(1 + N_a); Alg. 1 lists the head
/// draw inside the tail loop, the text outside — the text is followed). An augmented sample of
/// tail sample c and a sample u of one of c's confusing classes draws γ ~ U(0, 1),
/// n_s = round(γ·L) class-specific vectors of c (CAM ≥ τ_s) and L − n_s class-generic vectors
/// of u (CAM < τ_g), with repetition and skipping all-zero vectors (L = H·W). When c has no
/// non-zero specific vector (or u no non-zero generic one) the draws of that share are zero
/// vectors; the batch counts such rows (empty_specific / empty_generic).
///
/// Draw order of a batch: first every sample-level draw (tail samples, the shuffles of their
/// confusing classes, partner samples, γ, head samples), then the bank prepares the maps the
/// batch reads (fsa_bank::prepare: a no-op for the resident feature_bank, the backbone run on
/// those images for a streamed_bank), then each augmented row's vectors are drawn. Batches are
/// therefore the same from either kind of bank.
///
/// At the last feature map global average pooling follows, so only the mean of the L drawn
/// vectors matters: batches are then pooled rows [B, K], computed without building the map
/// (exact: the pooled map is that mean). At an earlier point (the paper's Block2/Block3 ablation)
/// the map keeps u's spatial layout: c's specific vectors replace u's non-generic locations
/// first (then, for large γ, generic ones), u's own generic vectors stay where they are, and
/// u's non-generic locations left over receive drawn generic vectors of u; batches are maps
/// [B, K, H, W] for the remaining stages.

#include "ltlearn/augment/feature_bank.hpp"
#include "ltlearn/augment/head_tail.hpp"
#include "ltlearn/core/config.hpp"
#include "ltlearn/core/rng.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace ltl::augment {

/// Options of fsa_generator. Paper: batch 128 with N_a = 3 (so N_t = 16); τ_s, τ_g not reported.
struct fsa_options {
  double tau_s = 0.5;            ///< class-specific locations: normalised CAM ≥ τ_s
  double tau_g = 0.5;            ///< class-generic locations: normalised CAM < τ_g
  index_t tail_per_batch = 16;   ///< N_t
  index_t augment_per_tail = 3;  ///< N_a; 0 gives balanced fine-tuning without augmentation
  bool class_balanced = true;    ///< draw a class uniformly, then one of its images (false: any image)
  bool explicit_maps = false;    ///< at the last map, emit maps [B, K, H, W] instead of pooled rows
  std::uint64_t seed = 0;
};

/// What a batch row is.
enum class fsa_role : std::uint8_t { tail, augmented, head };

/// How one augmented map is assembled: output location p holds vector `location[p]` of bank
/// sample `sample[p]` (−1: a zero vector).
struct fsa_recipe {
  index_t tail_sample = -1;     ///< bank index of the real tail sample (specific source)
  index_t partner_sample = -1;  ///< bank index of the confusing-class sample (generic source)
  index_t n_specific = 0;       ///< round(γ·L)
  bool empty_specific = false;  ///< the specific share had no non-zero vector to draw
  bool empty_generic = false;   ///< the generic share had no non-zero vector to draw
  std::vector<index_t> sample;    ///< [L]
  std::vector<index_t> location;  ///< [L]
};

/// One phase-II batch.
template <real_scalar T>
struct fsa_batch {
  tensor<T> x;                   ///< [B, K] pooled rows, or [B, K, H, W] maps
  tensor<std::int64_t> labels;   ///< [B]; augmented rows carry their tail class
  std::vector<fsa_role> role;    ///< [B]
  std::vector<index_t> source;   ///< [B] real sample (the tail sample for augmented rows)
  std::vector<index_t> partner;  ///< [B] confusing-class sample of augmented rows, −1 otherwise
  index_t empty_specific = 0;    ///< augmented rows whose specific share was zero vectors
  index_t empty_generic = 0;     ///< augmented rows whose generic share was zero vectors
};

/// Draws phase-II batches from a bank (fsa_bank: feature_bank<T>, or a streamed_bank). Keeps a
/// reference to `bank`, which must outlive the generator.
template <real_scalar T, fsa_bank<T> Bank = feature_bank<T>>
class fsa_generator {
 public:
  /// `confusing` [C]: the confusing classes of each tail class (confusing_classes()).
  fsa_generator(const Bank& bank, head_tail_split split, std::vector<std::vector<index_t>> confusing,
                fsa_options o)
      : bank_(&bank), split_(std::move(split)), confusing_(std::move(confusing)), opt_(o), rng_(o.seed, 0x667361ull) {
    check_cam_threshold(o.tau_s, "tau_s");
    check_cam_threshold(o.tau_g, "tau_g");
    const index_t C = bank.num_classes;
    LTL_CHECK(bank.size() > 0 && bank.locations() > 0, value_error, "fsa_generator: the feature bank is empty");
    LTL_CHECK(o.tail_per_batch >= 1 && o.augment_per_tail >= 0, value_error,
              "fsa_generator: N_t = {} must be ≥ 1 and N_a = {} ≥ 0", o.tail_per_batch, o.augment_per_tail);
    LTL_CHECK(static_cast<index_t>(split_.is_head.size()) == C && static_cast<index_t>(confusing_.size()) == C,
              shape_error, "fsa_generator: split of {} classes and confusing lists of {} for a bank of {} classes",
              split_.is_head.size(), confusing_.size(), C);
    LTL_CHECK(!split_.tail.empty(), value_error, "fsa_generator: no tail class (h_r = 1 or a single class?)");
    LTL_CHECK(!split_.head.empty(), value_error, "fsa_generator: no head class");
    auto check_class = [&](index_t c, const char* what) {
      LTL_CHECK(c >= 0 && c < C && !bank.by_class[static_cast<std::size_t>(c)].empty(), value_error,
                "fsa_generator: {} class {} has no sample in the bank", what, c);
    };
    for (index_t c : split_.head) check_class(c, "head");
    for (index_t c : split_.tail) {
      check_class(c, "tail");
      if (o.augment_per_tail > 0) {
        LTL_CHECK(!confusing_[static_cast<std::size_t>(c)].empty(), value_error,
                  "fsa_generator: tail class {} has no confusing class", c);
        for (index_t u : confusing_[static_cast<std::size_t>(c)]) check_class(u, "confusing");
      }
    }
    for (index_t c : split_.tail) append(tail_pool_, bank.by_class[static_cast<std::size_t>(c)]);
    for (index_t c : split_.head) append(head_pool_, bank.by_class[static_cast<std::size_t>(c)]);
  }

  /// 2·N_t·(1 + N_a).
  [[nodiscard]] index_t batch_size() const noexcept {
    return 2 * opt_.tail_per_batch * (1 + opt_.augment_per_tail);
  }
  /// True when batches are pooled rows [B, K] (last map, explicit_maps off).
  [[nodiscard]] bool pooled_output() const noexcept { return bank_->last_map && !opt_.explicit_maps; }
  [[nodiscard]] const fsa_options& options() const noexcept { return opt_; }
  [[nodiscard]] const head_tail_split& split() const noexcept { return split_; }
  [[nodiscard]] const std::vector<std::vector<index_t>>& confusing() const noexcept { return confusing_; }
  [[nodiscard]] const Bank& bank() const noexcept { return *bank_; }
  /// The generator's random state (batches are a function of the seed and the batches drawn).
  [[nodiscard]] rng& random() noexcept { return rng_; }

  /// Locations of sample i with a non-zero vector and CAM ≥ τ_s, ascending.
  [[nodiscard]] std::vector<index_t> specific_locations(index_t i) const {
    return locations_where(i, [t = static_cast<T>(opt_.tau_s)](T m) { return m >= t; });
  }
  /// Locations of sample i with a non-zero vector and CAM < τ_g, ascending.
  [[nodiscard]] std::vector<index_t> generic_locations(index_t i) const {
    return locations_where(i, [t = static_cast<T>(opt_.tau_g)](T m) { return m < t; });
  }

  /// The recipe of one augmented map from tail sample `tail` and partner sample `partner` with
  /// ratio γ, drawing the vectors from `g`.
  fsa_recipe make_recipe(index_t tail, index_t partner, double gamma, rng& g) const {
    const index_t L = bank_->locations();
    LTL_CHECK(tail >= 0 && tail < bank_->size() && partner >= 0 && partner < bank_->size(), value_error,
              "fsa_generator: samples {} and {} outside the bank [0, {})", tail, partner, bank_->size());
    LTL_CHECK(gamma >= 0 && gamma <= 1, value_error, "fsa_generator: gamma {} outside [0, 1]", gamma);
    const auto S = specific_locations(tail), G = generic_locations(partner);
    fsa_recipe r;
    r.tail_sample = tail;
    r.partner_sample = partner;
    r.n_specific = std::clamp<index_t>(static_cast<index_t>(std::llround(gamma * static_cast<double>(L))), 0, L);
    r.empty_specific = r.n_specific > 0 && S.empty();
    r.empty_generic = r.n_specific < L && G.empty();
    r.sample.assign(static_cast<std::size_t>(L), partner);
    r.location.assign(static_cast<std::size_t>(L), -1);
    auto draw = [&g](const std::vector<index_t>& from) -> index_t {
      return from.empty() ? -1 : from[static_cast<std::size_t>(g.below(from.size()))];
    };
    std::vector<index_t> order(static_cast<std::size_t>(L));
    std::vector<bool> own(static_cast<std::size_t>(L), false);
    if (bank_->last_map) {
      for (index_t p = 0; p < L; ++p) order[static_cast<std::size_t>(p)] = p;  // layout is pooled away
    } else {
      for (index_t p : G) own[static_cast<std::size_t>(p)] = true;
      std::vector<index_t> other, kept;
      for (index_t p = 0; p < L; ++p) (own[static_cast<std::size_t>(p)] ? kept : other).push_back(p);
      g.shuffle(std::span<index_t>(other));
      g.shuffle(std::span<index_t>(kept));
      std::copy(kept.begin(), kept.end(), std::copy(other.begin(), other.end(), order.begin()));
    }
    for (index_t q = 0; q < L; ++q) {
      const auto p = static_cast<std::size_t>(order[static_cast<std::size_t>(q)]);
      if (q < r.n_specific) {
        r.sample[p] = tail;
        r.location[p] = draw(S);
      } else {
        r.location[p] = own[p] ? static_cast<index_t>(p) : draw(G);
      }
    }
    return r;
  }

  /// The augmented map of a recipe: [K, H, W].
  [[nodiscard]] tensor<T> compose_map(const fsa_recipe& r) const {
    check_recipe(r);
    tensor<T> out(shape{bank_->channels, bank_->height, bank_->width});
    compose_map_into(r, out.data());
    return out;
  }
  /// The pooled augmented feature of a recipe, the mean of its L vectors: [K].
  [[nodiscard]] tensor<T> compose_pooled(const fsa_recipe& r) const {
    check_recipe(r);
    tensor<T> out(shape{bank_->channels});
    compose_pooled_into(r, out.data());
    return out;
  }

  /// The next batch (Alg. 1), in the draw order of the file comment.
  fsa_batch<T> next() {
    const index_t Nt = opt_.tail_per_batch, Na = opt_.augment_per_tail, B = batch_size();
    fsa_batch<T> b;
    b.role.reserve(static_cast<std::size_t>(B));
    std::vector<std::int64_t> y;
    struct planned {
      index_t tail, partner;
      double gamma;
    };
    std::vector<planned> plan;
    std::vector<index_t> recipe_of;  // row → recipe index, −1 for real rows
    auto push = [&](fsa_role role, index_t src, index_t partner, std::int64_t label) {
      b.role.push_back(role);
      b.source.push_back(src);
      b.partner.push_back(partner);
      y.push_back(label);
      recipe_of.push_back(role == fsa_role::augmented ? static_cast<index_t>(plan.size()) - 1 : -1);
    };
    std::vector<index_t> perm;
    for (index_t t = 0; t < Nt; ++t) {
      const index_t i = draw_sample(split_.tail, tail_pool_);
      const std::int64_t c = bank_->labels[static_cast<std::size_t>(i)];
      push(fsa_role::tail, i, -1, c);
      if (Na == 0) continue;
      // Each confusing class once when N_a = N_f (Alg. 1); otherwise a random cycle through them.
      perm = confusing_[static_cast<std::size_t>(c)];
      rng_.shuffle(std::span<index_t>(perm));
      for (index_t j = 0; j < Na; ++j) {
        const index_t u = perm[static_cast<std::size_t>(j) % perm.size()];
        const auto& of_u = bank_->by_class[static_cast<std::size_t>(u)];
        const index_t k = of_u[static_cast<std::size_t>(rng_.below(of_u.size()))];
        plan.push_back({i, k, rng_.uniform()});
        push(fsa_role::augmented, i, k, c);
      }
    }
    for (index_t h = 0; h < Nt * (1 + Na); ++h) {
      const index_t i = draw_sample(split_.head, head_pool_);
      push(fsa_role::head, i, -1, bank_->labels[static_cast<std::size_t>(i)]);
    }
    // The maps this batch reads: the augmented rows' two samples; every row's with map output.
    std::vector<index_t> reads;
    for (const planned& p : plan) reads.insert(reads.end(), {p.tail, p.partner});
    if (!pooled_output()) reads.insert(reads.end(), b.source.begin(), b.source.end());
    bank_->prepare(std::span<const index_t>(reads));
    std::vector<fsa_recipe> recipes;
    recipes.reserve(plan.size());
    for (const planned& p : plan) {
      recipes.push_back(make_recipe(p.tail, p.partner, p.gamma, rng_));
      b.empty_specific += recipes.back().empty_specific;
      b.empty_generic += recipes.back().empty_generic;
    }
    b.labels = tensor<std::int64_t>(shape{B});
    std::copy(y.begin(), y.end(), b.labels.data());
    const index_t K = bank_->channels, L = bank_->locations();
    const bool pooled = pooled_output();
    b.x = pooled ? tensor<T>(shape{B, K}) : tensor<T>(shape{B, K, bank_->height, bank_->width});
    const index_t row = pooled ? K : K * L;
    // Rows are independent host work (each written by one thread): a host parallel loop.
    LTL_OMP(omp parallel for schedule(static) if (B >= 2))
    for (index_t r = 0; r < B; ++r) {
      T* out = b.x.data() + r * row;
      const index_t ri = recipe_of[static_cast<std::size_t>(r)];
      if (ri >= 0) {
        pooled ? compose_pooled_into(recipes[static_cast<std::size_t>(ri)], out)
               : compose_map_into(recipes[static_cast<std::size_t>(ri)], out);
      } else if (pooled) {
        std::copy_n(bank_->pooled.data() + b.source[static_cast<std::size_t>(r)] * K, K, out);
      } else {
        const index_t i = b.source[static_cast<std::size_t>(r)];
        for (index_t p = 0; p < L; ++p)
          for (index_t k = 0; k < K; ++k) out[k * L + p] = bank_->vector(i, p)[k];
      }
    }
    return b;
  }

 private:
  static void append(std::vector<index_t>& to, const std::vector<index_t>& from) {
    to.insert(to.end(), from.begin(), from.end());
  }

  template <class Pred>
  std::vector<index_t> locations_where(index_t i, Pred keep) const {
    LTL_CHECK(i >= 0 && i < bank_->size(), value_error, "fsa_generator: sample {} outside the bank [0, {})", i,
              bank_->size());
    std::vector<index_t> out;
    for (index_t p = 0; p < bank_->locations(); ++p)
      if (bank_->is_nonzero(i, p) && keep(bank_->cam_at(i, p))) out.push_back(p);
    return out;
  }

  index_t draw_sample(const std::vector<index_t>& classes, const std::vector<index_t>& pool) {
    if (!opt_.class_balanced) return pool[static_cast<std::size_t>(rng_.below(pool.size()))];
    const index_t c = classes[static_cast<std::size_t>(rng_.below(classes.size()))];
    const auto& of_c = bank_->by_class[static_cast<std::size_t>(c)];
    return of_c[static_cast<std::size_t>(rng_.below(of_c.size()))];
  }

  void check_recipe(const fsa_recipe& r) const {
    const index_t L = bank_->locations();
    LTL_CHECK(static_cast<index_t>(r.location.size()) == L && static_cast<index_t>(r.sample.size()) == L, shape_error,
              "fsa_generator: a recipe of {} locations for maps of {}", r.location.size(), L);
    for (std::size_t p = 0; p < r.location.size(); ++p)
      LTL_CHECK(r.location[p] < L && (r.location[p] < 0 || (r.sample[p] >= 0 && r.sample[p] < bank_->size())),
                value_error, "fsa_generator: recipe entry {} (sample {}, location {}) is outside the bank", p,
                r.sample[p], r.location[p]);
  }

  // Recipes reaching these are valid (checked or built by make_recipe): they run in parallel
  // regions and must not throw.
  void compose_map_into(const fsa_recipe& r, T* out) const {
    const index_t K = bank_->channels, L = bank_->locations();
    for (index_t p = 0; p < L; ++p) {
      const index_t loc = r.location[static_cast<std::size_t>(p)];
      const T* v = loc >= 0 ? bank_->vector(r.sample[static_cast<std::size_t>(p)], loc) : nullptr;
      for (index_t k = 0; k < K; ++k) out[k * L + p] = v ? v[k] : T(0);
    }
  }

  void compose_pooled_into(const fsa_recipe& r, T* out) const {
    const index_t K = bank_->channels, L = bank_->locations();
    std::vector<double> acc(static_cast<std::size_t>(K), 0.0);
    for (index_t p = 0; p < L; ++p) {
      const index_t loc = r.location[static_cast<std::size_t>(p)];
      if (loc < 0) continue;
      const T* v = bank_->vector(r.sample[static_cast<std::size_t>(p)], loc);
      for (index_t k = 0; k < K; ++k) acc[static_cast<std::size_t>(k)] += static_cast<double>(v[k]);
    }
    for (index_t k = 0; k < K; ++k) out[k] = static_cast<T>(acc[static_cast<std::size_t>(k)] / static_cast<double>(L));
  }

  const Bank* bank_;
  head_tail_split split_;
  std::vector<std::vector<index_t>> confusing_;
  fsa_options opt_;
  rng rng_;
  std::vector<index_t> tail_pool_, head_pool_;
};

}  // namespace ltl::augment
