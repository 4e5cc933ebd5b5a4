#include <catch2/catch.hpp>
#include <cstring>
#include <ltlearn/ltlearn.hpp>

#include "support.hpp"

using ltl::shape;
using T = ltl::tensor<float>;
using V = ltl::variable<double>;
using TD = ltl::tensor<double>;

using ltl_test::leaf;
using ltl_test::require_gradcheck;

TEST_CASE("shape basics and formatting", "[core]") {
  shape s{2, 3, 4};
  REQUIRE(s.numel() == 24);
  REQUIRE(fmt::format("{}", s) == "[2, 3, 4]");
  REQUIRE(ltl::contiguous_strides(s) == shape{12, 4, 1});
  REQUIRE_THROWS_AS(s.at(3), ltl::shape_error);
}

TEST_CASE("caching allocator reuses freed blocks", "[tensor]") {
  auto& alloc = ltl::caching_allocator<ltl::cpu::device>::instance();
  const void* first = nullptr;
  { T a(shape{1000, 37}); first = a.data(); }
  const auto before = alloc.stats();
  { T b(shape{1000, 37}); REQUIRE(b.data() == first); }
  const auto after = alloc.stats();
  REQUIRE(after.cache_hits == before.cache_hits + 1);
  REQUIRE(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
}

TEST_CASE("the CPU device aligns large blocks for huge pages and frees them by size", "[tensor]") {
  using D = ltl::cpu::device;
  // Below the threshold: 64-byte alignment; from it (Linux): 2 MiB, the huge-page size. Both
  // blocks are written end to end and freed with the size they were allocated with.
  for (const std::size_t bytes : {std::size_t{1000}, D::huge_from - 64, D::huge_from, D::huge_from + 12345}) {
    INFO("bytes " << bytes);
    auto* p = static_cast<unsigned char*>(D::allocate(bytes));
    const auto at = reinterpret_cast<std::uintptr_t>(p);
    REQUIRE(at % D::alignment == 0);
#if defined(__linux__)
    if (bytes >= D::huge_from) REQUIRE(at % D::huge_page == 0);
#endif
    std::memset(p, 0xab, bytes);
    REQUIRE((p[0] == 0xab && p[bytes - 1] == 0xab));
    D::deallocate(p, bytes);
  }
  // A large tensor through the caching allocator.
  T big(shape{static_cast<ltl::index_t>(D::huge_from / sizeof(float)) + 7});
  big.fill_(2.0f);
  REQUIRE(big.data()[big.numel() - 1] == 2.0f);
}

TEST_CASE("views alias their storage", "[tensor]") {
  auto t = T::from({2, 3}, {1, 2, 3, 4, 5, 6});
  auto tt = t.t();
  REQUIRE(tt.sizes() == shape{3, 2});
  REQUIRE(tt.at({2, 1}) == 6);
  REQUIRE_FALSE(tt.is_contiguous());
  tt.at({0, 1}) = 40;
  REQUIRE(t.at({1, 0}) == 40);
  auto row = t.select(0, 1);
  REQUIRE(row.sizes() == shape{3});
  REQUIRE(row.at({2}) == 6);
  auto n = t.narrow(1, 1, 2);
  REQUIRE(n.at({0, 0}) == 2);
  n.fill_(0);
  REQUIRE(t.to_vector() == std::vector<float>{1, 0, 0, 40, 0, 0});
  auto c = tt.contiguous();
  REQUIRE_FALSE(c.shares_storage(t));
  REQUIRE(c.to_vector() == std::vector<float>{1, 40, 0, 0, 0, 0});
  REQUIRE(t.reshape({3, -1}).shares_storage(t));
  REQUIRE_THROWS_AS(t.reshape({4, -1}), ltl::shape_error);
  REQUIRE_THROWS_AS(tt.view({6}), ltl::shape_error);
}

TEST_CASE("leaky_relu forward", "[ops]") {
  auto y = ltl::leaky_relu(V(TD::from({4}, {-2, -0.5, 0, 3})), 0.1);
  REQUIRE(y.value().to_vector() == std::vector<double>{-0.2, -0.05, 0, 3});
}

TEST_CASE("broadcasting add and mul forward", "[ops]") {
  auto a = V(TD::from({2, 3}, {1, 2, 3, 4, 5, 6}));
  auto b = V(TD::from({3}, {10, 20, 30}));
  REQUIRE((a + b).value().to_vector() == std::vector<double>{11, 22, 33, 14, 25, 36});
  auto c = V(TD::from({2, 1}, {2, 3}));
  REQUIRE((a * c).value().to_vector() == std::vector<double>{2, 4, 6, 12, 15, 18});
  auto bad = V(TD::from({2}, {1, 2}));
  try {
    (void)(a + bad);
    FAIL("expected a shape error");
  } catch (const ltl::shape_error& e) {
    REQUIRE_THAT(e.what(), Catch::Contains("add") && Catch::Contains("[2, 3]") && Catch::Contains("[2]"));
  }
}

TEST_CASE("elementwise gradients", "[ops][grad]") {
  require_gradcheck([](const auto& x) { return x[0] + x[1]; }, {leaf({2, 3, 4}, 1), leaf({3, 1}, 2)});
  require_gradcheck([](const auto& x) { return x[0] - x[1]; }, {leaf({4, 3}, 3), leaf({3}, 4)});
  require_gradcheck([](const auto& x) { return x[0] * x[1]; }, {leaf({2, 3, 2, 2}, 5), leaf({1, 3, 1, 1}, 6)});
  require_gradcheck([](const auto& x) { return x[0] / x[1]; }, {leaf({2, 3}, 7), leaf({2, 3}, 8, 0.5, 2)});
  require_gradcheck([](const auto& x) { return 2.0 * x[0] - 1.0; }, {leaf({5}, 9)});
  require_gradcheck([](const auto& x) { return ltl::relu(x[0]); }, {leaf({3, 4}, 10)});
  require_gradcheck([](const auto& x) { return ltl::leaky_relu(x[0], 0.1); }, {leaf({3, 4}, 15)});
  require_gradcheck([](const auto& x) { return ltl::exp(x[0]); }, {leaf({3, 4}, 11)});
  require_gradcheck([](const auto& x) { return ltl::log(x[0]); }, {leaf({3, 4}, 12, 0.5, 2)});
  require_gradcheck([](const auto& x) { return ltl::pow(x[0], 2.5); }, {leaf({3, 4}, 13, 0.5, 2)});
  require_gradcheck([](const auto& x) { return -x[0]; }, {leaf({3}, 14)});
}

TEST_CASE("reductions and matmul gradients", "[ops][grad]") {
  require_gradcheck([](const auto& x) { return ltl::sum(x[0], {1}); }, {leaf({2, 3, 4}, 1)});
  require_gradcheck([](const auto& x) { return ltl::sum(x[0], {0, 2}, true); }, {leaf({2, 3, 4}, 2)});
  require_gradcheck([](const auto& x) { return ltl::mean(x[0]); }, {leaf({2, 3, 4}, 3)});
  require_gradcheck([](const auto& x) { return ltl::matmul(x[0], x[1]); }, {leaf({3, 4}, 4), leaf({4, 5}, 5)});
  require_gradcheck([](const auto& x) { return ltl::linear(x[0], x[1], x[2]); },
                    {leaf({3, 4}, 6), leaf({5, 4}, 7), leaf({5}, 8)});
  require_gradcheck([](const auto& x) { return ltl::linear(x[0], x[1]); }, {leaf({3, 4}, 6), leaf({5, 4}, 7)});
}

TEST_CASE("autograd accumulates, releases and reports misuse", "[autograd]") {
  auto x = leaf({3}, 1);
  auto y = ltl::sum(x * x + x);  // x used three times
  y.backward();
  const auto g = x.grad().to_vector();
  for (int i = 0; i < 3; ++i) REQUIRE(g[i] == Approx(2 * x.value().data()[i] + 1));
  REQUIRE_THROWS_AS(y.backward(), ltl::autograd_error);
  auto z = ltl::sum(x * x);
  z.backward({.retain_graph = true});
  z.backward();
  for (int i = 0; i < 3; ++i) REQUIRE(x.grad().data()[i] == Approx(g[i] + 4 * x.value().data()[i]));
  {
    ltl::no_grad_guard ng;
    auto w = x * x;
    REQUIRE_FALSE(w.requires_grad());
  }
  auto c = V(TD::ones({3}));
  REQUIRE_THROWS_AS(ltl::sum(c).backward(), ltl::autograd_error);
}

TEST_CASE("gradients summed in place never write into a buffer another input still holds", "[autograd]") {
  // add's backward hands the same gradient to both inputs; x then receives a second
  // contribution. Summing it into the shared buffer would give y the gradient c + 5.
  // Both orders of the sum, so that either contribution reaches x first.
  auto x = leaf({4}, 11), y = leaf({4}, 12), c = leaf({4}, 13);
  for (int order = 0; order < 2; ++order) {
    x.zero_grad();
    y.zero_grad();
    // y also takes a long path (so its gradient is still pending while x's completes).
    auto ylong = ltl::sum(((((y * 2.0) * 2.0) * 2.0) * 2.0) * 0.5);
    auto loss = order == 0 ? ltl::sum((x + y) * c) + ltl::sum(x * 5.0) + ylong
                           : ylong + ltl::sum(x * 5.0) + ltl::sum((x + y) * c);
    loss.backward();
    for (int i = 0; i < 4; ++i) {
      REQUIRE(y.grad().data()[i] == Approx(c.value().data()[i] + 8));
      REQUIRE(x.grad().data()[i] == Approx(c.value().data()[i] + 5));
    }
  }
  // A fan-out of fresh gradients (the in-place path): a = 2x feeds three products.
  auto a = x * 2.0;
  auto l2 = ltl::sum(a * a) + ltl::sum(a * 3.0) + ltl::sum(a * c);
  x.zero_grad();
  l2.backward();
  for (int i = 0; i < 4; ++i) {
    const double xi = x.value().data()[i], ci = c.value().data()[i];
    REQUIRE(x.grad().data()[i] == Approx(2 * (2 * 2 * xi + 3 + ci)));
  }
}

TEST_CASE("saved buffers are released as soon as backward used them", "[autograd]") {
  auto& alloc = ltl::caching_allocator<ltl::cpu::device>::instance();
  V x(TD::zeros({256, 1024}), true);  // 2 MiB
  const auto before = alloc.stats().bytes_in_use;
  auto y = ltl::sum(ltl::exp(x));  // exp saves its 2 MiB output for backward
  const auto held = alloc.stats().bytes_in_use;
  REQUIRE(held >= before + 2 * 1024 * 1024);
  y.backward();
  // the gradient of x (2 MiB) is alive, exp's saved output is not
  REQUIRE(alloc.stats().bytes_in_use <= before + 2 * 1024 * 1024 + 4096);
  REQUIRE(x.grad().to_vector()[7] == 1.0);
}

TEST_CASE("tensors format with shape, device and values", "[tensor]") {
  auto t = T::from({2, 2}, {1, 2, 3.5f, 4});
  REQUIRE(fmt::format("{}", t) == "tensor<cpu>[2, 2] [[1, 2], [3.5, 4]]");
  REQUIRE(fmt::format("{}", T::zeros({100})) == "tensor<cpu>[100] (100 elements)");
  REQUIRE(fmt::format("{}", T()) == "tensor<undefined>");
}
