#pragma once
/// \file
/// nn::staged_model: a network as a chain of named stages, so that other code can run it up to
/// or from any named point — what feature mixing (at "group k"), feature extraction (f(x) at
/// "pool"), CAM (the last feature map) and decoupled classifiers (a new "fc") need.
///
/// Points are named after the stage that ends there: for the CIFAR ResNets
/// {"stem", "stage1", "stage2", "stage3", "pool", "fc"}. The MFW paper's groups are the stem
/// (group 1) and each stage (groups 2, 3, …): `group_point(2)` is "stage1".

#include "ltlearn/nn/module.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ltl::nn {

/// A model made of named unary stages; the last stage is the classifier and the one named
/// "pool" produces the feature f(x) [N, F].
template <real_scalar T, device D = cpu::device>
class staged_model : public unary_module<T, D> {
 public:
  using typename module<T, D>::var;

  /// Names of the points, in order.
  [[nodiscard]] const std::vector<std::string>& points() const noexcept { return names_; }
  /// Index of a named point; value_error listing the valid names otherwise.
  [[nodiscard]] int point(std::string_view name) const {
    for (std::size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) return static_cast<int>(i);
    std::string all;
    for (auto& n : names_) all += (all.empty() ? "" : ", ") + n;
    throw value_error(fmt::format("model has no point '{}'; points are: {}", name, all));
  }
  /// The point after group k (1 = stem, 2 = first stage, …), as in the MFW paper.
  [[nodiscard]] int group_point(int k) const {
    LTL_CHECK(k >= 1 && k < feature_point() + 1, value_error, "group {} does not exist (groups are 1..{})", k,
              feature_point());
    return k - 1;
  }
  [[nodiscard]] int feature_point() const { return point("pool"); }
  [[nodiscard]] int last_point() const noexcept { return static_cast<int>(stages_.size()) - 1; }

  /// Applies the stages after point `from` up to and including point `to` (from = −1: input).
  var run(const var& x, int from, int to) {
    LTL_CHECK(from >= -1 && from <= to && to <= last_point(), value_error, "run: invalid point range ({}, {}]", from,
              to);
    var h = x;
    for (int i = from + 1; i <= to; ++i) h = stages_[static_cast<std::size_t>(i)]->forward(h);
    return h;
  }
  var forward(const var& x) override { return run(x, -1, last_point()); }
  /// The pooled feature f(x) [N, F].
  var features(const var& x) { return run(x, -1, feature_point()); }
  /// Logits from pooled features.
  var classify(const var& f) { return run(f, feature_point(), last_point()); }

  /// The classifier stage (the last one).
  [[nodiscard]] unary_module<T, D>& classifier() { return *stages_.back(); }
  [[nodiscard]] std::shared_ptr<unary_module<T, D>> classifier_ptr() const { return stages_.back(); }
  /// Replaces the classifier (cRT's re-initialised head, LWS, τ-normalised weights).
  void set_classifier(std::shared_ptr<unary_module<T, D>> head) {
    this->replace_module(names_.back(), head);
    stages_.back() = std::move(head);
  }
  /// Stage `i` (the module that ends at point i).
  [[nodiscard]] unary_module<T, D>& stage(int i) { return *stages_.at(static_cast<std::size_t>(i)); }

 protected:
  /// Appends a stage ending at point `name`.
  template <std::derived_from<unary_module<T, D>> M>
  std::shared_ptr<M> add_stage(std::string name, std::shared_ptr<M> m) {
    this->register_module(name, m);
    names_.push_back(std::move(name));
    stages_.push_back(m);
    return m;
  }

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<unary_module<T, D>>> stages_;
};

}  // namespace ltl::nn
