// The argument checks every backend shares (backends/contract/*.hpp): each throws the error
// type and message the CPU and CUDA kernels threw before they were written once, and the CPU
// kernels now also make the checks that only the CUDA kernels made.
#include <catch2/catch.hpp>
#include <ltlearn/backends/contract/batchnorm.hpp>
#include <ltlearn/backends/contract/broadcast.hpp>
#include <ltlearn/backends/contract/conv.hpp>
#include <ltlearn/backends/contract/gemm.hpp>
#include <ltlearn/backends/contract/indexing.hpp>
#include <ltlearn/backends/contract/loss.hpp>
#include <ltlearn/backends/contract/pool.hpp>
#include <ltlearn/backends/contract/softmax.hpp>
#include <ltlearn/backends/cpu/batchnorm.hpp>
#include <ltlearn/backends/cpu/indexing.hpp>
#include "support.hpp"

#include <cstdint>
#include <vector>

using ltl::index_t;
using ltl::shape;
using ltl_test::require_error;
using T = ltl::tensor<float>;

TEST_CASE("the shared loss checks name fused_loss, the field and the bad value", "[contract]") {
  ltl::loss_terms t;
  ltl::check_fused_loss_args(shape{4, 3}, shape{4}, t);
  require_error<ltl::shape_error>([&] { ltl::check_fused_loss_args(shape{4}, shape{4}, t); },
                                  {"fused_loss: logits must be [B, C], got [4]"});
  require_error<ltl::shape_error>([&] { ltl::check_fused_loss_args(shape{4, 3}, shape{3}, t); },
                                  {"fused_loss: labels [3] do not match logits [4, 3]"});
  require_error<ltl::shape_error>([&] { ltl::check_fused_loss_args(shape{0, 3}, shape{0}, t); },
                                  {"fused_loss: empty logits"});
  t.temperatures = {1.0, 2.0};
  require_error<ltl::shape_error>([&] { ltl::check_fused_loss_args(shape{4, 3}, shape{4}, t); },
                                  {"fused_loss: temperatures has 2 entries for 3 classes"});
  require_error<ltl::shape_error>([] { ltl::check_fused_loss_sample_weights(shape{3}, shape{4, 3}); },
                                  {"fused_loss: sample weights [3] do not match logits [4, 3]"});
  ltl::check_fused_loss_label(2, 0, 3);
  require_error<ltl::value_error>([] { ltl::check_fused_loss_label(3, 5, 3); },
                                  {"fused_loss: label 3 at position 5 is outside [0, 3)"});
  require_error<ltl::value_error>([] { ltl::check_fused_loss_normalizer(-1.0); },
                                  {"fused_loss: the labels' weights sum to -1"});
}

TEST_CASE("the shared shape checks of indexing, softmax, pooling, conv and sum_to", "[contract]") {
  ltl::check_index_select_backward(shape{2, 3}, 1, shape{3}, shape{2, 5});
  require_error<ltl::shape_error>([] { ltl::check_index_select_backward(shape{2, 3}, 1, shape{3, 1}, shape{2, 5}); },
                                  {"index_select_backward: indices must be 1-D"});
  require_error<ltl::shape_error>([] { ltl::check_index_select_backward(shape{2, 4}, 1, shape{3}, shape{2, 5}); },
                                  {"index_select_backward: gradient [2, 4] does not match [2, 3]"});
  require_error<ltl::shape_error>([] { ltl::check_one_hot(shape{2, 3}, false, shape{2}); }, {"one_hot: output"});
  require_error<ltl::shape_error>([] { ltl::check_one_hot(shape{3, 3}, true, shape{2}); },
                                  {"one_hot: output [3, 3] does not fit labels [2]"});
  const std::int64_t idx[3] = {0, 2, 5};
  require_error<ltl::value_error>([&] { ltl::detail::check_index_range(idx, 3, 5, "gather", "label"); },
                                  {"gather: label 5 at position 2 is out of range [0, 5)"});
  require_error<ltl::shape_error>([] { ltl::check_shortcut_a(shape{1, 3, 4, 4}, 8, 2); },
                                  {"shortcut_a: cannot map input [1, 3, 4, 4] to 8 channels with stride 2"});
  require_error<ltl::shape_error>([] { ltl::check_softmax_grad(shape{2, 3}, shape{3, 2}, "log_softmax_backward"); },
                                  {"log_softmax_backward: gradient [2, 3] does not match output [3, 2]"});
  require_error<ltl::shape_error>([] { ltl::check_l2_normalize_norms(3, 2, shape{2, 4}, 1); },
                                  {"l2_normalize_backward: 3 norms for output [2, 4] along dim 1"});
  require_error<ltl::shape_error>([] { ltl::check_global_avg_pool(shape{1, 2, 0, 3}); },
                                  {"global_avg_pool: input must be a non-empty [N, C, H, W]"});
  require_error<ltl::shape_error>([] { ltl::check_conv2d_bias_grad(shape{2, 3}); },
                                  {"conv2d_backward: output gradient must be [N, Cout, Ho, Wo], got [2, 3]"});
  ltl::check_matmul(shape{2, 3}, shape{3, 5});
  require_error<ltl::shape_error>([] { ltl::check_matmul(shape{2, 3}, shape{2, 3}); },
                                  {"matmul: shapes [2, 3] and [2, 3] are not compatible"});
  REQUIRE(ltl::sum_to_dims(shape{2, 3, 4}, shape{3, 1}) == std::vector<bool>{true, false, true});
  require_error<ltl::shape_error>([] { (void)ltl::sum_to_dims(shape{2, 3}, shape{4, 3}); }, {"sum_to"});
}

TEST_CASE("the CPU kernels now make the checks the CUDA kernels made, with the CUDA messages", "[contract]") {
  // batch_norm2d_backward: saved statistics and weight of the input's channel count.
  const auto x = T::zeros(shape{2, 3, 2, 2}), dy = T::zeros(shape{2, 3, 2, 2});
  const auto c3 = T::zeros(shape{3}), c2 = T::zeros(shape{2});
  require_error<ltl::shape_error>(
      [&] { (void)ltl::cpu::batch_norm2d_backward(dy, x, T(), c2, c3, true, {true, true, true}); },
      {"batch_norm2d_backward: saved mean [2] and invstd [3] do not match input [2, 3, 2, 2]"});
  require_error<ltl::shape_error>(
      [&] { (void)ltl::cpu::batch_norm2d_backward(dy, x, c2, c3, c3, true, {true, true, true}); },
      {"batch_norm2d_backward: weight [2] does not match input [2, 3, 2, 2]"});
  // index_select_backward: the indices must be 1-D.
  const auto g = T::zeros(shape{2, 2});
  const auto two_d = ltl::tensor<std::int64_t>::from({2, 1}, {0, 1});
  require_error<ltl::shape_error>([&] { (void)ltl::cpu::index_select_backward(g, 1, two_d, shape{2, 4}); },
                                  {"index_select_backward: indices must be 1-D, got shape [2, 1]"});
}
