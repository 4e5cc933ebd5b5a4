// Code above the backends is generic over the device: models, the fused loss and SGD run on
// ltl::testing::device (tests/support/test_device.hpp), a device type that is not the CPU's but
// forwards to its kernels, and give the CPU device's results bit for bit. Anything above the
// backends still hard-wired to `cpu::device` or `cpu::` kernels fails to compile here.
// They also run on ltl::testing::remote::device (tests/support/remote_device.hpp), whose memory
// the host cannot read, as a GPU's: code above the backends that reads a device tensor's
// elements on the host faults there.
#include <catch2/catch.hpp>

#include "support/random_tensor.hpp"
#include "support/remote_device.hpp"
#include "support/test_device.hpp"

#include <ltlearn/backends/cpu/kernel_set.hpp>
#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/losses/policies.hpp>
#include <ltlearn/nn/models/resnet12.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/ops/activation.hpp>
#include <ltlearn/ops/conv.hpp>
#include <ltlearn/ops/norm.hpp>
#include <ltlearn/ops/pool.hpp>
#include <ltlearn/ops/shape_ops.hpp>
#include <ltlearn/ops/elementwise.hpp>
#include <ltlearn/ops/indexing.hpp>
#include <ltlearn/ops/reduce.hpp>
#include <ltlearn/optim/sgd.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

using ltl::index_t;
using ltl::shape;
using cpu_dev = ltl::cpu::device;
using test_dev = ltl::testing::device;
using remote_dev = ltl::testing::remote::device;

static_assert(ltl::compute_device<cpu_dev>);
static_assert(ltl::compute_device<test_dev>);
static_assert(ltl::compute_device<remote_dev>);
static_assert(!std::is_same_v<cpu_dev, test_dev>);
static_assert(!remote_dev::is_host);
// An archetype that is a device but provides no kernel satisfies none of the kernel concepts.
namespace archetype {
struct bare_device {
  static constexpr const char* name = "bare";
  static constexpr bool is_host = true;
  static void* allocate(std::size_t) { return nullptr; }
  static void deallocate(void*, std::size_t) noexcept {}
  static void copy(void*, const void*, std::size_t) {}
  static void zero(void*, std::size_t) {}
};
}  // namespace archetype
static_assert(ltl::device<archetype::bare_device>);
static_assert(ltl::tensor_kernels<archetype::bare_device, float>);  // host memory needs no hooks
static_assert(!ltl::elementwise_kernels<archetype::bare_device, float>);
static_assert(!ltl::conv_kernels<archetype::bare_device, float>);
static_assert(!ltl::compute_device<archetype::bare_device>);

namespace {

/// Same shape and the same bits (NaN payloads included).
template <class T, class D1, class D2>
void require_bitwise_equal(const ltl::tensor<T, D1>& a, const ltl::tensor<T, D2>& b, const std::string& what) {
  INFO(what);
  REQUIRE(a.defined() == b.defined());
  if (!a.defined()) return;
  REQUIRE(a.sizes() == b.sizes());
  const auto va = a.to_vector(), vb = b.to_vector();
  REQUIRE(std::memcmp(va.data(), vb.data(), va.size() * sizeof(T)) == 0);
}

/// Everything one training step of a model computes: loss, logits, parameter gradients,
/// batch-norm running statistics after the step.
struct step_outputs {
  float loss = 0;
  ltl::tensor<float> logits;
  std::map<std::string, ltl::tensor<float>> grads, buffers;
};

/// Forward + backward of `Model<float, D>` in training mode on input x with a cross-entropy
/// loss; the model is built from `opt` on device D.
template <template <class, class> class Model, class D, class Options>
step_outputs train_step(const Options& opt, const ltl::tensor<float>& x, const ltl::tensor<std::int64_t>& y) {
  Model<float, D> model(opt);
  model.train();
  ltl::variable<float, D> in(x.template to<D>(), false);
  auto logits = model.forward(in);
  auto loss = ltl::cross_entropy(logits, y.template to<D>());
  loss.backward();
  step_outputs out{loss.value().item(), logits.value().template to<cpu_dev>(), {}, {}};
  for (auto& [name, p] : model.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
    out.grads.emplace(name, p.grad().template to<cpu_dev>());
  }
  for (auto& [name, b] : model.named_buffers()) out.buffers.emplace(name, b.template to<cpu_dev>());
  return out;
}

void require_same_step(const step_outputs& a, const step_outputs& b) {
  REQUIRE(std::memcmp(&a.loss, &b.loss, sizeof(float)) == 0);
  require_bitwise_equal(a.logits, b.logits, "logits");
  REQUIRE(a.grads.size() == b.grads.size());
  REQUIRE(!a.grads.empty());
  for (auto& [name, g] : a.grads) require_bitwise_equal(g, b.grads.at(name), "gradient of " + name);
  REQUIRE(a.buffers.size() == b.buffers.size());
  for (auto& [name, t] : a.buffers) require_bitwise_equal(t, b.buffers.at(name), "buffer " + name);
}

}  // namespace

