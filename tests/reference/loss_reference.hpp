#pragma once
// Unfused reference of the logit-adjusted loss family (SPEC §7), written only with ltlearn's
// basic differentiable ops. The fused kernel is tested against it; it is never compared with itself.

#include <ltlearn/ltlearn.hpp>
#include <ltlearn/losses/policies.hpp>

namespace ltl_ref {

template <class T>
ltl::tensor<T> per_class(const std::vector<double>& v, ltl::index_t C, double neutral) {
  ltl::tensor<T> t(ltl::shape{C});
  for (ltl::index_t c = 0; c < C; ++c) t.data()[c] = static_cast<T>(v.empty() ? neutral : v[static_cast<std::size_t>(c)]);
  return t;
}

/// L = Σ_i s_i·w_{y_i}·(1 − p_{y_i})^φ·(−log p_{y_i}) / Σ_i w_{y_i}, p = softmax(s·(z − m·onehot)/a + b).
template <class T>
ltl::variable<T> logit_adjusted_loss(const ltl::variable<T>& z, const ltl::tensor<std::int64_t>& y,
                                     const ltl::loss_terms& t, const ltl::tensor<T>& sample_w = {}) {
  using V = ltl::variable<T>;
  const ltl::index_t B = z.size(0), C = z.size(1);
  const auto onehot = ltl::one_hot<T>(y, C);
  V zz = z;
  if (!t.margins.empty()) zz = zz - V(onehot) * V(per_class<T>(t.margins, C, 0).unsqueeze(0));
  zz = zz * V(per_class<T>(std::vector<double>{}, C, t.scale).unsqueeze(0));
  if (!t.temperatures.empty()) zz = zz / V(per_class<T>(t.temperatures, C, 1).unsqueeze(0));
  if (!t.offsets.empty()) zz = zz + V(per_class<T>(t.offsets, C, 0).unsqueeze(0));
  const V logp_y = ltl::gather(ltl::log_softmax(zz, 1), y);  // [B]
  const V w_y = ltl::gather(V(per_class<T>(t.weights, C, 1).unsqueeze(0).expand(ltl::shape{B, C}).contiguous()), y);
  V per_sample = -(w_y * logp_y);
  if (t.focal != 0) per_sample = per_sample * ltl::pow(1.0 - ltl::exp(logp_y), static_cast<T>(t.focal));
  if (sample_w.defined()) per_sample = per_sample * V(sample_w);
  return ltl::sum(per_sample) / ltl::sum(w_y);
}

}  // namespace ltl_ref
