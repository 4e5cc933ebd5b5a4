#pragma once
/// \file
/// ltl::cuda::conv_engine: the one interface through which ltlearn calls cuDNN for
/// convolution, and `legacy_conv_engine`, its implementation on cuDNN's legacy convolution API
/// (cudnnConvolutionForward/BackwardData/BackwardFilter: deprecated in cuDNN 9 but present).
/// A graph-API engine can replace it behind `conv_engine_for` without touching the kernels.
///
/// Plans: the first call of a (geometry, dtype, pass, settings) combination asks cuDNN's
/// heuristics (cudnnGet*Algorithm_v7) for ranked candidates, keeps, in rank order, those that the
/// settings allow (conv_plan.hpp: deterministic only by default, FMA math unless TF32 is opted
/// into, workspace under the limit) and that cuDNN accepts with the descriptor's math type, and
/// caches the descriptors and these choices. Every call runs the first choice, unless its
/// workspace cannot be allocated (out of memory even after the caching allocator freed its cache
/// and retried): then the next choice needing less workspace runs, and workspace_fallbacks()
/// counts it (its rounding can differ from the first choice's, so a run under memory pressure
/// may not repeat a run without it bit for bit). Heuristics rather than timed search
/// (cudnnFind*): a timed choice can differ run to run, and with it the rounding of the results.
/// Workspaces come from the caching allocator on the compute stream, on which the cuDNN call
/// is issued, so they are released right after the call is enqueued.

#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/conv_plan.hpp"
#include "ltlearn/backends/cuda/memory.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace ltl::cuda {

/// Convolution through cuDNN on one device. Pointers are contiguous NCHW device memory of
/// `dtype` (CUDNN_DATA_FLOAT or CUDNN_DATA_DOUBLE) shaped by `g`; outputs are overwritten.
class conv_engine {
 public:
  virtual ~conv_engine() = default;
  /// y [N, Cout, Ho, Wo] = conv(x [N, Cin, H, W], w [Cout, Cin/groups, KH, KW]).
  virtual void forward(const conv2d_geometry& g, cudnnDataType_t dtype, const void* x, const void* w, void* y) = 0;
  /// dx [N, Cin, H, W] from dy [N, Cout, Ho, Wo] and w.
  virtual void backward_data(const conv2d_geometry& g, cudnnDataType_t dtype, const void* dy, const void* w,
                             void* dx) = 0;
  /// dw [Cout, Cin/groups, KH, KW] from x and dy.
  virtual void backward_filter(const conv2d_geometry& g, cudnnDataType_t dtype, const void* x, const void* dy,
                               void* dw) = 0;
  /// Number of plans cached so far.
  [[nodiscard]] virtual std::size_t cached_plans() const = 0;
  /// Calls that ran a later choice of their plan because the first one's workspace could not be
  /// allocated (see the file comment); one per call, however many choices it skipped.
  [[nodiscard]] virtual std::uint64_t workspace_fallbacks() const = 0;
};

namespace cudnn {

/// Owns a cuDNN descriptor; `Destroy` is its cudnnDestroy* function.
template <class Handle, cudnnStatus_t (*Create)(Handle*), cudnnStatus_t (*Destroy)(Handle)>
class descriptor {
 public:
  descriptor() { LTL_CUDNN_CHECK(Create(&h_)); }
  ~descriptor() { (void)Destroy(h_); }
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  [[nodiscard]] Handle get() const noexcept { return h_; }

 private:
  Handle h_ = nullptr;
};

using tensor_descriptor = descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using filter_descriptor = descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using convolution_descriptor =
    descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;

/// A workspace block from the caching allocator, for work on `device`'s compute stream.
class workspace {
 public:
  workspace(int device, std::size_t bytes)
      : p_(bytes ? device_pool().allocate(device, nullptr, bytes) : nullptr), bytes_(bytes) {}
  ~workspace() { device_pool().release(p_); }
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  [[nodiscard]] void* get() const noexcept { return p_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* p_;
  std::size_t bytes_;
};

/// One usable algorithm of a plan: cuDNN's algorithm enum, its workspace for the plan's
/// geometry, and the math type it runs with.
struct conv_choice {
  int algo = 0;
  std::size_t workspace_bytes = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

/// The descriptors and usable algorithms (in cuDNN's rank order, never empty) of one pass of
/// one convolution; `math` is the convolution descriptor's current math type.
struct conv_plan {
  tensor_descriptor x, y;
  filter_descriptor w;
  convolution_descriptor conv;
  std::vector<conv_choice> choices;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

/// Fills the descriptors of `p` from `g` (conv_plan.hpp's mapping) with math type `math`.
inline void describe(conv_plan& p, const conv2d_geometry& g, cudnnDataType_t dtype, cudnnMathType_t math,
                     const char* op) {
  const conv_descriptor_args a = make_descriptor_args(g, op);
  LTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x.get(), CUDNN_TENSOR_NCHW, dtype, a.n, a.c, a.h, a.w));
  LTL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y.get(), CUDNN_TENSOR_NCHW, dtype, a.n, a.k, a.out_h, a.out_w));
  LTL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w.get(), dtype, CUDNN_TENSOR_NCHW, a.k, a.c_per_group, a.r, a.s));
  LTL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p.conv.get(), a.pad_h, a.pad_w, a.stride_h, a.stride_w,
                                                  a.dilation_h, a.dilation_w, CUDNN_CROSS_CORRELATION, dtype));
  LTL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv.get(), a.groups));
  LTL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), math));
  // cuDNN's own output size must be ltlearn's (a mismatch would mean a mapping error above).
  int n = 0, c = 0, h = 0, w = 0;
  LTL_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.conv.get(), p.x.get(), p.w.get(), &n, &c, &h, &w));
  LTL_CHECK(n == a.n && c == a.k && h == a.out_h && w == a.out_w, cuda_error,
            "{}: cuDNN computes output [{}, {}, {}, {}] for {}, ltlearn [{}, {}, {}, {}]", op, n, c, h, w, g, a.n, a.k,
            a.out_h, a.out_w);
}

