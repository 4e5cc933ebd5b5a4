// Data parallelism (issue 19, SPEC §14). One binary:
//   - run directly (the [mpi] cases are hidden): rank slices of every sampler, the
//     external loss normaliser, the local communicator;
//   - under `mpiexec -np 2` (ctest: one test per [mpi] case): collectives, sharded evaluation, the
//     gradient reducer, the trainer at world 2 against single-process references (micro-batch
//     accumulation bit for bit; full batch within 1e-6 with DRW weights), checkpoint/resume;
//   - [mpi_abort] under a wrapper that asserts the job dies promptly with rank 1's message.
// The NCCL communicator's [cuda] case (world 1) is compiled in CUDA builds with NCCL.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <ltlearn/ltlearn.hpp>

#include "support/toy_data.hpp"

#if LTL_HAS_MPI
#include <ltlearn/dist/mpi.hpp>
#endif
#if LTL_HAS_NCCL
#include <ltlearn/dist/nccl.hpp>
#endif

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ld = ltl::data;
namespace dist = ltl::dist;
using ltl::index_t;
using ltl_test::toy_dataset;

namespace {

// ---------------------------------------------------------------------------------------------
// Without MPI
// ---------------------------------------------------------------------------------------------

/// Checks that `order`'s rank slices partition every global batch, that all ranks run the same
/// number of steps, and that a loader at the local batch size yields exactly the slices.
void check_slices(const std::vector<index_t>& order, index_t B, int R, const ld::image_dataset& ds) {
  const auto n = static_cast<index_t>(order.size());
  const index_t steps = dist::global_steps(n, B);
  REQUIRE(steps == (n + B - 1) / B);
  std::vector<std::vector<index_t>> local(static_cast<std::size_t>(R));
  for (int r = 0; r < R; ++r) local[static_cast<std::size_t>(r)] = dist::rank_order(order, B, r, R);
  for (index_t s = 0; s < steps; ++s) {
    std::vector<index_t> joined;
    index_t expect = s * B, smallest = B, largest = 0;
    for (int r = 0; r < R; ++r) {
      const auto sl = dist::rank_slice(n, B, s, r, R);
      REQUIRE(sl.begin == expect);  // contiguous, in rank order
      expect = sl.end;
      smallest = std::min(smallest, sl.size());
      largest = std::max(largest, sl.size());
      joined.insert(joined.end(), order.begin() + sl.begin, order.begin() + sl.end);
    }
    REQUIRE(largest - smallest <= 1);
    REQUIRE(joined == std::vector<index_t>(order.begin() + s * B, order.begin() + std::min(n, (s + 1) * B)));
  }
  // A loader at batch B/R over each rank's order gives its slices, one per step (a final empty
  // slice gives no batch: the trainer runs that step without samples).
  for (int r = 0; r < R; ++r) {
    const auto& lo = local[static_cast<std::size_t>(r)];
    ld::loader<float, ld::image_dataset> l(ds, {.batch_size = B / R, .workers = 0});
    const index_t batches = l.num_batches(static_cast<index_t>(lo.size()));
    const bool last_empty = dist::rank_slice(n, B, steps - 1, r, R).size() == 0;
    REQUIRE(batches == steps - (last_empty ? 1 : 0));
    auto run = l.run(0, lo);
    for (index_t s = 0; s < batches; ++s) {
      const auto b = run->next();
      REQUIRE(b);
      const auto sl = dist::rank_slice(n, B, s, r, R);
      REQUIRE(b->labels.numel() == sl.size());
      for (index_t i = 0; i < sl.size(); ++i)
        REQUIRE(b->labels.data()[i] == ds.labels()[static_cast<std::size_t>(order[static_cast<std::size_t>(sl.begin + i)])]);
    }
  }
}

}  // namespace

