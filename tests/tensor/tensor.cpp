// Tests of tensor/: the caching allocator, the CPU device's aligned blocks, views and formatting.
#include <catch2/catch.hpp>
#include <ltlearn/ops/default_kernels.hpp>  // fill_ reaches the CPU kernels by ADL
#include <ltlearn/tensor/allocator.hpp>
#include <ltlearn/tensor/format.hpp>
#include <ltlearn/tensor/tensor.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

using ltl::shape;
using T = ltl::tensor<float>;

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

TEST_CASE("tensors format with shape, device and values", "[tensor]") {
  auto t = T::from({2, 2}, {1, 2, 3.5f, 4});
  REQUIRE(fmt::format("{}", t) == "tensor<cpu>[2, 2] [[1, 2], [3.5, 4]]");
  REQUIRE(fmt::format("{}", T::zeros({100})) == "tensor<cpu>[100] (100 elements)");
  REQUIRE(fmt::format("{}", T()) == "tensor<undefined>");
}
