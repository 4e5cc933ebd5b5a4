// Host data-pipeline throughput without decoding: the in-memory CIFAR transforms on batches of
// 128 images 3×32×32 (pad-crop, flip, normalise, and the three as standard_augment), the
// encoded-image pipeline's augment step on decoded 500×375 RGB images (RandomResizedCrop 224 +
// flip, ColorJitter 0.4, normalisation; the resample, the colour step and normalisation also
// alone), and a 1000-class classification_meter (adding batches of logits; building the report
// with its JSON and confusion matrix).
//
//   OMP_NUM_THREADS=2 bench_pipeline --iters 200
//
// A plain program (no Google Benchmark) that uses only APIs present since 68fdc5e, so the same
// source builds against the headers before and after a change (benchmarks/bench_pipeline.sh).
// Each line ends with a hash of the outputs: equal hashes before and after mean equal bits.

#include <ltlearn/core/config.hpp>
#include <ltlearn/data/image/augment.hpp>
#include <ltlearn/data/image/pipeline.hpp>
#include <ltlearn/data/image/resample.hpp>
#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/metrics/classification.hpp>
#include <ltlearn/metrics/report.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace ld = ltl::data;
using ltl::index_t;
using clock_type = std::chrono::steady_clock;

namespace {

/// FNV-1a over bytes, folded across calls: a fingerprint of everything a workload wrote.
struct fingerprint {
  std::uint64_t h = 1469598103934665603ull;
  void add(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
};

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void report(const char* name, double items, double s, const char* unit, const fingerprint& f) {
  fmt::print("{:<34} {:>12.1f} {}/s  ({:.0f} {} in {:.3f} s)  [hash {:016x}]\n", name, items / s, unit, items, unit, s,
             f.h);
}

// --- in-memory CIFAR transforms ------------------------------------------------------------

void bench_cifar(index_t iters) {
  const index_t B = 128;
  ltl::rng g(1);
  ltl::tensor<float> pristine(ltl::shape{B, 3, 32, 32});
  for (index_t i = 0; i < pristine.numel(); ++i) pristine.data()[i] = static_cast<float>(g.uniform());
  const ld::normalize norm{.mean = {0.4914, 0.4822, 0.4465}, .stddev = {0.2470, 0.2435, 0.2616}};
  const ld::standard_augment aug{.norm = norm};
  const ld::random_pad_crop crop{};
  const ld::random_hflip flip{};
  ltl::tensor<float> x(ltl::shape{B, 3, 32, 32});
  const auto bytes = static_cast<std::size_t>(x.numel()) * sizeof(float);
  // Each workload restores the batch before every call (untimed), so all see the same pixels.
  auto run = [&](const char* name, auto&& op) {
    ltl::rng r(2);
    fingerprint f;
    double s = 0;
    for (index_t it = 0; it < iters; ++it) {
      std::memcpy(x.data(), pristine.data(), bytes);
      const auto t0 = clock_type::now();
      op(r);
      s += seconds_since(t0);
      if (it < 4) f.add(x.data(), bytes);
    }
    report(name, static_cast<double>(B * iters), s, "images", f);
  };
  run("cifar pad_crop_ (pad 4)", [&](ltl::rng& r) {
    const auto o = crop.draw(B, r);
    ld::pad_crop_(x, crop.pad, std::span<const ld::crop_offset>(o));
  });
  run("cifar hflip_ (p 0.5)", [&](ltl::rng& r) {
    const auto fl = flip.draw(B, r);
    ld::hflip_(x, std::span<const std::uint8_t>(fl));
  });
  run("cifar normalize", [&](ltl::rng&) { norm(x); });
  run("cifar standard_augment", [&](ltl::rng& r) { aug(x, r); });
}

// --- encoded-image pipeline: augment step on decoded images ---------------------------------

void bench_image_augment(index_t iters) {
  const index_t H = 375, W = 500, N = 64;
  std::vector<std::vector<std::uint8_t>> images(static_cast<std::size_t>(N));
  for (index_t i = 0; i < N; ++i) {
    ltl::rng g(100 + static_cast<std::uint64_t>(i));
    auto& im = images[static_cast<std::size_t>(i)];
    im.resize(static_cast<std::size_t>(H * W * 3));
    // Smooth gradients plus noise: colour statistics of a photo (the jitter reads the mean).
    for (index_t y = 0; y < H; ++y)
      for (index_t xx = 0; xx < W; ++xx)
        for (index_t c = 0; c < 3; ++c)
          im[static_cast<std::size_t>((y * W + xx) * 3 + c)] =
              static_cast<std::uint8_t>(std::clamp(40.0 + 0.3 * double(y) + 0.2 * double(xx) * double(c + 1) / 3.0 +
                                                       g.uniform(-20.0, 20.0),
                                                   0.0, 255.0));
  }
  const ld::sample_transform t = ld::imagenet_train_transform(224);
  const index_t S = t.output_size(), k = 3 * S * S, n = S * S;
  std::vector<float> out(static_cast<std::size_t>(N * k));
  std::vector<ld::sample_plan> plans(static_cast<std::size_t>(N));
  std::vector<float> cropped;  // the resampled images, input of the colour-only workloads
  auto run = [&](const char* name, bool resample, bool jitter, bool normalise) {
    fingerprint f;
    double s = 0;
    for (index_t it = 0; it < iters; ++it) {
      // Plans are drawn as image_pipeline draws them: one generator per image and iteration.
      for (index_t i = 0; i < N; ++i) {
        ltl::rng g(7, ld::sample_stream(it, i));
        plans[static_cast<std::size_t>(i)] = ld::plan_sample(t, H, W, g);
      }
      if (!resample) std::copy(cropped.begin(), cropped.end(), out.begin());
      const auto t0 = clock_type::now();
      LTL_OMP(omp parallel for schedule(dynamic, 1))
      for (index_t i = 0; i < N; ++i) {
        const auto& p = plans[static_cast<std::size_t>(i)];
        float* dst = out.data() + i * k;
        if (resample) ld::resize_window(images[static_cast<std::size_t>(i)].data(), H, W, p.geo, p.flip, dst);
        if (jitter) ld::apply_jitter(dst, n, p.jitter);
        if (normalise) ld::normalize_planes(dst, n, t.mean, t.stddev);
      }
      s += seconds_since(t0);
      if (it == 0) f.add(out.data(), out.size() * sizeof(float));
    }
    report(name, static_cast<double>(N * iters), s, "images", f);
  };
  // The colour-only workloads start from the resampled images of one iteration.
  {
    for (index_t i = 0; i < N; ++i) {
      ltl::rng g(7, ld::sample_stream(0, i));
      const auto p = ld::plan_sample(t, H, W, g);
      ld::resize_window(images[static_cast<std::size_t>(i)].data(), H, W, p.geo, p.flip, out.data() + i * k);
    }
    cropped = out;
  }
  run("image crop+flip+jitter+normalise", true, true, true);
  run("image crop+flip (resample)", true, false, false);
  run("image jitter (224x224)", false, true, false);
  run("image normalise (224x224)", false, false, true);
}

// --- 1000-class confusion matrix ------------------------------------------------------------

void bench_confusion(index_t iters) {
  const index_t C = 1000, B = 256;
  ltl::rng g(3);
  ltl::tensor<float> logits(ltl::shape{B, C});
  ltl::tensor<std::int64_t> labels(ltl::shape{B});
  for (index_t i = 0; i < B * C; ++i) logits.data()[i] = static_cast<float>(g.normal());
  for (index_t i = 0; i < B; ++i) {
    labels.data()[i] = static_cast<std::int64_t>(g.below(C));
    if (g.uniform() < 0.6) logits.data()[i * C + labels.data()[i]] += 3.0f;  // 60 % or so correct
  }
  std::vector<double> counts(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) counts[static_cast<std::size_t>(c)] = 1000.0 * std::pow(0.01, double(c) / double(C - 1));
  ltl::metrics::classification_meter m(C);
  fingerprint f;
  auto t0 = clock_type::now();
  for (index_t it = 0; it < iters; ++it) m.add(logits, labels);
  const double s_add = seconds_since(t0);
  const index_t reports = std::max<index_t>(1, iters / 10);
  std::string json;
  t0 = clock_type::now();
  for (index_t r = 0; r < reports; ++r)
    json = ltl::metrics::eval_report::from(m, 0.0, counts).to_json(true).dump();
  const double s_rep = seconds_since(t0);
  f.add(json.data(), json.size());
  report("confusion 1000 classes: add", static_cast<double>(B * iters), s_add, "samples", f);
  report("confusion 1000 classes: report+json", static_cast<double>(reports), s_rep, "reports", f);
}

}  // namespace

int main(int argc, char** argv) {
  index_t iters = 50;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--iters") iters = std::stoll(argv[i + 1]);
    else if (k == "--only") only = argv[i + 1];
    else {
      fmt::print(stderr, "usage: bench_pipeline [--iters N] [--only cifar|image|confusion]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || iters < 1) {
    fmt::print(stderr, "usage: bench_pipeline [--iters N] [--only cifar|image|confusion]\n");
    return 2;
  }
  if (only.empty() || only == "cifar") bench_cifar(iters);
  if (only.empty() || only == "image") bench_image_augment(iters);
  if (only.empty() || only == "confusion") bench_confusion(iters);
  return 0;
}