TEST_CASE("every sampler's rank slices union to the global batch with equal step counts", "[dist][sampling]") {
  namespace ls = ltl::sampling;
  const auto ds = toy_dataset(28, 3, 1);  // 57 samples: the last batch of 8 has 1, of 12 has 9
  const auto y = ds.labels();
  const std::vector<std::pair<std::string, ls::any_sampler>> samplers{
      {"instance", ls::instance_balanced(y, 3, 5)},
      {"class-balanced", ls::power_sampler(y, 3, 0.0, 5)},
      {"square-root", ls::power_sampler(y, 3, 0.5, 5, 40)},
      {"class-aware", ls::class_aware(y, 3, 5, 4, ls::class_aware_epoch_size(y, 3))},
      {"progressive", ls::progressive(y, 3, 4, 5)},
      {"deferred", ls::deferred(ls::instance_balanced(y, 3, 5), ls::class_aware(y, 3, 5), 1)}};
  for (const auto& [name, s] : samplers)
    for (index_t epoch : {0, 2})
      for (int R : {1, 2, 3, 4})
        for (index_t B : {8, 12}) {
          if (B % R) continue;
          INFO(name << " epoch " << epoch << " world " << R << " batch " << B);
          check_slices(s.epoch_indices(epoch), B, R, ds);
        }
  REQUIRE_THROWS_AS(dist::rank_order({1, 2, 3}, 5, 0, 2), ltl::value_error);  // 5 does not split in 2
  REQUIRE_THROWS_AS(dist::rank_slice(10, 4, 3, 0, 2), ltl::value_error);      // only 3 steps
}

TEST_CASE("an external normaliser replaces the batch's Σ w_y in the fused loss", "[dist][loss]") {
  ltl::rng g(3);
  ltl::tensor<double> z(ltl::shape{6, 4});
  for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = g.normal();
  const auto y = ltl::tensor<std::int64_t>::from(ltl::shape{6}, std::vector<std::int64_t>{0, 1, 1, 3, 2, 0});
  ltl::loss_terms t{.weights = {0.5, 2.0, 1.0, 3.0}};
  const double own = dist::local_normalizer(t, std::span<const std::int64_t>(y.data(), 6));
  REQUIRE(own == 0.5 + 2 + 2 + 3 + 1 + 0.5);
  const ltl::variable<double> zv(z, true);
  const auto base = ltl::logit_adjusted_loss(zv, y, t);
  base.backward();
  const auto g_base = zv.grad().to_vector();
  // The batch's own sum given explicitly: the same bits.
  auto te = t;
  te.normalizer = own;
  const ltl::variable<double> z2(z, true);
  const auto same = ltl::logit_adjusted_loss(z2, y, te);
  same.backward();
  REQUIRE(same.value().item() == base.value().item());
  REQUIRE(z2.grad().to_vector() == g_base);
  // Twice the sum (this batch is half of a global batch of equal weight): half the loss and gradient.
  te.normalizer = 2 * own;
  const ltl::variable<double> z3(z, true);
  const auto half = ltl::logit_adjusted_loss(z3, y, te);
  half.backward();
  REQUIRE(half.value().item() == Approx(base.value().item() / 2).epsilon(1e-14));
  const auto g_half = z3.grad().to_vector();
  for (std::size_t i = 0; i < g_half.size(); ++i) REQUIRE(g_half[i] == Approx(g_base[i] / 2).epsilon(1e-13).margin(1e-300));
  te.normalizer = -1;
  REQUIRE_THROWS_AS(ltl::logit_adjusted_loss(ltl::variable<double>(z, true), y, te), ltl::value_error);
}

namespace {
/// The communicator concept's archetype: exactly the documented requirements; bit i of `Drop`
/// removes requirement i, which the concept must then reject.
template <unsigned Drop>
struct communicator_archetype {
  int rank() const requires(!(Drop & 1u)) { return 0; }
  int size() const requires(!(Drop & 2u)) { return 1; }
  void all_reduce_sum(std::span<float>) requires(!(Drop & 4u)) {}
  void all_reduce_sum(std::span<double>) requires(!(Drop & 8u)) {}
  void all_reduce_sum(std::span<std::int64_t>) requires(!(Drop & 16u)) {}
  void start_all_reduce_sum(std::span<float>) requires(!(Drop & 32u)) {}
  void start_all_reduce_sum(std::span<double>) requires(!(Drop & 64u)) {}
  void progress() requires(!(Drop & 128u)) {}
  void wait_all() requires(!(Drop & 256u)) {}
  void broadcast(std::span<std::byte>, int) requires(!(Drop & 512u)) {}
  void barrier() requires(!(Drop & 1024u)) {}
  void abort(int) noexcept requires(!(Drop & 2048u)) {}
  std::string name() const requires(!(Drop & 4096u)) { return "archetype"; }
};
static_assert(dist::communicator<communicator_archetype<0>>);
static_assert([]<unsigned... I>(std::integer_sequence<unsigned, I...>) {
  return (!dist::communicator<communicator_archetype<(1u << I)>> && ...);
}(std::make_integer_sequence<unsigned, 13>{}), "the communicator concept must check each documented requirement");
}  // namespace

