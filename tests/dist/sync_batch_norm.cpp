// Synchronised batch norm (ops/sync_norm.hpp, dist/sync_batch_norm.hpp, issue 19):
//   - in one process, the op with a reducer that plays a second rank holding the same batch
//     equals plain batch norm over the doubled batch (forward, backward, running statistics);
//   - on ltl::testing::remote::device (memory the host cannot read) the op gives the CPU's bits;
//   - a world of one is plain batch norm bit for bit (the layers take the plain path);
//   - under mpiexec -np 2 ([mpi][sync_bn]): the trainer at world 2, local batch B/2, with
//     synchronised batch norm equals one process at batch B within 1e-6 (loss, parameters,
//     running statistics, momentum) — float sums over the two ranks' slices are formed in a
//     different order than over the whole batch, so equality is up to rounding, not bitwise —
//     and without synchronisation it does not.
#include <catch2/catch.hpp>

#include <ltlearn/ltlearn.hpp>

#include "support/remote_device.hpp"
#include "support/toy_data.hpp"

#if LTL_HAS_MPI
#include <ltlearn/dist/mpi.hpp>
#endif

#include <array>
#include <cmath>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dist = ltl::dist;
using ltl::index_t;

namespace {

/// Plays rank 0 of two whose rank 1 holds the same batch: the statistics exchange (R slots of
/// 1 + 2C values) gets rank 0's slot copied into rank 1's; the backward sums (2C values) double.
class mirror_reducer final : public ltl::batch_stat_reducer {
 public:
  explicit mirror_reducer(index_t channels) : c_(static_cast<std::size_t>(channels)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_reduce_sum(std::span<double> v) override {
    const std::size_t slot = 1 + 2 * c_;
    if (v.size() == 2 * slot) {
      for (std::size_t k = 0; k < slot; ++k) v[slot + k] += v[k];
      ++gathers;
    } else {
      REQUIRE(v.size() == 2 * c_);
      for (auto& x : v) x += x;
      ++sums;
    }
  }
  int gathers = 0, sums = 0;

 private:
  std::size_t c_;
};

template <class T>
ltl::tensor<T> random_tensor(const ltl::shape& s, ltl::rng& g, double lo, double hi) {
  std::vector<T> v(static_cast<std::size_t>(s.numel()));
  for (auto& x : v) x = static_cast<T>(lo + (hi - lo) * g.uniform());
  return ltl::tensor<T>::from(s, std::span<const T>(v));
}

/// Largest |scale·a − b| relative to max(1, |b|).
template <class T>
double max_rel_diff(const ltl::tensor<T>& a, const ltl::tensor<T>& b, double scale = 1) {
  REQUIRE(a.sizes() == b.sizes());
  const auto x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (std::size_t k = 0; k < x.size(); ++k)
    worst = std::max(worst, std::abs(scale * static_cast<double>(x[k]) - static_cast<double>(y[k])) /
                                std::max(1.0, std::abs(static_cast<double>(y[k]))));
  return worst;
}

double last_error = 0;  // the largest difference check_mirrored saw

/// The op with a mirrored second rank against plain batch norm over [x; x].
template <class T>
void check_mirrored(bool relu, bool residual, double tol) {
  ltl::rng g(5);
  const index_t N = 3, C = 4, H = 3, W = 5;
  const ltl::shape s{N, C, H, W}, s2{2 * N, C, H, W};
  const auto x = random_tensor<T>(s, g, 1.5, 4.0);  // mean far from 0: the shift matters
  const auto r = random_tensor<T>(s, g, -1.0, 1.0);
  const auto dy = random_tensor<T>(s, g, -1.0, 1.0);
  const auto w0 = random_tensor<T>(ltl::shape{C}, g, 0.5, 1.5), b0 = random_tensor<T>(ltl::shape{C}, g, -0.5, 0.5);
  const auto rm0 = random_tensor<T>(ltl::shape{C}, g, -0.1, 0.1), rv0 = random_tensor<T>(ltl::shape{C}, g, 0.9, 1.1);
  const ltl::batch_norm_options opt{.training = true, .momentum = 0.1, .eps = 1e-5, .relu = relu};

  ltl::variable<T> xs(x.clone(), true), ws(w0.clone(), true), bs(b0.clone(), true), rs(r.clone(), true);
  auto rm_s = rm0.clone(), rv_s = rv0.clone();
  auto red = std::make_shared<mirror_reducer>(C);
  auto ys = ltl::sync_batch_norm2d(xs, ws, bs, rm_s, rv_s, opt, residual ? rs : ltl::variable<T>{}, red);
  ltl::sum(ltl::mul(ys, ltl::variable<T>(dy))).backward();
  REQUIRE(red->gathers == 1);
  REQUIRE(red->sums == 1);

  auto twice = [](const ltl::tensor<T>& t) {
    auto out = ltl::tensor<T>(ltl::shape{2 * t.size(0), t.size(1), t.size(2), t.size(3)});
    out.narrow(0, 0, t.size(0)).copy_(t);
    out.narrow(0, t.size(0), t.size(0)).copy_(t);
    return out;
  };
  ltl::variable<T> xp(twice(x), true), wp(w0.clone(), true), bp(b0.clone(), true), rp(twice(r), true);
  auto rm_p = rm0.clone(), rv_p = rv0.clone();
  auto yp = ltl::batch_norm2d(xp, wp, bp, rm_p, rv_p, opt, residual ? rp : ltl::variable<T>{});
  ltl::sum(ltl::mul(yp, ltl::variable<T>(twice(dy)))).backward();

  auto check = [&](double d) {
    CHECK(d < tol);
    last_error = std::max(last_error, d);
  };
  check(max_rel_diff(ys.value(), yp.value().narrow(0, 0, N).contiguous()));
  check(max_rel_diff(xs.grad(), xp.grad().narrow(0, 0, N).contiguous()));
  if (residual) check(max_rel_diff(rs.grad(), rp.grad().narrow(0, 0, N).contiguous()));
  // Weight and bias gradients stay local (the gradient reduction sums the ranks'): half of [x; x]'s.
  check(max_rel_diff(ws.grad(), wp.grad(), 2));
  check(max_rel_diff(bs.grad(), bp.grad(), 2));
  check(max_rel_diff(rm_s, rm_p));  // global mean
  check(max_rel_diff(rv_s, rv_p));  // unbiased over 2·N·H·W values, not N·H·W
}

}  // namespace

TEST_CASE("synchronised batch norm with a mirrored rank equals batch norm over the doubled batch", "[dist][sync_bn]") {
  for (bool relu : {false, true})
    for (bool residual : {false, true}) {
      INFO("relu " << relu << ", residual " << residual);
      last_error = 0;
      check_mirrored<double>(relu, residual, 1e-12);
      WARN("double: largest relative difference " << last_error);
      last_error = 0;
      check_mirrored<float>(relu, residual, 1e-6);
      WARN("float: largest relative difference " << last_error);
    }
}

TEST_CASE("synchronised batch norm is device-generic: the remote test device gives the CPU's bits", "[dist][sync_bn]") {
  using remote_dev = ltl::testing::remote::device;
  ltl::rng g(9);
  const ltl::shape s{2, 3, 4, 4};
  const auto x = random_tensor<float>(s, g, 1.0, 3.0), r = random_tensor<float>(s, g, -1.0, 1.0);
  const auto dy = random_tensor<float>(s, g, -1.0, 1.0);
  const auto w = random_tensor<float>(ltl::shape{3}, g, 0.5, 1.5), b = random_tensor<float>(ltl::shape{3}, g, -0.5, 0.5);
  auto run = [&]<class D>(D) {
    ltl::variable<float, D> xv(x.to<D>(), true), wv(w.to<D>(), true), bv(b.to<D>(), true), rv(r.to<D>(), true);
    auto rm = ltl::tensor<float, D>::zeros(ltl::shape{3}), rvar = ltl::tensor<float, D>::ones(ltl::shape{3});
    auto y = ltl::sync_batch_norm2d(xv, wv, bv, rm, rvar, {.training = true, .relu = true}, rv,
                                    std::make_shared<mirror_reducer>(3));
    ltl::sum(ltl::mul(y, ltl::variable<float, D>(dy.to<D>()))).backward();
    return std::vector<std::vector<float>>{y.value().to_vector(), xv.grad().to_vector(), wv.grad().to_vector(),
                                           bv.grad().to_vector(), rv.grad().to_vector(), rm.to_vector(),
                                           rvar.to_vector()};
  };
  REQUIRE(run(ltl::cpu::device{}) == run(remote_dev{}));
}

TEST_CASE("synchronised batch norm in a world of one is plain batch norm bit for bit", "[dist][sync_bn]") {
  const auto ds = ltl_test::toy_dataset(6, 3, 1);
  std::vector<index_t> idx(static_cast<std::size_t>(ds.size()));
  for (std::size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<index_t>(k);
  const auto bt = ltl::data::make_batch<float>(ds, idx);
  auto train = [&](bool sync) {
    ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 3});
    std::optional<dist::sync_batch_norm_scope<float, ltl::cpu::device>> scope;
    if (sync) {
      scope.emplace(m, dist::local_communicator{});
      REQUIRE(scope->size() == 7);  // stem + two per block, three blocks
    }
    ltl::optim::sgd<float> opt(m.named_parameters(), {.momentum = 0.9});
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      ltl::cross_entropy(m.forward(ltl::variable<float>(bt.images)), bt.labels).backward();
      opt.step(0.1);
    }
    std::map<std::string, std::vector<float>> out;
    for (auto& [n, t] : m.state_dict()) out.emplace(n, t.to_vector());
    return out;
  };
  REQUIRE(train(true) == train(false));

  // The scope's end makes the layers local again.
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 3});
  std::function<std::size_t(const ltl::nn::module<float>&)> synced = [&](const ltl::nn::module<float>& mod) {
    std::size_t k = 0;
    for (auto& [n, child] : mod.children()) {
      if (auto b = std::dynamic_pointer_cast<ltl::nn::batch_norm2d<float>>(child); b && b->sync()) ++k;
      k += synced(*child);
    }
    return k;
  };
  {
    const dist::sync_batch_norm_scope<float, ltl::cpu::device> scope(m, dist::local_communicator{});
    REQUIRE(synced(m) == 7);
  }
  REQUIRE(synced(m) == 0);
}

