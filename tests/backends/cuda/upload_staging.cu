// backends/cuda/upload.hpp: the staging ring's order of steps on a fake (runs everywhere), and
// on a GPU the value uploads behind host_upload<cuda::device> (the trainer's and the batched
// pass's batches) bit for bit against tensor::to, and training through them against training
// with synchronous copies.
#include "support/cuda_skip.hpp"
#include "support/toy_data.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

using ltl::index_t;
using ltl::shape;
namespace cuda = ltl::cuda;

namespace {

/// Upload steps recorded as text ("wait done0", "copy 12", …); buffers are real host memory,
/// so that the bytes staged can be checked too.
struct fake_upload_ops {
  using event = int;
  std::vector<std::string>* log = nullptr;
  int events = 0;
  enum class failing { none, record_copied, compute_waits } fail = failing::none;  // the next such step throws
  void say(const std::string& s) const { log->push_back(s); }
  void* host_alloc(std::size_t n) {
    say("host_alloc " + std::to_string(n));
    return std::malloc(n);
  }
  void host_free(void* p) noexcept {
    if (p) {
      say("host_free");
      std::free(p);
    }
  }
  void* device_alloc(std::size_t n) {
    say("device_alloc " + std::to_string(n));
    return std::malloc(n);
  }
  void device_free(void* p) noexcept {
    if (p) {
      say("device_free");
      std::free(p);
    }
  }
  event make_event() { return events++; }
  void destroy_event(event) noexcept {}
  void host_waits(event e) { say("host_waits " + std::to_string(e)); }
  void copy_to_device(void* dst, const void* src, std::size_t n) {
    std::memcpy(dst, src, n);
    say("copy " + std::to_string(n));
  }
  void fail_if(failing step) {
    if (fail != step) return;
    fail = failing::none;
    throw std::runtime_error("injected CUDA failure");
  }
  void record_on_copy_stream(event e) {
    fail_if(failing::record_copied);
    say("copied " + std::to_string(e));
  }
  void compute_waits(event e) {
    fail_if(failing::compute_waits);
    say("compute_waits " + std::to_string(e));
  }
  void record_on_compute_stream(event e) { say("done " + std::to_string(e)); }
  void drain_copies() noexcept { say("drain"); }
};

using fake_ring = cuda::detail::staging_ring<fake_upload_ops>;

}  // namespace

TEST_CASE("the staging ring copies, orders the streams and reuses a slot only after its consumer",
          "[cuda-host][upload]") {
  std::vector<std::string> log;
  std::vector<std::vector<unsigned char>> consumed;
  {
    fake_ring ring(2, fake_upload_ops{.log = &log});
    auto upload = [&](std::vector<unsigned char> bytes) {
      ring.stage(bytes.data(), bytes.size(), [&](const void* staged) {
        log.push_back("consume");
        const auto* p = static_cast<const unsigned char*>(staged);
        consumed.emplace_back(p, p + bytes.size());
      });
    };
    upload({1, 2, 3});        // slot 0 (events 0 copied, 1 done)
    upload({4, 5, 6, 7});     // slot 1 (events 2, 3)
    upload({8, 9});           // slot 0 again: fits its 3 bytes
    upload({10, 11, 12, 13}); // slot 1 again
    upload({14, 15, 16, 17}); // slot 0 grows to 4 bytes
    REQUIRE(ring.count() == 5);
    REQUIRE(ring.capacity(0) == 4);
    REQUIRE(ring.capacity(1) == 4);
    const std::vector<std::string> first{"host_alloc 3", "device_alloc 3", "copy 3", "copied 0", "compute_waits 0",
                                         "consume", "done 1"};
    REQUIRE(std::vector<std::string>(log.begin(), log.begin() + 7) == first);
    const std::vector<std::string> second{"host_alloc 4", "device_alloc 4", "copy 4", "copied 2", "compute_waits 2",
                                          "consume", "done 3"};
    REQUIRE(std::vector<std::string>(log.begin() + 7, log.begin() + 14) == second);
    // A slot's reuse waits for its previous consumer before its pinned buffer is written.
    const std::vector<std::string> third{"host_waits 1", "copy 2", "copied 0", "compute_waits 0", "consume", "done 1"};
    REQUIRE(std::vector<std::string>(log.begin() + 14, log.begin() + 20) == third);
    const std::vector<std::string> fourth{"host_waits 3", "copy 4", "copied 2", "compute_waits 2", "consume",
                                          "done 3"};
    REQUIRE(std::vector<std::string>(log.begin() + 20, log.begin() + 26) == fourth);
    // Growing frees the old buffers only after the wait.
    const std::vector<std::string> fifth{"host_waits 1", "host_free",       "device_free", "host_alloc 4",
                                         "device_alloc 4", "copy 4",       "copied 0",    "compute_waits 0",
                                         "consume",       "done 1"};
    REQUIRE(std::vector<std::string>(log.begin() + 26, log.end()) == fifth);
    log.clear();
  }
  // The ring's end waits for both slots' consumers, then frees their buffers.
  REQUIRE(log == std::vector<std::string>{"host_waits 1", "host_free", "device_free", "host_waits 3", "host_free",
                                          "device_free"});
  REQUIRE(consumed == std::vector<std::vector<unsigned char>>{
                          {1, 2, 3}, {4, 5, 6, 7}, {8, 9}, {10, 11, 12, 13}, {14, 15, 16, 17}});
}