TEST_CASE("the local communicator is the identity and the default", "[dist]") {
  // The type-erased holder accepts any model, the archetype included.
  const dist::any_communicator arch{communicator_archetype<0>{}};
  REQUIRE(arch.name() == "archetype");
  REQUIRE(arch.single());
  static_assert(dist::communicator<dist::local_communicator>);
  static_assert(dist::communicator<dist::any_communicator>);
  dist::any_communicator c;
  REQUIRE(c.rank() == 0);
  REQUIRE(c.size() == 1);
  REQUIRE(c.name() == "local");
  std::vector<float> f{1.5f, -2.f};
  c.all_reduce_sum(std::span<float>(f));
  c.start_all_reduce_sum(std::span<float>(f));
  c.wait_all();
  REQUIRE(f == std::vector<float>{1.5f, -2.f});
  REQUIRE_THROWS_AS(c.broadcast({}, 1), ltl::value_error);
  REQUIRE(dist::eval_shard(10, 0, 1) == std::pair<index_t, index_t>{0, 10});
  REQUIRE(dist::eval_shard(10, 2, 3) == std::pair<index_t, index_t>{6, 10});
}

// ---------------------------------------------------------------------------------------------
// Under mpiexec -np 2
// ---------------------------------------------------------------------------------------------
#if LTL_HAS_MPI
namespace {

/// A small network without batch norm (conv → relu → pool → fc) for the full-batch comparison.
class plain_net : public ltl::nn::staged_model<float> {
 public:
  explicit plain_net(std::uint64_t seed) {
    ltl::rng g(seed);
    add_stage("stem", std::make_shared<ltl::nn::conv2d<float>>(
                          ltl::nn::conv2d_layer_options{.in_channels = 1, .out_channels = 6, .kernel = 3, .padding = 1, .bias = true},
                          g));
    add_stage("relu", std::make_shared<ltl::nn::relu<float>>());
    add_stage("pool", std::make_shared<ltl::nn::global_avg_pool<float>>());
    add_stage("fc", std::make_shared<ltl::nn::linear<float>>(ltl::nn::linear_options{.in_features = 6, .out_features = 3}, g));
  }
};

std::map<std::string, std::vector<float>> values(const std::map<std::string, ltl::tensor<float>>& m) {
  std::map<std::string, std::vector<float>> out;
  for (auto& [n, t] : m) out.emplace(n, t.to_vector());
  return out;
}

/// A directory every rank agrees on (rank 0's pid), created by rank 0.
std::filesystem::path shared_dir(dist::any_communicator& c, const std::string& name) {
  std::int64_t pid = ::getpid();
  dist::broadcast_values(c, std::span<std::int64_t>(&pid, 1));
  auto d = std::filesystem::temp_directory_path() / ("ltl_dist_" + name + "_" + std::to_string(pid));
  if (c.rank() == 0) {
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
  }
  c.barrier();
  return d;
}

dist::any_communicator world() {
  if (!dist::mpi_active()) FAIL("this case runs under mpiexec -np 2 (ctest -L mpi)");
  return dist::mpi_communicator();
}

}  // namespace

TEST_CASE("MPI collectives: sums, broadcast, non-blocking sums and sharded evaluation", "[.mpi][collectives]") {
  auto c = world();
  REQUIRE(c.size() == 2);
  const int r = c.rank();
  std::vector<float> f{1.f + static_cast<float>(r), 0.25f};
  std::vector<double> d{static_cast<double>(r) * 1e300, -1};
  std::vector<std::int64_t> i{std::int64_t{1} << 40, r};
  c.all_reduce_sum(std::span<float>(f));
  c.all_reduce_sum(std::span<double>(d));
  c.all_reduce_sum(std::span<std::int64_t>(i));
  REQUIRE(f == std::vector<float>{3.f, 0.5f});
  REQUIRE(d == std::vector<double>{1e300, -2});
  REQUIRE(i == std::vector<std::int64_t>{std::int64_t{1} << 41, 1});
  std::vector<float> a(1000, static_cast<float>(r + 1)), b(3, 1.f);
  c.start_all_reduce_sum(std::span<float>(a));
  c.start_all_reduce_sum(std::span<float>(b));
  c.progress();
  c.wait_all();
  REQUIRE(a == std::vector<float>(1000, 3.f));
  REQUIRE(b == std::vector<float>(3, 2.f));
  std::vector<double> v{static_cast<double>(r) + 0.5, 7};
  dist::broadcast_values(c, std::span<double>(v), 1);
  REQUIRE(v == std::vector<double>{1.5, 7});

  // Sharded evaluation: the counts of the whole set on every rank, as one process counts them.
  const auto ds = toy_dataset(20, 3, 4);
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 2});
  const ld::normalize norm{{0.3}, {0.3}};
  std::vector<double> counts;
  for (auto n : ds.class_counts()) counts.push_back(static_cast<double>(n));
  const auto sharded = dist::evaluate(m, ds, norm, counts, c, 7);
  const auto single = ltl::eval::evaluate(m, ds, norm, counts, 7);
  REQUIRE(sharded.n == single.n);
  REQUIRE(sharded.confusion == single.confusion);
  REQUIRE(sharded.top1 == single.top1);
  REQUIRE(sharded.top5 == single.top5);
  REQUIRE(sharded.loss == Approx(single.loss).epsilon(1e-12));
  REQUIRE(sharded.ece == Approx(single.ece).epsilon(1e-12).margin(1e-15));
}