TEST_CASE("view_as_device types host memory as another host device without copying", "[device]") {
  auto h = ltl_test::random_tensor<float>({3, 4}, 1);
  auto t = h.view_as_device<test_dev>();
  STATIC_REQUIRE(std::is_same_v<decltype(t)::device_type, test_dev>);
  REQUIRE(t.data() == h.data());
  REQUIRE(t.sizes() == h.sizes());
  REQUIRE(t.shares_storage(t.view_as_device<cpu_dev>().view_as_device<test_dev>()));
  // Both handles see the memory: neither counts as its sole owner.
  REQUIRE(h.storage_use_count() == 2);
  REQUIRE(t.storage_use_count() == 2);
  t.at({1, 2}) = 42.0f;
  REQUIRE(h.at({1, 2}) == 42.0f);
  // A view of a view (with an offset and strides) keeps them, and borrows from the owner.
  auto v = t.transpose(0, 1).narrow(0, 1, 2).view_as_device<cpu_dev>();
  REQUIRE(v.sizes() == shape{2, 3});
  REQUIRE(v.at({1, 1}) == 42.0f);
  // The memory outlives the handle it came from.
  const float* p = h.data();
  h = ltl::tensor<float>();
  REQUIRE(t.data() == p);
  REQUIRE(t.at({1, 2}) == 42.0f);
  v = ltl::tensor<float>();
  REQUIRE(t.storage_use_count() == 1);
  REQUIRE_FALSE(ltl::tensor<float>().view_as_device<test_dev>().defined());
  // Moving between the devices with to<>() copies.
  auto c = t.to<cpu_dev>();
  REQUIRE(c.data() != t.data());
  require_bitwise_equal(c, t, "copy");
}

TEST_CASE("the remote test device hands out addresses the host cannot use, and moves values exactly", "[device]") {
  const auto h = ltl_test::random_tensor<float>({3, 5}, 41);
  auto r = h.to<remote_dev>();
  // A device address: bit 62 set, never a host pointer (a dereference faults).
  REQUIRE((reinterpret_cast<std::uintptr_t>(r.data()) & remote_dev::tag) != 0);
  REQUIRE(remote_dev::untagged(r.data()) != h.data());
  require_bitwise_equal(h, r, "upload and download");
  REQUIRE_THROWS_AS(r.item(), ltl::shape_error);  // 15 elements
  // copy_ between strided views and fill_ of a strided view run through the device's hooks.
  auto t = ltl::tensor<float, remote_dev>::zeros({5, 3});
  t.copy_(r.transpose(0, 1));
  require_bitwise_equal(h.transpose(0, 1).contiguous(), t, "strided copy");
  t.narrow(1, 1, 1).fill_(7.0f);
  auto expect = h.transpose(0, 1).contiguous();
  expect.narrow(1, 1, 1).fill_(7.0f);
  require_bitwise_equal(expect, t, "strided fill");
  REQUIRE(t.select(0, 2).select(0, 1).item() == 7.0f);
  REQUIRE(ltl::tensor<float, remote_dev>::scalar(2.5f).item() == 2.5f);
}

TEST_CASE("a small resnet_cifar trains on the test device with the CPU's bits", "[device]") {
  const ltl::nn::resnet_cifar_options opt{.depth = 8, .num_classes = 5, .width = 4, .seed = 3};
  const auto x = ltl_test::random_tensor<float>({4, 3, 12, 12}, 7);
  const auto y = ltl::tensor<std::int64_t>::from({4}, {0, 3, 4, 1});
  const auto on_cpu = train_step<ltl::nn::resnet_cifar, cpu_dev>(opt, x, y);
  const auto on_test = train_step<ltl::nn::resnet_cifar, test_dev>(opt, x, y);
  require_same_step(on_cpu, on_test);
  require_same_step(on_cpu, train_step<ltl::nn::resnet_cifar, remote_dev>(opt, x, y));
}

