#pragma once
/// \file
/// The host-side decisions of cuDNN convolution, kept apart from the calls so that they are
/// tested without a GPU: the descriptor arguments a conv2d_geometry maps to, the key of the
/// plan cache, and the choice of an algorithm from cuDNN's ranked candidates under the
/// context's settings (determinism, TF32, workspace limit).
///
/// Descriptor mapping (NCHW, fully packed): x [N, Cin, H, W], filter [Cout, Cin/groups, KH, KW]
/// (cuDNN takes the per-group input channels as the filter's C and the group count separately),
/// y [N, Cout, Ho, Wo]; CUDNN_CROSS_CORRELATION, which is what deep-learning "convolution"
/// (and ltlearn's CPU backend) computes; compute type = the element type.

#include "ltlearn/backends/contract/conv.hpp"
#include "ltlearn/backends/cuda/context.hpp"

#include <cudnn.h>

#include <array>
#include <climits>
#include <compare>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace ltl::cuda {

/// Every integer cudnnSet{Tensor,Filter}4dDescriptor, cudnnSetConvolution2dDescriptor and
/// cudnnSetConvolutionGroupCount receive for one convolution.
struct conv_descriptor_args {
  int n, c, h, w;                 ///< x
  int k, c_per_group, r, s;       ///< filter: out channels, in channels per group, KH, KW
  int pad_h, pad_w;               ///< zero padding
  int stride_h, stride_w;         ///< cuDNN's u, v
  int dilation_h, dilation_w;     ///< filter dilation
  int groups;                     ///< cudnnSetConvolutionGroupCount
  int out_h, out_w;               ///< y is [n, k, out_h, out_w]
  friend constexpr bool operator==(const conv_descriptor_args&, const conv_descriptor_args&) = default;
};

/// The descriptor arguments of geometry `g`; throws shape_error naming `op` when a size does
/// not fit cuDNN's 32-bit int (or a tensor exceeds 2^31 elements, cuDNN's limit for 4-d tensors).
inline conv_descriptor_args make_descriptor_args(const conv2d_geometry& g, const char* op) {
  const auto fit = [&](index_t v, const char* what) {
    LTL_CHECK(v >= 0 && v <= INT_MAX, shape_error, "{}: {} = {} exceeds cuDNN's 32-bit range ({})", op, what, v, g);
    return static_cast<int>(v);
  };
  fit(g.n * g.cin * g.h * g.w, "input elements");
  fit(g.n * g.cout * g.ho * g.wo, "output elements");
  return {fit(g.n, "N"),           fit(g.cin, "Cin"),        fit(g.h, "H"),
          fit(g.w, "W"),           fit(g.cout, "Cout"),      fit(g.cin_per_group(), "Cin/groups"),
          fit(g.kh, "KH"),         fit(g.kw, "KW"),          fit(g.padding.h, "padding"),
          fit(g.padding.w, "padding"), fit(g.stride.h, "stride"), fit(g.stride.w, "stride"),
          fit(g.dilation.h, "dilation"), fit(g.dilation.w, "dilation"), fit(g.groups, "groups"),
          fit(g.ho, "Ho"),         fit(g.wo, "Wo")};
}