TEST_CASE("the gradient reducer sums gradients across ranks with buckets started during backward", "[.mpi][reducer]") {
  auto c = world();
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 2});
  ltl::optim::sgd<float> opt(m.named_parameters(), {});
  dist::gradient_reducer<float, ltl::cpu::device> red(opt.params(), c, {.bucket_bytes = 512});
  REQUIRE(red.num_buckets() > 3);
  const auto sizes = red.bucket_sizes();
  REQUIRE(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) == static_cast<std::size_t>(m.num_parameters()));
  const auto ds = toy_dataset(6, 3, c.rank() + 1);  // different data per rank
  std::vector<index_t> idx(static_cast<std::size_t>(ds.size()));
  std::iota(idx.begin(), idx.end(), 0);
  const auto bt = ld::make_batch<float>(ds, idx);
  auto step = [&](bool reduce) {
    opt.zero_grad();
    if (reduce) red.prepare();
    ltl::cross_entropy(m.forward(ltl::variable<float>(bt.images)), bt.labels).backward();
    if (reduce) red.finish();
    std::vector<float> g;
    for (auto& [n, p] : opt.params()) {
      auto v = p.grad().to_vector();
      g.insert(g.end(), v.begin(), v.end());
    }
    return g;
  };
  const auto own = step(false);
  const auto summed = step(true);
  REQUIRE(red.started_during_backward() > 0);  // overlap: buckets left before backward ended
  std::vector<float> g0 = own, g1 = own;
  c.broadcast(std::as_writable_bytes(std::span<float>(g0)), 0);
  c.broadcast(std::as_writable_bytes(std::span<float>(g1)), 1);
  REQUIRE(summed.size() == g0.size());
  for (std::size_t k = 0; k < summed.size(); ++k) REQUIRE(summed[k] == g0[k] + g1[k]);
  // Hooks are inert outside prepare()/finish(): a plain backward keeps this rank's gradient.
  REQUIRE(step(false) == own);
}

