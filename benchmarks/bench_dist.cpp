// Data-parallel benchmarks (issue 19), run under mpiexec (benchmarks/bench_dist.sh runs both):
//
//   mpiexec -np N bench_dist train [steps=30] [global_batch=128] [threads=1]
//       ResNet-32 training throughput on random 3×32×32 images through train::trainer at
//       global batch B (B/N per rank): the normaliser and step-total all-reduces, the bucketed
//       gradient all-reduce started from the backward pass, rank 0's BN buffers broadcast.
//       Prints one JSON line (rank 0): world, threads per rank, images/s, seconds per step.
//   mpiexec -np N bench_dist allreduce [repeats=50]
//       All-reduce of float buffers at ResNet-32's gradient bucket sizes (the reducer's own
//       buckets at its default 1 MiB) and at powers of two: ltlearn's mpi_communicator, blocking
//       and non-blocking, next to MPI_Allreduce on the same buffer. One JSON line per size with
//       the median time and the bus bandwidth 2(N−1)/N · bytes / time.
//
// Timings need an otherwise idle machine; one OpenMP thread per rank unless told otherwise.
#include <ltlearn/dist/mpi.hpp>
#include <ltlearn/ltlearn.hpp>

#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using ltl::index_t;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// N random 3×32×32 images in 10 classes with a long-tailed label distribution.
ltl::data::image_dataset random_images(index_t n) {
  ltl::rng g(5);
  std::vector<std::uint8_t> px(static_cast<std::size_t>(n * 3 * 32 * 32));
  for (auto& p : px) p = static_cast<std::uint8_t>(g.below(256));
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(i * i % 97 % 10);
  return ltl::data::image_dataset("random", {3, 32, 32}, std::move(px), std::move(y), 10);
}

int train(ltl::dist::any_communicator comm, index_t steps, index_t batch, int threads) {
  omp_set_num_threads(threads);
  const auto ds = random_images(steps * batch);
  ltl::nn::resnet_cifar<float> model({.depth = 32, .num_classes = 10, .in_channels = 3, .seed = 1});
  const auto y = ds.labels();
  const ltl::data::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}}};
  ltl::train::trainer tr(model, ds,
                         {.epochs = 1, .batch_size = batch, .seed = 0, .loader_workers = 1, .progress = false,
                          .print_epochs = false, .comm = comm},
                         ltl::sampling::instance_balanced(y, 10, 0), ltl::losses::cross_entropy{}, ltl::mixing::none{},
                         ltl::optim::constant_lr{0.05}, [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); },
                         {{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}});
  comm.barrier();
  const auto t0 = clock_type::now();
  const auto s = tr.fit();
  comm.barrier();
  const double secs = seconds_since(t0);
  if (comm.rank() == 0)
    std::printf("{\"bench\": \"train\", \"model\": \"resnet32\", \"world\": %d, \"threads\": %d, \"global_batch\": %ld, "
                "\"steps\": %ld, \"images_per_sec\": %.2f, \"seconds_per_step\": %.4f, \"buckets\": %zu, "
                "\"loss\": %.4f}\n",
                comm.size(), threads, static_cast<long>(batch), static_cast<long>(steps),
                static_cast<double>(steps * batch) / secs, secs / static_cast<double>(steps),
                tr.parallel().reducer() ? tr.parallel().reducer()->num_buckets() : std::size_t{0},
                s.empty() ? 0.0 : s.back().train_loss);
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int allreduce(ltl::dist::mpi_communicator comm, int repeats) {
  // ResNet-32's own buckets, as the trainer's reducer lays them out.
  std::vector<std::size_t> sizes;
  {
    ltl::nn::resnet_cifar<float> model({.depth = 32, .num_classes = 10, .in_channels = 3, .seed = 1});
    ltl::optim::sgd<float> opt(model.named_parameters(), {});
    const ltl::dist::gradient_reducer<float, ltl::cpu::device> red(opt.params(), ltl::dist::local_communicator{});
    sizes = red.bucket_sizes();
  }
  for (std::size_t n = 1024; n <= (std::size_t{1} << 22); n *= 4) sizes.push_back(n);
  const int R = comm.size();
  for (const std::size_t n : sizes) {
    std::vector<float> buf(n, 1.0f);
    std::vector<double> t_ltl, t_async, t_mpi;
    for (int k = 0; k < repeats + 3; ++k) {  // 3 warm-up rounds
      comm.barrier();
      auto t0 = clock_type::now();
      comm.all_reduce_sum(std::span<float>(buf));
      const double a = seconds_since(t0);
      comm.barrier();
      t0 = clock_type::now();
      comm.start_all_reduce_sum(std::span<float>(buf));
      comm.wait_all();
      const double b = seconds_since(t0);
      comm.barrier();
      t0 = clock_type::now();
      MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm.native());
      const double c = seconds_since(t0);
      std::fill(buf.begin(), buf.end(), 1.0f);  // keep the values finite
      if (k < 3) continue;
      t_ltl.push_back(a);
      t_async.push_back(b);
      t_mpi.push_back(c);
    }
    // The slowest rank's median decides: take the maximum over ranks.
    double med[3] = {median(t_ltl), median(t_async), median(t_mpi)};
    MPI_Allreduce(MPI_IN_PLACE, med, 3, MPI_DOUBLE, MPI_MAX, comm.native());
    const double bytes = static_cast<double>(n * sizeof(float)), bus = 2.0 * (R - 1) / R * bytes;
    if (comm.rank() == 0)
      std::printf("{\"bench\": \"allreduce\", \"world\": %d, \"floats\": %zu, \"ltl_us\": %.2f, \"ltl_async_us\": %.2f, "
                  "\"mpi_us\": %.2f, \"ltl_bus_gbps\": %.3f, \"mpi_bus_gbps\": %.3f}\n",
                  R, n, 1e6 * med[0], 1e6 * med[1], 1e6 * med[2], bus / med[0] / 1e9, bus / med[2] / 1e9);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const ltl::dist::mpi_environment env(&argc, &argv);
  const ltl::dist::mpi_communicator comm;
  const std::string what = argc > 1 ? argv[1] : "train";
  const auto arg = [&](int i, long def) { return argc > i ? std::atol(argv[i]) : def; };
  try {
    if (what == "train") return train(comm, arg(2, 30), arg(3, 128), static_cast<int>(arg(4, 1)));
    if (what == "allreduce") return allreduce(comm, static_cast<int>(arg(2, 50)));
    std::fprintf(stderr, "bench_dist: unknown benchmark '%s' (train | allreduce)\n", what.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", comm.rank(), e.what());
    ltl::dist::mpi_communicator(comm).abort(1);
  }
}