/// The ranked candidates of cuDNN's heuristics for `pass` of the described plan `p`.
inline std::vector<conv_candidate> heuristic_candidates(cudnnHandle_t h, const conv_plan& p, conv2d_pass pass) {
  int max = 0, got = 0;
  std::vector<conv_candidate> out;
  switch (pass) {
    case conv2d_pass::forward: {
      LTL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<std::size_t>(std::max(max, 1)));
      LTL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(), max,
                                                             &got, perf.data()));
      for (int i = 0; i < got; ++i) out.push_back(to_candidate(perf[static_cast<std::size_t>(i)]));
      break;
    }
    case conv2d_pass::backward_input: {
      LTL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<std::size_t>(std::max(max, 1)));
      LTL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                                  max, &got, perf.data()));
      for (int i = 0; i < got; ++i) out.push_back(to_candidate(perf[static_cast<std::size_t>(i)]));
      break;
    }
    case conv2d_pass::backward_weight: {
      LTL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<std::size_t>(std::max(max, 1)));
      LTL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                                    max, &got, perf.data()));
      for (int i = 0; i < got; ++i) out.push_back(to_candidate(perf[static_cast<std::size_t>(i)]));
      break;
    }
  }
  return out;
}

/// cuDNN's workspace size for algorithm `algo` of `pass`; its status (a NOT_SUPPORTED code when
/// the algorithm cannot run with the descriptor's math type).
inline cudnnStatus_t workspace_size(cudnnHandle_t h, const conv_plan& p, conv2d_pass pass, int algo,
                                    std::size_t* bytes) {
  switch (pass) {
    case conv2d_pass::forward:
      return cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(algo), bytes);
    case conv2d_pass::backward_input:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(),
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
    case conv2d_pass::backward_weight:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(),
                                                            static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

}  // namespace cudnn

/// conv_engine on cuDNN's legacy convolution API, with a plan cache. One per device.
class legacy_conv_engine final : public conv_engine {
 public:
  explicit legacy_conv_engine(context& ctx) : ctx_(ctx) {}

  void forward(const conv2d_geometry& g, cudnnDataType_t dtype, const void* x, const void* w, void* y) override {
    std::lock_guard lock(ctx_.cudnn_mutex());
    auto& p = plan(g, dtype, conv2d_pass::forward, "conv2d");
    const double one = 1, zero = 0;  // cuDNN reads alpha/beta as double for double data, float otherwise
    const float onef = 1, zerof = 0;
    const bool dbl = dtype == CUDNN_DATA_DOUBLE;
    run(p, [&](int algo, void* ws, std::size_t ws_bytes) {
      LTL_CUDNN_CHECK(cudnnConvolutionForward(ctx_.cudnn(), dbl ? static_cast<const void*>(&one) : &onef, p.x.get(),
                                              x, p.w.get(), w, p.conv.get(),
                                              static_cast<cudnnConvolutionFwdAlgo_t>(algo), ws, ws_bytes,
                                              dbl ? static_cast<const void*>(&zero) : &zerof, p.y.get(), y));
    });
  }

