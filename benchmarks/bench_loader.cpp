// The loader's host work per training batch of an in-memory data set (CIFAR-sized: 128 images
// 3×32×32, pad-crop 4, flip ½, normalisation), as a loader thread does it (one OpenMP thread):
//   - floats: make_batch (bytes → [0, 1] floats) + standard_augment (crop, flip, normalise),
//     what a CPU run and, before image_delivery::bytes, a GPU run's loader did;
//   - bytes:  make_byte_batch + the crop and flip on the bytes, what a GPU run's loader does
//     now (the device normalises after the upload);
//   - to_floats: the host normalisation of those bytes, what a device without byte uploads
//     would still pay (and what the bytes path saves).
// Also the bytes each batch sends over the bus. Each line ends with a hash of the images (the
// bytes path's after to_floats): equal hashes mean the two paths give the same bits.
//
//   OMP_NUM_THREADS=1 bench_loader --iters 400

#include <ltlearn/core/config.hpp>
#include <ltlearn/core/rng.hpp>
#include <ltlearn/data/batch.hpp>
#include <ltlearn/data/dataset.hpp>
#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/transforms.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using clock_type = std::chrono::steady_clock;

namespace {

std::uint64_t fnv(const void* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

int threads() {
#if LTL_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  index_t iters = 400;
  if (argc == 3 && std::string(argv[1]) == "--iters") iters = std::stoll(argv[2]);
  else if (argc != 1) {
    fmt::print(stderr, "usage: bench_loader [--iters N]\n");
    return 2;
  }
  const index_t N = 5000, B = 128;
  ltl::rng g(1);
  std::vector<std::uint8_t> px(static_cast<std::size_t>(N * 3 * 32 * 32));
  for (auto& p : px) p = static_cast<std::uint8_t>(g.below(256));
  std::vector<std::int64_t> y(static_cast<std::size_t>(N));
  for (index_t i = 0; i < N; ++i) y[static_cast<std::size_t>(i)] = i % 10;
  const ld::image_dataset ds("bench", ltl::shape{3, 32, 32}, std::move(px), std::move(y), 10);
  const ld::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5},
                                 .norm = {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}}};
  std::vector<index_t> order(static_cast<std::size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  ltl::rng(2).shuffle(std::span<index_t>(order));
  const ld::loader<float, ld::image_dataset> floats(ds, {.batch_size = B, .workers = 0, .seed = 3}, aug,
                                                    ld::image_delivery::floats);
  const ld::loader<float, ld::image_dataset> bytes(ds, {.batch_size = B, .workers = 0, .seed = 3}, aug,
                                                   ld::image_delivery::bytes);
  const index_t per_epoch = floats.num_batches(N) - 1;  // full batches only
  double s_float = 0, s_byte = 0, s_conv = 0;
  std::uint64_t h_float = 1469598103934665603ull, h_byte = h_float;
  std::size_t sent_float = 0, sent_byte = 0;
  for (index_t it = 0; it < iters; ++it) {
    const index_t e = it / per_epoch, b = it % per_epoch;
    auto t0 = clock_type::now();
    const auto fb = floats.make(e, order, b);
    s_float += std::chrono::duration<double>(clock_type::now() - t0).count();
    t0 = clock_type::now();
    const auto bb = bytes.make(e, order, b);
    s_byte += std::chrono::duration<double>(clock_type::now() - t0).count();
    t0 = clock_type::now();
    const auto x = ld::to_floats<float>(*bb.bytes);
    s_conv += std::chrono::duration<double>(clock_type::now() - t0).count();
    sent_float = static_cast<std::size_t>(fb.images.numel()) * sizeof(float);
    sent_byte = static_cast<std::size_t>(bb.bytes->pixels.numel());
    if (it < 8) {
      h_float = fnv(fb.images.data(), sent_float, h_float);
      h_byte = fnv(x.data(), sent_float, h_byte);
    }
  }
  const auto line = [&](const char* name, double s, std::size_t sent, std::uint64_t h) {
    fmt::print("{:<28} {:>9.1f} batches/s  {:>8.3f} ms/batch  {:>9} bytes/batch to upload  [hash {:016x}]\n", name,
               static_cast<double>(iters) / s, 1e3 * s / static_cast<double>(iters), sent, h);
  };
  fmt::print("loader batch of {} × 3×32×32, {} batches, OpenMP threads: {}\n", B, iters, threads());
  line("floats (host normalises)", s_float, sent_float, h_float);
  line("bytes (device normalises)", s_byte, sent_byte, h_byte);
  fmt::print("{:<28} {:>9.1f} batches/s  {:>8.3f} ms/batch  (host work the bytes path hands to the device)\n",
             "to_floats of the bytes", static_cast<double>(iters) / s_conv, 1e3 * s_conv / static_cast<double>(iters));
  return h_float == h_byte ? 0 : 1;
}