#if LTL_HAS_MPI
namespace {

using value_map = std::map<std::string, std::vector<double>>;

template <class T>
value_map flat_values(const std::map<std::string, ltl::tensor<T>>& m) {
  value_map out;
  for (auto& [n, t] : m) {
    const auto v = t.to_vector();
    out.emplace(n, std::vector<double>(v.begin(), v.end()));
  }
  return out;
}

/// Largest |a − b| / max(1, |a|) over the entries whose name contains `only`.
double worst_difference(const value_map& a, const value_map& b, const std::string& only = "") {
  double worst = 0;
  for (auto& [name, v] : a) {
    if (!only.empty() && name.find(only) == std::string::npos) continue;
    for (std::size_t k = 0; k < v.size(); ++k)
      worst = std::max(worst, std::abs(v[k] - b.at(name)[k]) / std::max(1.0, std::abs(v[k])));
  }
  return worst;
}

struct sync_run {
  value_map state, momentum;
  std::vector<double> losses;
};

/// Trains a depth-8 CIFAR ResNet on `ds` for two epochs at global batch 8 over `comm`.
template <class T>
sync_run train_resnet(const ltl::data::image_dataset& ds, dist::any_communicator comm, bool sync) {
  const index_t B = 8, epochs = 2;
  const auto y = ds.labels();
  ltl::nn::resnet_cifar<T> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
  ltl::train::trainer tr(m, ds,
                         {.epochs = epochs, .batch_size = B, .seed = 4, .sgd = {.momentum = 0.9, .weight_decay = 5e-4},
                          .loader_workers = 0, .progress = false, .print_epochs = false, .comm = comm,
                          .reducer = {.sync_batch_norm = sync}},
                         ltl::sampling::instance_balanced(y, 3, 4),
                         ltl::losses::drw(1, 0.99), ltl::mixing::none{}, ltl::optim::constant_lr{0.02}, {},
                         ltl::data::normalize{{0.3}, {0.3}});
  REQUIRE(tr.parallel().synchronised_batch_norms() == (sync && comm.size() > 1 ? 7u : 0u));
  sync_run r;
  for (auto& s : tr.fit()) r.losses.push_back(s.train_loss);
  REQUIRE(tr.state().iteration == epochs * 7);
  r.state = flat_values(m.state_dict());
  r.momentum = flat_values(tr.optimizer().state_dict());
  return r;
}

/// Largest differences (losses, parameters and buffers, running statistics, momentum; each
/// relative to max(1, |value|)) between world 2 and one process.
template <class T>
std::array<double, 4> compare_worlds(dist::any_communicator c, const ltl::data::image_dataset& ds, bool sync) {
  const auto parallel = train_resnet<T>(ds, c, sync);
  const auto full = train_resnet<T>(ds, dist::local_communicator{}, false);
  REQUIRE(parallel.losses.size() == full.losses.size());
  double loss = 0;
  for (std::size_t e = 0; e < full.losses.size(); ++e)
    loss = std::max(loss, std::abs(parallel.losses[e] - full.losses[e]) / std::max(1.0, std::abs(full.losses[e])));
  return {loss, worst_difference(full.state, parallel.state), worst_difference(full.state, parallel.state, "running_"),
          worst_difference(full.momentum, parallel.momentum)};
}

}  // namespace