TEST_CASE("a consumer that throws still closes its slot, so the slot's next use waits for the copy",
          "[cuda-host][upload]") {
  std::vector<std::string> log;
  fake_ring ring(1, fake_upload_ops{.log = &log});
  const unsigned char b[2] = {1, 2};
  REQUIRE_THROWS_AS(ring.stage(b, 2, [](const void*) { throw std::runtime_error("launch failed"); }),
                    std::runtime_error);
  REQUIRE(log.back() == "done 1");
  ring.stage(b, 2, [](const void*) {});
  REQUIRE(log[static_cast<std::size_t>(std::find(log.begin(), log.end(), "done 1") - log.begin()) + 1] ==
          "host_waits 1");
}

TEST_CASE("a failure between the copy and the compute stream's wait drains the copy before it propagates",
          "[cuda-host][upload]") {
  using failing = fake_upload_ops::failing;
  for (const failing f : {failing::record_copied, failing::compute_waits}) {
    INFO("failing step " << static_cast<int>(f));
    std::vector<std::string> log;
    fake_ring ring(1, fake_upload_ops{.log = &log, .fail = f});
    const unsigned char b[2] = {1, 2};
    bool consumed = false;
    REQUIRE_THROWS_AS(ring.stage(b, 2, [&](const void*) { consumed = true; }), std::runtime_error);
    REQUIRE_FALSE(consumed);
    // The copy was queued; `done` never covered it, so the host waited for the copy stream.
    REQUIRE(log.back() == "drain");
    REQUIRE(std::find(log.begin(), log.end(), "copy 2") < log.end() - 1);
    REQUIRE(std::find(log.begin(), log.end(), "done 1") == log.end());
    // The slot works again: nothing of the failed upload is pending, so its next use does not
    // wait for an event that was never recorded.
    log.clear();
    ring.stage(b, 2, [&](const void*) { consumed = true; });
    REQUIRE(consumed);
    REQUIRE(log == std::vector<std::string>{"copy 2", "copied 0", "compute_waits 0", "done 1"});
  }
}

TEST_CASE("host_upload on the CPU is tensor::to: the same values, the tensor itself when contiguous",
          "[cuda-host][upload]") {
  const auto x = ltl::tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6});
  const auto same = ltl::upload_batch<ltl::cpu::device>(x);
  REQUIRE(same.data() == x.data());
  const auto t = x.transpose(0, 1);
  const auto moved = ltl::upload_batch<ltl::cpu::device>(t);
  REQUIRE(moved.is_contiguous());
  REQUIRE(moved.to_vector() == t.contiguous().to_vector());
}

