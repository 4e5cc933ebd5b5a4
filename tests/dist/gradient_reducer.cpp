// The gradient reducer, the state broadcast and the trainer's data-parallel side with a
// communicator of device buffers (the NCCL path, dist/gradient_reducer.hpp), run on
// ltl::testing::remote::device, whose addresses the host cannot dereference: a bucket or a
// scalar that went through the host by mistake aborts the test. The test communicators play
// rank 0 of two whose rank 1 holds the same values (sums double, rank 0's broadcast keeps them).
#include <catch2/catch.hpp>

#include <ltlearn/ltlearn.hpp>

#include "support/remote_device.hpp"
#include "support/toy_data.hpp"

#include <cstdlib>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace dist = ltl::dist;
using ltl::index_t;
using remote_dev = ltl::testing::remote::device;

namespace {

/// Rank 0 of two over host buffers; rank 1 mirrors it.
struct mirror_host {
  int rank() const { return 0; }
  int size() const { return 2; }
  template <class X>
  void all_reduce_sum(std::span<X> v) {
    for (auto& x : v) x += x;
    ++*calls;
  }
  template <class X>
  void start_all_reduce_sum(std::span<X> v) {
    all_reduce_sum(v);
  }
  void progress() {}
  void wait_all() {}
  void broadcast(std::span<std::byte>, int root) { REQUIRE(root == 0); }
  void barrier() {}
  [[noreturn]] void abort(int code) { std::_Exit(code); }
  std::string name() const { return "mirror-host"; }
  std::shared_ptr<int> calls = std::make_shared<int>(0);
};

/// Rank 0 of two over buffers of remote::device, moved with the device's own transfers; a
/// non-blocking sum happens at wait_all (a bucket read before then would be seen unsummed).
struct mirror_device {
  static constexpr bool device_memory = true;
  int rank() const { return 0; }
  int size() const { return 2; }
  template <class X>
  void all_reduce_sum(std::span<X> v) {
    twice(v.data(), v.size());
  }
  template <class X>
  void start_all_reduce_sum(std::span<X> v) {
    pending->push_back([p = v.data(), n = v.size()] { twice(p, n); });
  }
  void progress() {}
  void wait_all() {
    for (auto& f : *pending) f();
    *started += pending->size();
    pending->clear();
  }
  void broadcast(std::span<std::byte> x, int root) {
    REQUIRE(root == 0);  // this rank is the root: a round trip through the device's transfers
    std::vector<std::byte> h(x.size());
    ltl::device_transfer<ltl::cpu::device, remote_dev>::copy(h.data(), x.data(), x.size());
    ltl::device_transfer<remote_dev, ltl::cpu::device>::copy(x.data(), h.data(), x.size());
    ++*broadcasts;
  }
  void barrier() {}
  [[noreturn]] void abort(int code) { std::_Exit(code); }
  std::string name() const { return "mirror-device"; }
  const mirror_host& host() const { return host_; }

  template <class X>
  static void twice(X* p, std::size_t n) {
    std::vector<X> h(n);
    ltl::device_transfer<ltl::cpu::device, remote_dev>::copy(h.data(), p, n * sizeof(X));
    for (auto& x : h) x += x;
    ltl::device_transfer<remote_dev, ltl::cpu::device>::copy(p, h.data(), n * sizeof(X));
  }
  std::shared_ptr<std::vector<std::function<void()>>> pending = std::make_shared<std::vector<std::function<void()>>>();
  std::shared_ptr<std::size_t> started = std::make_shared<std::size_t>(0);
  std::shared_ptr<int> broadcasts = std::make_shared<int>(0);
  mirror_host host_;
};

static_assert(dist::communicator<mirror_host>);
static_assert(dist::communicator<mirror_device>);
static_assert(dist::device_memory_v<mirror_device> && !dist::device_memory_v<mirror_host>);

using model_t = ltl::nn::resnet_cifar<float, remote_dev>;
const ltl::nn::resnet_cifar_options model_opt{.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 2};

}  // namespace