TEST_CASE("world 2 at local batch B/2 equals one process accumulating the two micro-batches bit for bit",
          "[.mpi][accumulate]") {
  auto c = world();
  const auto ds = toy_dataset(24, 3, 2);  // 50 samples: 7 steps of 8, the last of 2 (1 per rank)
  const auto y = ds.labels();
  const index_t B = 8, epochs = 2;
  auto make_model = [] {
    return std::make_unique<ltl::nn::resnet_cifar<float>>(
        ltl::nn::resnet_cifar_options{.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
  };
  const auto sampler = ltl::sampling::instance_balanced(y, 3, 4);
  const auto loss = ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1));
  const ltl::optim::constant_lr lr{0.05};
  const ltl::optim::sgd_options sgd{.momentum = 0.9, .weight_decay = 5e-4};
  const ld::normalize norm{{0.3}, {0.3}};

  auto dp = make_model();
  ltl::train::trainer tr(*dp, ds,
                         {.epochs = epochs, .batch_size = B, .seed = 4, .sgd = sgd, .loader_workers = 0,
                          .progress = false, .print_epochs = false, .comm = c},
                         sampler, loss, ltl::mixing::none{}, lr, {}, norm);
  tr.fit();
  REQUIRE(tr.state().iteration == epochs * 7);

  // The reference, on every rank: both micro-batches of each step in one process, gradients
  // accumulated (rank 0's then rank 1's: the sum MPI forms), batch-norm statistics of rank 0's
  // micro-batch kept (the trainer broadcasts rank 0's buffers).
  auto ref = make_model();
  ltl::optim::sgd<float> opt(ref->named_parameters(), sgd);
  std::vector<double> counts;
  for (auto n : ds.class_counts()) counts.push_back(static_cast<double>(n));
  ref->train();
  for (index_t e = 0; e < epochs; ++e) {
    const auto order = sampler.epoch_indices(e);
    const auto n = static_cast<index_t>(order.size());
    const auto terms = ltl::losses::make_terms(loss, counts, e);
    for (index_t s = 0; s < dist::global_steps(n, B); ++s) {
      std::vector<ld::batch<float>> mb;
      double wsum = 0;
      for (int r = 0; r < 2; ++r) {
        const auto sl = dist::rank_slice(n, B, s, r, 2);
        REQUIRE(sl.size() > 0);
        mb.push_back(ld::make_batch<float>(
            ds, std::span<const index_t>(order.data() + sl.begin, static_cast<std::size_t>(sl.size()))));
        wsum += dist::local_normalizer(terms, std::span<const std::int64_t>(mb.back().labels.data(), sl.size()));
      }
      auto t = terms;
      t.normalizer = wsum;
      opt.zero_grad();
      std::vector<ltl::tensor<float>> kept;
      for (int r = 0; r < 2; ++r) {
        const auto z = ref->forward(ltl::variable<float>(mb[static_cast<std::size_t>(r)].images));
        if (r == 0)
          for (auto& [name, b] : ref->named_buffers()) kept.push_back(b.clone());
        ltl::logit_adjusted_loss(z, mb[static_cast<std::size_t>(r)].labels, t).backward();
      }
      std::size_t k = 0;
      for (auto& [name, b] : ref->named_buffers()) b.copy_(kept[k++]);
      opt.step(lr(0));
    }
  }
  REQUIRE(values(dp->state_dict()) == values(ref->state_dict()));  // parameters and BN buffers
  REQUIRE(values(tr.optimizer().state_dict()) == values(opt.state_dict()));  // momentum
  REQUIRE(!ref->named_buffers().empty());
}

TEST_CASE("without batch norm world 2 equals the full-batch process within 1e-6 under DRW weights", "[.mpi][full_batch]") {
  auto c = world();
  const auto ds = toy_dataset(28, 3, 6);  // 57 samples: the last batch of 8 has 1 (rank 0's slice is empty)
  const auto y = ds.labels();
  const ld::normalize norm{{0.3}, {0.3}};
  auto run = [&](dist::any_communicator comm) {
    plain_net m(7);
    ltl::train::trainer tr(m, ds,
                           {.epochs = 3, .batch_size = 8, .seed = 1, .sgd = {.momentum = 0.9, .weight_decay = 1e-3},
                            .loader_workers = 1, .progress = false, .print_epochs = false, .comm = comm},
                           ltl::sampling::instance_balanced(y, 3, 2), ltl::losses::drw(1, 0.99), ltl::mixing::none{},
                           ltl::optim::constant_lr{0.2}, {}, norm);
    tr.fit();
    return values(m.state_dict());
  };
  const auto parallel = run(c);
  const auto full = run(dist::local_communicator{});
  double worst = 0;
  for (auto& [name, v] : full)
    for (std::size_t k = 0; k < v.size(); ++k)
      worst = std::max(worst, static_cast<double>(std::abs(v[k] - parallel.at(name)[k])));
  INFO("largest parameter difference " << worst);
  REQUIRE(worst < 1e-6);
  // The normaliser matters: per-rank normalisers (the bug this guards against) move the
  // parameters by far more than 1e-6 — checked by the loss test above at the kernel level.
}