TEST_CASE("value uploads through the staging ring equal tensor::to bit for bit", "[cuda][upload]") {
  LTL_REQUIRE_GPU();
  cuda::value_uploader up(2);
  ltl::rng g(7);
  for (int k = 0; k < 5; ++k) {
    INFO("upload " << k);
    ltl::tensor<float> x(shape{3 + k, 2, 5, 4});
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(g.uniform(-3, 3));
    x.data()[0] = -0.0f;
    const auto via_ring = up.upload(x);
    const auto direct = x.to<cuda::device>();
    const auto a = via_ring.to_vector(), b = direct.to_vector();
    REQUIRE(a.size() == b.size());
    REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    std::vector<std::int64_t> yv;
    for (int i = 0; i < 3 + k; ++i) yv.push_back((i * 7 + k) % 5);
    const auto y = ltl::tensor<std::int64_t>::from(shape{3 + k}, yv);
    REQUIRE(ltl::upload_batch<cuda::device>(y).to_vector() == yv);
  }
  // A strided host tensor arrives contiguous with the strided tensor's values.
  const auto m = ltl::tensor<float>::from({2, 3}, {1, 2, 3, 4, 5, 6}).transpose(0, 1);
  REQUIRE(ltl::upload_batch<cuda::device>(m).to_vector() == m.contiguous().to_vector());
  REQUIRE(up.uploads() == 5);
}

TEST_CASE("training through the staging ring equals training with synchronous copies bit for bit",
          "[cuda][upload][train]") {
  LTL_REQUIRE_GPU();
  using gpu = cuda::device;
  if constexpr (!ltl::compute_device<gpu>) {
    LTL_SKIP_INCOMPLETE_BACKEND(gpu);
  } else {
    const auto train = ltl_test::toy_dataset(24, 4, 2);
    const ltl_test::settings_guard restore;
    auto run = [&](bool staged) {
      cuda::context::current().settings().staged_uploads = staged;
      ltl::nn::resnet_cifar<float, gpu> m({.depth = 8, .num_classes = 4, .in_channels = 1, .width = 8, .seed = 5});
      const ltl::data::normalize norm{{0.3}, {0.3}};
      const ltl::data::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.5}, .norm = norm};
      const auto labels = train.labels();
      const auto iters = static_cast<index_t>((train.size() + 15) / 16);
      ltl::train::trainer tr(m, train, {.epochs = 2, .batch_size = 16, .seed = 4, .progress = false, .print_epochs = false},
                             ltl::sampling::instance_balanced(labels, static_cast<index_t>(train.num_classes()), 4),
                             ltl::losses::cross_entropy{}, ltl::mixing::none{},
                             ltl::optim::make_step_recipe(0.05, iters, 1, 2, 3),
                             [&](ltl::tensor<float>& x, ltl::rng& r) { aug(x, r); }, norm);
      tr.set_eval_sets(nullptr, &train);  // evaluation batches take the same path
      const auto s = tr.fit();
      std::vector<float> state;
      for (auto& [name, t] : m.state_dict()) {
        const auto v = t.to_vector();
        state.insert(state.end(), v.begin(), v.end());
      }
      REQUIRE(s.size() == 2);
      REQUIRE(s.back().test.has_value());
      state.push_back(static_cast<float>(s.back().train_loss));
      state.push_back(static_cast<float>(s.back().test->top1));
      return state;
    };
    const auto synchronous = run(false);
    const auto staged = run(true);
    REQUIRE(staged.size() == synchronous.size());
    REQUIRE(std::memcmp(staged.data(), synchronous.data(), staged.size() * sizeof(float)) == 0);
  }
}