TEST_CASE("a tiny ResNet-12 trains on the test device with the CPU's bits", "[device]") {
  const ltl::nn::resnet12_options opt{.num_classes = 4, .widths = {4, 6, 8, 8}, .seed = 5};
  const auto x = ltl_test::random_tensor<float>({3, 3, 16, 16}, 9);
  const auto y = ltl::tensor<std::int64_t>::from({3}, {2, 0, 3});
  const auto on_cpu = train_step<ltl::nn::resnet12, cpu_dev>(opt, x, y);
  const auto on_test = train_step<ltl::nn::resnet12, test_dev>(opt, x, y);
  require_same_step(on_cpu, on_test);
  require_same_step(on_cpu, train_step<ltl::nn::resnet12, remote_dev>(opt, x, y));
}

TEST_CASE("the fused loss under several policies gives the CPU's value and gradient", "[device]") {
  namespace losses = ltl::losses;
  const std::vector<double> counts{500, 120, 30, 8, 2};
  const auto z = ltl_test::random_tensor<float>({6, 5}, 11, -3, 3);
  const auto y = ltl::tensor<std::int64_t>::from({6}, {0, 4, 2, 2, 1, 3});
  const auto w = ltl_test::random_tensor<float>({6}, 12, 0.2, 1.0);
  const std::vector<std::pair<std::string, ltl::loss_terms>> cases{
      {"cross entropy", ltl::loss_terms{}},
      {"ldam + drw", losses::make_terms(losses::compose{losses::ldam{}, losses::drw(0)}, counts, 1)},
      {"logit adjustment", losses::make_terms(losses::logit_adjust{.tau = 1.0}, counts, 0)},
      {"cdt + focal", losses::make_terms(losses::compose{losses::cdt{.gamma = 0.2}, losses::focal{.gamma = 2.0}},
                                         counts, 0)},
  };
  for (const auto& c : cases) {
    INFO(c.first);
    const ltl::loss_terms& terms = c.second;
    auto run = [&]<class D>(D) {
      ltl::variable<float, D> logits(z.template to<D>(), true);
      // Per-sample weights exercise the kernel's third optional operand.
      auto loss = ltl::logit_adjusted_loss(logits, y.template to<D>(), terms, w.template to<D>());
      loss.backward();
      return std::pair{loss.value().template to<cpu_dev>(), logits.grad().template to<cpu_dev>()};
    };
    const auto [l_cpu, g_cpu] = run(cpu_dev{});
    const auto [l_test, g_test] = run(test_dev{});
    require_bitwise_equal(l_cpu, l_test, "loss");
    require_bitwise_equal(g_cpu, g_test, "gradient");
    const auto [l_remote, g_remote] = run(remote_dev{});
    require_bitwise_equal(l_cpu, l_remote, "loss on the remote device");
    require_bitwise_equal(g_cpu, g_remote, "gradient on the remote device");
  }
}

TEST_CASE("SGD with momentum and Nesterov updates test-device parameters as on the CPU", "[device]") {
  const auto w0 = ltl_test::random_tensor<double>({4, 3}, 21), b0 = ltl_test::random_tensor<double>({3}, 22);
  const auto x = ltl_test::random_tensor<double>({5, 4}, 23);
  auto run = [&]<class D>(D) {
    // clone(): to<cpu_dev>() of a CPU tensor is the tensor itself, which SGD updates in place.
    ltl::variable<double, D> w(w0.clone().template to<D>(), true), b(b0.clone().template to<D>(), true);
    ltl::optim::sgd<double, D> opt({{"w", w}, {"b", b}},
                                   {.momentum = 0.9, .weight_decay = 5e-4, .nesterov = true});
    ltl::variable<double, D> in(x.template to<D>(), false);
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      // exp, log, pow and leaky_relu: the named elementwise kernels, generic over the device.
      auto h = ltl::leaky_relu(ltl::add(ltl::matmul(in, w), b), 0.1);
      auto loss = ltl::mean(ltl::log(ltl::exp(h) + 1.0) + ltl::pow(h * h + 1.0, 1.5));
      loss.backward();
      opt.step(0.05);
    }
    std::vector<ltl::tensor<double>> out{w.value().template to<cpu_dev>(), b.value().template to<cpu_dev>()};
    for (auto& [name, m] : opt.state_dict()) out.push_back(m.template to<cpu_dev>());
    return out;
  };
  const auto on_cpu = run(cpu_dev{});
  const auto on_test = run(test_dev{});
  REQUIRE(on_cpu.size() == 4);  // weights, bias and both momentum buffers
  REQUIRE(on_test.size() == on_cpu.size());
  for (std::size_t i = 0; i < on_cpu.size(); ++i) require_bitwise_equal(on_cpu[i], on_test[i], std::to_string(i));
  const auto on_remote = run(remote_dev{});
  REQUIRE(on_remote.size() == on_cpu.size());
  for (std::size_t i = 0; i < on_cpu.size(); ++i) require_bitwise_equal(on_cpu[i], on_remote[i], "remote " + std::to_string(i));
  // The run moved the parameters (the comparison is not between two untouched copies).
  REQUIRE(std::memcmp(on_cpu[0].data(), w0.data(), w0.bytes()) != 0);
}

