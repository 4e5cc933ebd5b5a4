// ltl::cuda::batch_uploader (backends/cuda/upload.hpp): uint8 batches through pinned staging
// buffers and a copy stream, normalised on the device. [cuda-host] cases check the host-side
// logic (ring rotation, argument and shape checks) and run everywhere; the [cuda] case compares
// the uploaded values with the host pipeline (data::make_batch, then data::normalize) bit for
// bit and is skipped, with the reason printed, without a GPU.
#include "support/cuda_skip.hpp"

#include <ltlearn/data/batch.hpp>
#include <ltlearn/eval/batched_pass.hpp>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;

// ring_cursor and check_upload_batch are batch_uploader's host-side parts: the uploader's public
// upload() goes on to the GPU, so without one they are reachable only directly (with one, the
// [cuda] test below drives both through upload()).
TEST_CASE("the staging ring hands out its slots in rotation and counts their uses", "[cuda-host][upload]") {
  cuda::detail::ring_cursor r(3);
  REQUIRE(r.slots() == 3);
  REQUIRE(r.uses(0) == 0);
  std::vector<int> seen;
  for (int i = 0; i < 7; ++i) seen.push_back(r.next());
  REQUIRE(seen == std::vector<int>{0, 1, 2, 0, 1, 2, 0});
  REQUIRE(r.count() == 7);
  REQUIRE(r.uses(0) == 3);
  REQUIRE(r.uses(1) == 2);
  REQUIRE(r.uses(2) == 2);
  cuda::detail::ring_cursor one(1);
  REQUIRE(one.next() == 0);
  REQUIRE(one.next() == 0);
  REQUIRE(one.uses(0) == 2);
  REQUIRE_THROWS_AS(cuda::detail::ring_cursor(0), ltl::value_error);
}

TEST_CASE("batch_uploader rejects bad options and batches before touching the GPU", "[cuda-host][upload]") {
  using cuda::upload_options;
  REQUIRE_THROWS_AS(cuda::batch_uploader(upload_options{.mean = {0.5}, .stddev = {0.2}, .slots = 0}), ltl::value_error);
  REQUIRE_THROWS_AS(cuda::batch_uploader(upload_options{.mean = {0.5, 0.4}, .stddev = {0.2}}), ltl::value_error);
  REQUIRE_THROWS_AS(cuda::batch_uploader(upload_options{.mean = {}, .stddev = {}}), ltl::value_error);
  REQUIRE_THROWS_AS(cuda::batch_uploader(upload_options{.mean = {0.5}, .stddev = {0.0}}), ltl::value_error);
  REQUIRE_THROWS_AS(cuda::batch_uploader(upload_options{.mean = std::vector<double>(9, 0.5),
                                                        .stddev = std::vector<double>(9, 0.2)}),
                    ltl::value_error);
  cuda::batch_uploader up({.mean = {0.5, 0.4, 0.3}, .stddev = {0.2, 0.2, 0.2}});
  REQUIRE(up.uploads() == 0);
  const std::vector<std::uint8_t> px(2 * 3 * 4 * 4, 7);
  // The shape must be [B, C, H, W] with the normalisation's channel count and the bytes' size:
  // shape errors come before any device work, so they hold without a GPU.
  REQUIRE_THROWS_AS(up.upload(px, shape{2, 3, 16}), ltl::shape_error);
  REQUIRE_THROWS_AS(up.upload(px, shape{2, 1, 12, 4}), ltl::shape_error);
  REQUIRE_THROWS_AS(up.upload(px, shape{2, 3, 4, 5}), ltl::shape_error);
  REQUIRE(up.uploads() == 0);
  cuda::detail::check_upload_batch(shape{2, 3, 4, 4}, px.size(), 3);  // the right one passes
  // host_upload's per-thread uploaders are looked up by their statistics: bad ones are refused
  // before the lookup (a NaN key would compare equal to every other key) and before any GPU work.
  const ltl::tensor<std::uint8_t> bytes(shape{1, 1, 2, 2});
  const std::vector<double> nan{std::numeric_limits<double>::quiet_NaN()}, sd{0.2};
  REQUIRE_THROWS_AS(ltl::host_upload<cuda::device>::normalized(bytes, nan, sd), ltl::value_error);
  REQUIRE_THROWS_WITH(ltl::host_upload<cuda::device>::normalized(bytes, nan, sd),
                      Catch::Contains("channel 0 has mean nan"));
  REQUIRE_THROWS_AS(ltl::host_upload<cuda::device>::normalized(bytes, sd, nan), ltl::value_error);
}