TEST_CASE("a 2-process run resumed from a checkpoint reproduces the uninterrupted run bit for bit", "[.mpi][resume]") {
  auto c = world();
  const auto ds = toy_dataset(24, 3, 2);
  const auto y = ds.labels();
  const ld::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.5}, .norm = {{0.3}, {0.3}}};
  auto run = [&](const std::filesystem::path& dir, index_t stop, bool resume, dist::any_communicator comm,
                 index_t batch) {
    ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
    ltl::train::trainer tr(m, ds,
                           {.epochs = 2, .batch_size = batch, .seed = 4, .out_dir = dir, .stop_after_steps = stop,
                            .loader_workers = 2, .progress = false, .print_epochs = false, .comm = comm},
                           ltl::sampling::power_sampler(y, 3, 0.5, 4),
                           ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)),
                           ltl::mixing::mixup{.alpha = 1.0}, ltl::optim::make_step_recipe(0.05, 7, 1, 1, 2),
                           [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, {{0.3}, {0.3}});
    if (resume) tr.resume(dir / "checkpoint.safetensors");
    tr.fit();
    return std::pair{values(m.state_dict()), tr.state().iteration};
  };
  const auto d1 = shared_dir(c, "full"), d2 = shared_dir(c, "part");
  const auto [full, steps] = run(d1, -1, false, c, 8);
  REQUIRE(steps == 14);
  const auto [partial, at] = run(d2, 5, false, c, 8);  // "killed" after 5 steps, mid-epoch 0
  REQUIRE(at == 5);
  const auto d3 = shared_dir(c, "one");
  if (c.rank() == 0) std::filesystem::copy_file(d2 / "checkpoint.safetensors", d3 / "checkpoint.safetensors");
  REQUIRE(partial != full);
  const auto [resumed, end] = run(d2, -1, true, c, 8);
  REQUIRE(end == steps);
  REQUIRE(resumed == full);
  // Every rank holds the same model (rank 0's checkpoint is what a resume restores).
  auto flat = [](const std::map<std::string, std::vector<float>>& m) {
    std::vector<float> v;
    for (auto& [n, x] : m) v.insert(v.end(), x.begin(), x.end());
    return v;
  };
  auto mine = flat(full), root = mine;
  dist::broadcast_values(c, std::span<float>(root), 0);
  REQUIRE(mine == root);
  // Another world size resumes only with the same global batch.
  if (c.rank() == 0) {
    REQUIRE_THROWS_WITH(run(d3, -1, true, dist::local_communicator{}, 6),
                        Catch::Contains("2 processes with global batch 8") && Catch::Contains("not 6"));
    const auto [one, one_end] = run(d3, -1, true, dist::local_communicator{}, 8);  // same batch: accepted
    REQUIRE(one_end == 14);  // the saved position (global steps) carries over
    REQUIRE(one != partial);
  }
  c.barrier();
  if (c.rank() == 0) {
    std::filesystem::remove_all(d1);
    std::filesystem::remove_all(d2);
    std::filesystem::remove_all(d3);
  }
}

TEST_CASE("an exception on one rank aborts the whole job with that rank's message", "[.mpi_abort]") {
  auto c = world();
  dist::run_or_abort(c, [&] {
    if (c.rank() == 1) throw ltl::value_error("rank 1 fails on purpose");
    c.barrier();  // rank 0 would wait here forever without the abort
  });
  FAIL("unreachable: the job should have been aborted");
}
#endif  // LTL_HAS_MPI

#if LTL_HAS_NCCL
TEST_CASE("NCCL communicator at world 1: all-reduce is the identity, ordered on its stream", "[cuda][nccl]") {
  if (!ltl::cuda::available()) {
    WARN("SKIPPED: " << ltl::cuda::unavailable_reason());
    return;
  }
  const dist::mpi_environment env;  // a singleton world when not launched by mpiexec
  dist::mpi_communicator self(MPI_COMM_SELF);
  dist::nccl_communicator nc(self);
  REQUIRE(nc.size() == 1);
  std::vector<float> host(4096);
  std::iota(host.begin(), host.end(), 0.f);
  float* dev = nullptr;
  LTL_CUDA_CHECK(cudaMalloc(&dev, host.size() * sizeof(float)));
  // Enqueued on the communicator's stream behind the upload: the reduction must see the data.
  LTL_CUDA_CHECK(cudaMemcpyAsync(dev, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, nc.stream()));
  nc.start_all_reduce_sum(std::span<float>(dev, host.size()));
  nc.all_reduce_sum(std::span<float>(dev, host.size()));
  std::vector<float> back(host.size());
  LTL_CUDA_CHECK(cudaMemcpyAsync(back.data(), dev, host.size() * sizeof(float), cudaMemcpyDeviceToHost, nc.stream()));
  nc.wait_all();
  LTL_CUDA_CHECK(cudaFree(dev));
  REQUIRE(back == host);
}
#endif

int main(int argc, char** argv) {
#if LTL_HAS_MPI
  // Under a launcher: MPI for the [mpi] cases. Run directly: no MPI unless a case needs it.
  std::optional<dist::mpi_environment> env;
  if (dist::launched_by_mpi()) env.emplace(&argc, &argv);
  return Catch::Session().run(argc, argv);
#else
  return Catch::Session().run(argc, argv);
#endif
}