TEST_CASE("a communicator of device buffers: buckets on the device, scalars through its host side", "[dist][reducer]") {
  mirror_device dev;
  const dist::any_communicator comm(dev);
  REQUIRE(comm.device_memory());
  REQUIRE(!comm.host().device_memory());
  REQUIRE(comm.host().name() == "mirror-host");
  REQUIRE(!dist::any_communicator().device_memory());
  REQUIRE(dist::any_communicator().host().name() == "local");

  model_t m(model_opt);
  ltl::optim::sgd<float, remote_dev> opt(m.named_parameters(), {});
  dist::gradient_reducer<float, remote_dev> red(opt.params(), comm, {.bucket_bytes = 512});
  REQUIRE(red.buckets_on_device());
  REQUIRE(red.num_buckets() > 3);
  const auto sizes = red.bucket_sizes();
  REQUIRE(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) == static_cast<std::size_t>(m.num_parameters()));

  const auto ds = ltl_test::toy_dataset(6, 3, 1);
  std::vector<index_t> idx(static_cast<std::size_t>(ds.size()));
  std::iota(idx.begin(), idx.end(), 0);
  const auto bt = ltl::data::make_batch<float>(ds, idx);
  auto step = [&](bool reduce) {
    opt.zero_grad();
    if (reduce) red.prepare();
    ltl::cross_entropy(m.forward(ltl::variable<float, remote_dev>(bt.images.to<remote_dev>())),
                       bt.labels.to<remote_dev>())
        .backward();
    if (reduce) red.finish();
    std::map<std::string, std::vector<float>> g;
    for (auto& [n, p] : opt.params()) g.emplace(n, p.grad().to_vector());
    return g;
  };
  const auto own = step(false);
  const auto summed = step(true);
  REQUIRE(red.started_during_backward() > 0);  // started from the hooks, summed at wait_all
  REQUIRE(*dev.started == red.num_buckets());
  for (auto& [n, g] : own) {
    INFO(n);
    std::vector<float> twice = g;
    for (auto& x : twice) x += x;
    REQUIRE(summed.at(n) == twice);  // rank 1 mirrors rank 0: the sum is exactly 2·g
  }
  REQUIRE(step(false) == own);  // hooks inert outside prepare()/finish()

  // Parameters, buffers and momentum broadcast in device memory (one buffer); their values kept.
  const auto before = m.state_dict();
  std::map<std::string, std::vector<float>> kept;
  for (auto& [n, t] : before) kept.emplace(n, t.to_vector());
  dist::broadcast_state(dev, m, &opt);
  REQUIRE(*dev.broadcasts == 1);
  REQUIRE(*dev.host_.calls == 0);
  for (auto& [n, t] : m.state_dict()) REQUIRE(t.to_vector() == kept.at(n));

  // The trainer's side: scalars over the host communicator, gradients and buffers on the device.
  ltl::train::data_parallel<float, remote_dev> dp(comm, 8, opt.params());
  REQUIRE(dp.active());
  REQUIRE(dp.reducer()->buckets_on_device());
  const auto terms = dp.global_terms(ltl::loss_terms{}, bt.labels.to<remote_dev>());
  REQUIRE(terms.normalizer == 2.0 * static_cast<double>(ds.size()));
  REQUIRE(*dev.host_.calls == 1);
  const auto tot = dp.reduce({.loss = 0.5, .seen = 4, .correct = 3});
  REQUIRE(tot.loss == 1.0);
  REQUIRE(tot.seen == 8);
  REQUIRE(tot.correct == 6);
  const int b0 = *dev.broadcasts;
  dp.after_step(m);
  REQUIRE(*dev.broadcasts == b0 + 1);

  // Device buffers cannot hold host parameters.
  ltl::nn::resnet_cifar<float> host_model(model_opt);
  ltl::optim::sgd<float> host_opt(host_model.named_parameters(), {});
  REQUIRE_THROWS_WITH((dist::gradient_reducer<float, ltl::cpu::device>(host_opt.params(), comm)),
                      Catch::Contains("sums device buffers"));
}