TEST_CASE("uploaded batches equal the host's make_batch + normalize bit for bit, across ring slots",
          "[cuda][upload]") {
  LTL_REQUIRE_GPU();
  const ltl::data::normalize norm{{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
  cuda::batch_uploader up({.mean = norm.mean, .stddev = norm.stddev, .slots = 2});
  // Five batches of growing size through two slots: rotation, reuse and buffer growth.
  std::vector<ltl::tensor<float, cuda::device>> got;
  std::vector<ltl::tensor<float>> want;
  for (int k = 0; k < 5; ++k) {
    const shape s{2 + k, 3, 5, 7};
    ltl::rng g(100 + static_cast<std::uint64_t>(k));
    std::vector<std::uint8_t> px(static_cast<std::size_t>(s.numel()));
    for (auto& p : px) p = static_cast<std::uint8_t>(g.uniform(0, 256));
    px[0] = 0;
    px[1] = 255;
    got.push_back(up.upload(px, s));
    // The host pipeline: bytes / 255 in float, then (x - mean) / std per channel.
    ltl::tensor<float> h(s);
    for (index_t i = 0; i < h.numel(); ++i) h.data()[i] = static_cast<float>(px[static_cast<std::size_t>(i)]) / 255.0f;
    norm(h);
    want.push_back(h);
  }
  REQUIRE(up.uploads() == 5);
  for (std::size_t k = 0; k < got.size(); ++k) {
    INFO("batch " << k);
    REQUIRE(got[k].sizes() == want[k].sizes());
    const auto a = got[k].to_vector(), b = want[k].to_vector();
    REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  }
  // Work queued on the compute stream after an upload sees the batch (the event orders them).
  std::vector<std::uint8_t> ones(1 * 3 * 2 * 2, 255);
  const auto t = up.upload(ones, shape{1, 3, 2, 2});
  const auto doubled = cuda::add(t, t).to_vector();
  for (std::size_t i = 0; i < doubled.size(); ++i) {
    const std::size_t c = i / 4;
    const float v = (1.0f - static_cast<float>(norm.mean[c])) / static_cast<float>(norm.stddev[c]);
    REQUIRE(doubled[i] == v + v);
  }
}

TEST_CASE("host_upload<cuda>::normalized gives data::to_floats' bits, staged or not, and checks the batch",
          "[cuda][upload]") {
  STATIC_REQUIRE(ltl::normalizes_bytes<cuda::device>);
  STATIC_REQUIRE(ltl::eval::delivery_for<cuda::device, float> == ltl::data::image_delivery::bytes);
  STATIC_REQUIRE(ltl::eval::delivery_for<cuda::device, double> == ltl::data::image_delivery::floats);
  LTL_REQUIRE_GPU();
  const ltl::data::normalize norm{{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  ltl::tensor<std::uint8_t> px(shape{3, 3, 6, 5});
  ltl::rng g(7);
  for (index_t i = 0; i < px.numel(); ++i) px.data()[i] = static_cast<std::uint8_t>(g.uniform(0, 256));
  const auto want = ltl::data::to_floats<float>({px, norm}).to_vector();
  auto& settings = cuda::context::current().settings();
  const ltl_test::settings_guard restore;
  for (bool s : {true, false}) {
    INFO("staged " << s);
    settings.staged_uploads = s;
    const auto got = ltl::host_upload<cuda::device>::normalized(px, norm.mean, norm.stddev).to_vector();
    REQUIRE(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
    // One channel's statistics for three-channel bytes: a shape error naming both.
    const std::vector<double> one{0.5};
    REQUIRE_THROWS_WITH(ltl::host_upload<cuda::device>::normalized(px, one, one), Catch::Contains("3 channels"));
  }
  settings.staged_uploads = restore.saved.staged_uploads;
  // After a refused NaN, two other normalisations each get their own uploader (the per-thread
  // map's keys stay ordered), so each gives its own statistics' values.
  const std::vector<double> nan{std::numeric_limits<double>::quiet_NaN()};
  REQUIRE_THROWS_AS(ltl::host_upload<cuda::device>::normalized(px, nan, norm.stddev), ltl::value_error);
  for (const ltl::data::normalize& other : {ltl::data::normalize{{0.5, 0.5, 0.5}, {0.2, 0.2, 0.2}},
                                           ltl::data::normalize{{0.3, 0.3, 0.3}, {0.25, 0.25, 0.25}}}) {
    const auto ref = ltl::data::to_floats<float>({px, other}).to_vector();
    const auto got = ltl::host_upload<cuda::device>::normalized(px, other.mean, other.stddev).to_vector();
    REQUIRE(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)) == 0);
  }
  // A batch through eval::upload_images: bytes pending or floats, the same values on the device.
  const ltl::data::batch<float> pending{ltl::tensor<float>{}, ltl::tensor<std::int64_t>(shape{3}),
                                        ltl::data::byte_images{px, norm}};
  const auto dev = ltl::eval::upload_images<cuda::device>(pending).to_vector();
  REQUIRE(std::memcmp(dev.data(), want.data(), want.size() * sizeof(float)) == 0);
}