TEST_CASE("every kernel area, through its op, gives the CPU's values and gradients on the test device", "[device]") {
  // Ops the two models above do not reach (softmax family, average pooling, indexing, mixing,
  // convolution with bias and dilation, batch norm in evaluation mode, the conv epilogue),
  // chained into one scalar so that one backward runs every backward kernel.
  const auto x0 = ltl_test::random_tensor<double>({2, 3, 6, 6}, 31), w0 = ltl_test::random_tensor<double>({4, 3, 3, 3}, 32);
  const auto cb0 = ltl_test::random_tensor<double>({4}, 33), bnw0 = ltl_test::random_tensor<double>({4}, 34, 0.5, 1.5);
  const auto bnb0 = ltl_test::random_tensor<double>({4}, 35), mean0 = ltl_test::random_tensor<double>({4}, 36, -0.2, 0.2);
  const auto var0 = ltl_test::random_tensor<double>({4}, 37, 0.5, 2.0), lam0 = ltl_test::random_tensor<double>({2}, 38, 0, 1);
  const auto perm0 = ltl::tensor<std::int64_t>::from({2}, {1, 0}), labels0 = ltl::tensor<std::int64_t>::from({2}, {3, 1});
  const auto idx0 = ltl::tensor<std::int64_t>::from({3}, {2, 0, 2});
  auto run = [&]<class D>(D) {
    using var = ltl::variable<double, D>;
    var x(x0.template to<D>(), true), w(w0.template to<D>(), true), cb(cb0.template to<D>(), true);
    var bnw(bnw0.template to<D>(), true), bnb(bnb0.template to<D>(), true);
    const auto perm = perm0.template to<D>(), labels = labels0.template to<D>(), idx = idx0.template to<D>();
    auto h = ltl::conv2d(x, w, cb, {.padding = 2, .dilation = 2});                                // [2, 4, 6, 6]
    h = ltl::batch_norm2d(h, bnw, bnb, mean0.clone().template to<D>(), var0.clone().template to<D>(),
                          {.training = false});
    h = ltl::avg_pool2d(h, {.kernel = 3, .stride = 2, .padding = 1});                           // [2, 4, 3, 3]
    h = ltl::lerp_mix(h, h, lam0.template to<D>(), perm);
    auto f = ltl::flatten(ltl::index_select(h, 1, idx));                                        // [2, 27]
    auto logits = ltl::global_avg_pool(h);                                                      // [2, 4]
    auto loss = ltl::sum(ltl::gather(ltl::log_softmax(logits, 1), labels)) +
                ltl::sum(ltl::mul(ltl::softmax(logits, 0), ltl::variable<double, D>(ltl::one_hot<double>(labels, 4)))) +
                ltl::sum(ltl::mul(ltl::l2_normalize(f, 1), f));
    loss.backward();
    // The conv epilogue kernel (inference-only, no op generic over the device calls it).
    const auto epi = conv2d_forward_epilogue(x.value(), w.value(), ltl::conv2d_options{.padding = 1},
                                             bnw.value(), bnb.value(), ltl::tensor<double, D>(), true);
    return std::vector<ltl::tensor<double>>{loss.value().template to<cpu_dev>(), x.grad().template to<cpu_dev>(),
                                            w.grad().template to<cpu_dev>(), cb.grad().template to<cpu_dev>(),
                                            bnw.grad().template to<cpu_dev>(), bnb.grad().template to<cpu_dev>(),
                                            epi.template to<cpu_dev>()};
  };
  const auto on_cpu = run(cpu_dev{});
  const auto on_test = run(test_dev{});
  REQUIRE(on_test.size() == on_cpu.size());
  for (std::size_t i = 0; i < on_cpu.size(); ++i) require_bitwise_equal(on_cpu[i], on_test[i], std::to_string(i));
  const auto on_remote = run(remote_dev{});
  REQUIRE(on_remote.size() == on_cpu.size());
  for (std::size_t i = 0; i < on_cpu.size(); ++i) require_bitwise_equal(on_cpu[i], on_remote[i], "remote " + std::to_string(i));
}