  void backward_data(const conv2d_geometry& g, cudnnDataType_t dtype, const void* dy, const void* w,
                     void* dx) override {
    std::lock_guard lock(ctx_.cudnn_mutex());
    auto& p = plan(g, dtype, conv2d_pass::backward_input, "conv2d_backward_input");
    const double one = 1, zero = 0;
    const float onef = 1, zerof = 0;
    const bool dbl = dtype == CUDNN_DATA_DOUBLE;
    run(p, [&](int algo, void* ws, std::size_t ws_bytes) {
      LTL_CUDNN_CHECK(cudnnConvolutionBackwardData(
          ctx_.cudnn(), dbl ? static_cast<const void*>(&one) : &onef, p.w.get(), w, p.y.get(), dy, p.conv.get(),
          static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), ws, ws_bytes,
          dbl ? static_cast<const void*>(&zero) : &zerof, p.x.get(), dx));
    });
  }

  void backward_filter(const conv2d_geometry& g, cudnnDataType_t dtype, const void* x, const void* dy,
                       void* dw) override {
    std::lock_guard lock(ctx_.cudnn_mutex());
    auto& p = plan(g, dtype, conv2d_pass::backward_weight, "conv2d_backward_weight");
    const double one = 1, zero = 0;
    const float onef = 1, zerof = 0;
    const bool dbl = dtype == CUDNN_DATA_DOUBLE;
    run(p, [&](int algo, void* ws, std::size_t ws_bytes) {
      LTL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
          ctx_.cudnn(), dbl ? static_cast<const void*>(&one) : &onef, p.x.get(), x, p.y.get(), dy, p.conv.get(),
          static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), ws, ws_bytes,
          dbl ? static_cast<const void*>(&zero) : &zerof, p.w.get(), dw));
    });
  }

  [[nodiscard]] std::size_t cached_plans() const override {
    std::lock_guard lock(ctx_.cudnn_mutex());
    return plans_.size();
  }

  [[nodiscard]] std::uint64_t workspace_fallbacks() const override {
    std::lock_guard lock(ctx_.cudnn_mutex());
    return fallbacks_;
  }

 private:
  /// Runs `call(algo, workspace, bytes)` with the first choice of `p` whose workspace the caching
  /// allocator provides; on out_of_memory_error, the next choice that needs less workspace (the
  /// error propagates when none is left). Called with the cuDNN mutex held.
  template <class Call>
  void run(cudnn::conv_plan& p, Call&& call) {
    auto c = p.choices.begin();
    std::optional<cudnn::workspace> ws;
    for (;;) {
      try {
        ws.emplace(ctx_.device_index(), c->workspace_bytes);
        break;
      } catch (const out_of_memory_error&) {
        const std::size_t failed = c->workspace_bytes;
        c = std::find_if(c + 1, p.choices.end(),
                         [&](const cudnn::conv_choice& d) { return d.workspace_bytes < failed; });
        if (c == p.choices.end()) throw;
      }
    }
    if (c != p.choices.begin()) ++fallbacks_;
    if (p.math != c->math) {
      LTL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.get(), c->math));
      p.math = c->math;
    }
    call(c->algo, ws->get(), ws->bytes());
  }

  /// The cached plan of the pass, made on first use. Called with the cuDNN mutex held.
  cudnn::conv_plan& plan(const conv2d_geometry& g, cudnnDataType_t dtype, conv2d_pass pass, const char* op) {
    const settings& s = ctx_.settings();
    const conv_plan_key key = make_plan_key(g, dtype, pass, s);
    if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
    const cudnnHandle_t h = ctx_.cudnn();
    auto p = std::make_unique<cudnn::conv_plan>();
    const cudnnMathType_t math = conv_math_type(s, dtype);
    cudnn::describe(*p, g, dtype, math, op);
    const std::vector<conv_candidate> candidates = cudnn::heuristic_candidates(h, *p, pass);
    std::map<int, std::string> turned_down;  // by the workspace query, for the error message
    for (const auto& c : candidates) {
      if (reject_reason(c, s, dtype)) continue;
      // With TF32 allowed (float only), run the candidate with the math type cuDNN ranked it
      // for; otherwise keep the descriptor's FMA math (so a double plan is the same whatever
      // allow_tf32 says, as its cache key is) and skip candidates that cannot run with it.
      const bool ranked_math = s.allow_tf32 && dtype == CUDNN_DATA_FLOAT;
      const cudnnMathType_t m = ranked_math ? c.math : math;
      LTL_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv.get(), m));
      p->math = m;
      std::size_t bytes = 0;
      const cudnnStatus_t st = cudnn::workspace_size(h, *p, pass, c.algo, &bytes);
      if (cudnn_not_supported(st)) {
        turned_down[c.algo] = fmt::format("not supported with this math type ({})", cudnnGetErrorString(st));
        continue;
      }
      // A fallback choice cuDNN cannot size is left out rather than failing a plan that already
      // has a choice.
      if (st != CUDNN_STATUS_SUCCESS && !p->choices.empty()) continue;
      if (st == CUDNN_STATUS_SUCCESS && bytes > s.max_workspace_bytes) {
        turned_down[c.algo] = fmt::format("needs {} bytes of workspace, over the limit", bytes);
        continue;
      }
      LTL_CUDNN_CHECK(st);
      p->choices.push_back({c.algo, bytes, m});
    }
    LTL_CHECK(!p->choices.empty(), cuda_error, "{}", no_candidate_message(op, g, candidates, s, dtype, turned_down));
    return *plans_.emplace(key, std::move(p)).first->second;
  }

  context& ctx_;
  std::map<conv_plan_key, std::unique_ptr<cudnn::conv_plan>> plans_;
  std::uint64_t fallbacks_ = 0;
};

/// The convolution engine of `ctx`'s device (created on first use, lives as long as the process).
inline conv_engine& conv_engine_for(context& ctx) {
  static std::mutex mu;
  static auto* engines = new std::map<int, std::unique_ptr<conv_engine>>();
  std::lock_guard lock(mu);
  auto& e = (*engines)[ctx.device_index()];
  if (!e) e = std::make_unique<legacy_conv_engine>(ctx);
  return *e;
}

}  // namespace ltl::cuda
