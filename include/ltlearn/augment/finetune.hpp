#pragma once
/// \file
/// Phase II of feature space augmentation (Chu et al., ECCV 2020, §4.3; SPEC §10): fine-tune
/// the layers after the augmentation point on fsa_generator batches with plain softmax
/// cross-entropy, SGD at a fixed small learning rate (paper: 0.001 for 6,400 iterations of
/// batch 128). The layers before the point are frozen: their maps come from the feature bank.
///
/// At the last feature map only the classifier is trained, on pooled rows [B, K]. At an earlier
/// point the stages between it and the pool are trained too (`train_stages`, in train mode,
/// so batch norm sees the phase-II batches) or kept frozen in eval mode.

#include "ltlearn/augment/fsa.hpp"
#include "ltlearn/losses/fused_loss.hpp"
#include "ltlearn/ops/elementwise.hpp"
#include "ltlearn/optim/sgd.hpp"

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ltl::augment {

/// Options of fsa_finetune.
struct fsa_finetune_options {
  index_t iterations = 6400;
  double lr = 0.001;  ///< fixed
  optim::sgd_options sgd{.momentum = 0.9, .weight_decay = 2e-4};
  double logit_scale = 1;    ///< logits × s before the loss (a cosine classifier's scale, e.g. LDAM's 30)
  bool train_stages = true;  ///< earlier point: also train the stages between the point and the pool
  std::function<void(index_t, double)> on_step;  ///< after each step: (iteration, loss)
};

/// What fsa_finetune did.
struct fsa_finetune_result {
  index_t iterations = 0;
  double first_loss = 0;        ///< loss of the first batch
  double last_loss = 0;         ///< mean loss of the last min(100, iterations) batches
  index_t augmented_rows = 0;   ///< augmented samples seen
  index_t empty_specific = 0;   ///< of which with a zero specific share (no non-zero specific vector)
  index_t empty_generic = 0;    ///< of which with a zero generic share
  std::vector<std::string> trained;  ///< names of the trained parameters
};

/// Fine-tunes `model` (the one the generator's bank was built from) on `gen`'s batches, which
/// are drawn on the host and moved to the model's device D.
/// Restores the model's mode and every parameter's requires_grad flag afterwards.
template <real_scalar T, device D, class Bank>
fsa_finetune_result fsa_finetune(nn::staged_model<T, D>& model, fsa_generator<T, Bank>& gen,
                                 const fsa_finetune_options& o) {
  const auto& bank = gen.bank();
  const int P = bank.point_index;
  LTL_CHECK(P >= 0 && P < model.feature_point(), value_error,
            "fsa_finetune: the bank's point index {} is not a point before the model's pool (build the bank with "
            "build_feature_bank)",
            P);
  LTL_CHECK(o.iterations >= 0 && o.lr > 0 && o.logit_scale > 0, value_error,
            "fsa_finetune: iterations {}, lr {} and logit scale {} must be positive", o.iterations, o.lr,
            o.logit_scale);
  const int first_trained = gen.pooled_output() || !o.train_stages ? model.feature_point() + 1 : P + 1;
  std::vector<std::string> prefixes;
  for (int i = first_trained; i <= model.last_point(); ++i)
    prefixes.push_back(model.points()[static_cast<std::size_t>(i)] + ".");

  fsa_finetune_result res;
  std::vector<std::pair<std::string, variable<T, D>>> trainable;
  const auto all = model.named_parameters();
  std::vector<bool> was(all.size());
  for (std::size_t j = 0; j < all.size(); ++j) {
    was[j] = all[j].second.requires_grad();
    bool on = false;
    for (auto& pre : prefixes) on = on || all[j].first.rfind(pre, 0) == 0;
    auto p = all[j].second;
    p.set_requires_grad(on);
    if (on) {
      trainable.push_back(all[j]);
      res.trained.push_back(all[j].first);
    }
  }
  struct restore {
    nn::staged_model<T, D>& m;
    const std::vector<std::pair<std::string, variable<T, D>>>& params;
    const std::vector<bool>& flags;
    bool training;
    ~restore() {
      for (std::size_t j = 0; j < params.size(); ++j) {
        auto p = params[j].second;
        p.set_requires_grad(flags[j]);
      }
      m.train(training);
    }
  } guard{model, all, was, model.is_training()};
  LTL_CHECK(!trainable.empty(), value_error, "fsa_finetune: no parameter after the augmentation point to train");
  model.eval();
  for (int i = first_trained; i <= model.last_point(); ++i) model.stage(i).train(true);

  optim::sgd<T, D> opt(trainable, o.sgd);
  const int from = gen.pooled_output() ? model.feature_point() : P;
  const index_t tail_window = std::min<index_t>(100, o.iterations);
  double tail_sum = 0;
  for (index_t it = 0; it < o.iterations; ++it) {
    auto b = gen.next();
    variable<T, D> z = model.run(variable<T, D>(b.x.template to<D>()), from, model.last_point());
    if (o.logit_scale != 1) z = ltl::affine(z, static_cast<T>(o.logit_scale), T(0));
    auto loss = cross_entropy(z, b.labels.template to<D>());
    const double lv = static_cast<double>(loss.value().item());
    LTL_CHECK(std::isfinite(lv), value_error, "fsa_finetune: the loss is {} at iteration {} (lr {})", lv, it, o.lr);
    opt.zero_grad();
    loss.backward();
    opt.step(o.lr);
    if (it == 0) res.first_loss = lv;
    if (it >= o.iterations - tail_window) tail_sum += lv;
    for (auto r : b.role) res.augmented_rows += r == fsa_role::augmented;
    res.empty_specific += b.empty_specific;
    res.empty_generic += b.empty_generic;
    ++res.iterations;
    if (o.on_step) o.on_step(it, lv);
  }
  res.last_loss = tail_window > 0 ? tail_sum / static_cast<double>(tail_window) : 0;
  return res;
}

}  // namespace ltl::augment