TEST_CASE("synchronised batch norm at world 2 equals one process at the global batch within 1e-6",
          "[.mpi][sync_bn]") {
  if (!dist::mpi_active()) FAIL("this case runs under mpiexec -np 2 (ctest -L mpi)");
  dist::any_communicator c = dist::mpi_communicator();
  REQUIRE(c.size() == 2);
  const auto ds = ltl_test::toy_dataset(24, 3, 2);  // 50 samples: 7 steps of 8, the last of 2 (1 per rank)
  for (const bool is_double : {true, false}) {
    const auto d = is_double ? compare_worlds<double>(c, ds, true) : compare_worlds<float>(c, ds, true);
    WARN((is_double ? "double" : "float") << ": largest differences to one process: loss " << d[0]
                                          << ", parameters and buffers " << d[1] << ", running statistics " << d[2]
                                          << ", momentum " << d[3]);
    REQUIRE(d[0] < 1e-6);
    REQUIRE(d[1] < 1e-6);
    REQUIRE(d[3] < 1e-6);
  }
  // Per-rank statistics (no synchronisation) are far from the global batch's: the test can fail.
  const auto plain = compare_worlds<double>(c, ds, false);
  WARN("double without synchronisation: running statistics differ by " << plain[2] << " (relative)");
  REQUIRE(plain[2] > 1e-4);

  // Every rank holds the same running statistics, with or without the trainer's broadcast of buffers.
  const auto mine = train_resnet<float>(ds, c, true).state;
  for (auto& [name, v] : mine) {
    auto root = v;
    dist::broadcast_values(c, std::span<double>(root), 0);
    REQUIRE(root == v);
  }

  // An epoch whose last global batch leaves a rank without samples is refused on every rank.
  const auto odd = ltl_test::toy_dataset(28, 3, 6);  // 57 samples: the last batch of 8 has 1
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
  ltl::train::trainer tr(m, odd,
                         {.epochs = 1, .batch_size = 8, .loader_workers = 0, .progress = false, .print_epochs = false,
                          .comm = c, .reducer = {.sync_batch_norm = true}},
                         ltl::sampling::instance_balanced(odd.labels(), 3, 1), ltl::losses::drw(1),
                         ltl::mixing::none{}, ltl::optim::constant_lr{0.05}, {}, ltl::data::normalize{{0.3}, {0.3}});
  REQUIRE_THROWS_WITH(tr.fit(), Catch::Contains("synchronised batch norm") && Catch::Contains("last global batch of 1"));
}
#endif