/// The math type a convolution descriptor gets: FMA only (no tensor cores, so float stays
/// FP32-accurate) unless TF32 is allowed; double is never down-converted either way.
constexpr cudnnMathType_t conv_math_type(const settings& s, cudnnDataType_t dtype) noexcept {
  return s.allow_tf32 && dtype == CUDNN_DATA_FLOAT ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

/// Key of the plan cache: everything the chosen algorithm and workspace depend on.
struct conv_plan_key {
  std::array<index_t, 16> sizes;  ///< n, cin, h, w, cout, kh, kw, ho, wo, groups, stride, padding, dilation
  cudnnDataType_t dtype;
  conv2d_pass pass;
  bool allow_tf32;
  bool deterministic;
  std::size_t max_workspace_bytes;
  friend auto operator<=>(const conv_plan_key& a, const conv_plan_key& b) {
    return std::tie(a.sizes, a.dtype, a.pass, a.allow_tf32, a.deterministic, a.max_workspace_bytes) <=>
           std::tie(b.sizes, b.dtype, b.pass, b.allow_tf32, b.deterministic, b.max_workspace_bytes);
  }
  friend bool operator==(const conv_plan_key&, const conv_plan_key&) = default;
};

/// The plan-cache key of pass `pass` of geometry `g` in `dtype` under settings `s`.
inline conv_plan_key make_plan_key(const conv2d_geometry& g, cudnnDataType_t dtype, conv2d_pass pass,
                                   const settings& s) {
  return {{g.n, g.cin, g.h, g.w, g.cout, g.kh, g.kw, g.ho, g.wo, g.groups, g.stride.h, g.stride.w, g.padding.h,
           g.padding.w, g.dilation.h, g.dilation.w},
          dtype,
          pass,
          s.allow_tf32 && dtype == CUDNN_DATA_FLOAT,  // TF32 does not apply to double
          s.deterministic,
          s.max_workspace_bytes};
}

/// One ranked candidate of cuDNN's heuristics (the fields of the three *AlgoPerf_t structs
/// that the choice reads; `algo` is the pass's algorithm enum as an int).
struct conv_candidate {
  int algo = 0;
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  std::size_t memory = 0;  ///< workspace bytes
  cudnnDeterminism_t determinism = CUDNN_DETERMINISTIC;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

/// The candidate of a cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t.
template <class Perf>
conv_candidate to_candidate(const Perf& p) {
  return {static_cast<int>(p.algo), p.status, p.memory, p.determinism, p.mathType};
}

/// True for CUDNN_STATUS_NOT_SUPPORTED and its cuDNN 9 sub-codes (3000-3999: shape, layout,
/// architecture ...): the algorithm cannot run this problem, which is no error of the caller.
constexpr bool cudnn_not_supported(cudnnStatus_t st) noexcept {
  return CUDNN_STATUS_CATEGORY(static_cast<int>(st)) == static_cast<int>(CUDNN_STATUS_NOT_SUPPORTED);
}

/// Why candidate `c` is not usable under `s` for `dtype`, or nullptr when it is.
inline const char* reject_reason(const conv_candidate& c, const settings& s, cudnnDataType_t dtype) {
  if (c.status != CUDNN_STATUS_SUCCESS) return "not supported";
  if (s.deterministic && c.determinism != CUDNN_DETERMINISTIC) return "not deterministic";
  if (c.memory > s.max_workspace_bytes) return "workspace over the limit";
  // ALLOW_CONVERSION lets cuDNN compute in FP16/BF16, below the data's precision: never, not
  // even with TF32 opted in (SPEC §13 allows TF32 and nothing lower). TENSOR_OP for float is TF32;
  // for double it is FP64 tensor-core arithmetic, which loses nothing.
  if (c.math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return "down-converting tensor-core math never allowed";
  if (!s.allow_tf32 && c.math == CUDNN_TENSOR_OP_MATH && dtype == CUDNN_DATA_FLOAT)
    return "tensor-core math (TF32) not allowed";
  return nullptr;
}

/// The first of the ranked `candidates` usable under `s`; std::nullopt when none is.
inline std::optional<conv_candidate> choose_candidate(const std::vector<conv_candidate>& candidates,
                                                      const settings& s, cudnnDataType_t dtype) {
  for (const auto& c : candidates)
    if (!reject_reason(c, s, dtype)) return c;
  return std::nullopt;
}

/// The message for a pass that has no usable candidate: the geometry, the settings and why
/// each candidate was rejected — by reject_reason, or else by `later` (algorithm → why the
/// workspace query turned it down, as the plan's search records it).
inline std::string no_candidate_message(const char* op, const conv2d_geometry& g,
                                        const std::vector<conv_candidate>& candidates, const settings& s,
                                        cudnnDataType_t dtype, const std::map<int, std::string>& later = {}) {
  std::string why;
  for (const auto& c : candidates) {
    const char* r = reject_reason(c, s, dtype);
    const auto l = later.find(c.algo);
    why += fmt::format("{}algorithm {}: {}", why.empty() ? "" : "; ", c.algo,
                       r ? r : (l != later.end() ? l->second.c_str() : "usable"));
  }
  return fmt::format(
      "{}: cuDNN offers no usable algorithm for {} (deterministic = {}, allow_tf32 = {}, workspace limit {} bytes); "
      "candidates: {}",
      op, g, s.deterministic, s.allow_tf32, s.max_workspace_bytes, why.empty() ? "none" : why);
}

}  // namespace ltl::cuda
