// Tests of train/: checkpoints (checkpoint.hpp) and typed epoch progress (progress.hpp), bit-exact
// resume and an end-to-end run of the trainer (trainer.hpp), the progress bar off a terminal.
#include <catch2/catch.hpp>
#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/long_tail.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/train/trainer.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "support/module_state.hpp"
#include "support/temp_dir.hpp"
#include "support/toy_data.hpp"

using ltl_test::flat_state;
using ltl_test::toy_dataset;

namespace {
std::filesystem::path fresh_dir(const std::string& name) { return ltl_test::scratch_dir("test_" + name); }
}  // namespace

TEST_CASE("checkpoints round-trip and reject corrupt files", "[train][checkpoint]") {
  const auto dir = fresh_dir("ckpt");
  ltl::nn::resnet_cifar<float> a({.depth = 8, .num_classes = 3, .in_channels = 1, .seed = 1});
  ltl::nn::resnet_cifar<float> b({.depth = 8, .num_classes = 3, .in_channels = 1, .seed = 2});
  ltl::optim::sgd<float> opt(a.named_parameters(), {.momentum = 0.9});
  for (auto& [n, p] : a.named_parameters()) p.grad() = ltl::tensor<float>::ones(p.sizes());
  opt.step(0.1);
  ltl::train::train_state st;
  st.epoch = 3;
  st.iteration = 42;
  st.rngs["mix"] = ltl::rng(5).state();
  const auto path = dir / "c.safetensors";
  ltl::train::save_checkpoint(path, static_cast<const ltl::nn::module<float>&>(a), &opt, st);
  REQUIRE_FALSE(flat_state(a) == flat_state(b));
  ltl::optim::sgd<float> opt_b(b.named_parameters(), {.momentum = 0.9});
  const auto back = ltl::train::load_checkpoint(path, static_cast<ltl::nn::module<float>&>(b), &opt_b);
  REQUIRE(flat_state(a) == flat_state(b));
  REQUIRE(back.epoch == 3);
  REQUIRE(back.iteration == 42);
  REQUIRE(back.rngs.at("mix") == ltl::rng(5).state());
  REQUIRE(opt_b.state_dict().size() == opt.state_dict().size());

  // no temporary files are left behind
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  REQUIRE(files == 1);

  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::vector<char>& v) {
    const auto p = dir / "bad.safetensors";
    std::ofstream(p, std::ios::binary).write(v.data(), static_cast<std::streamsize>(v.size()));
    return p;
  };
  auto expect_io = [&](const std::vector<char>& v, const std::string& needle) {
    ltl::nn::resnet_cifar<float> c({.depth = 8, .num_classes = 3, .in_channels = 1, .seed = 7});
    const auto before = flat_state(c);
    try {
      (void)ltl::train::load_checkpoint(write(v), static_cast<ltl::nn::module<float>&>(c), nullptr);
      FAIL("expected an io_error");
    } catch (const ltl::io_error& e) {
      INFO(e.what());
      REQUIRE_THAT(e.what(), Catch::Contains("bad.safetensors") && Catch::Contains(needle));
    }
    REQUIRE(flat_state(c) == before);  // nothing half-loaded
  };
  expect_io(std::vector<char>(bytes.begin(), bytes.begin() + 5), "too short");
  expect_io(std::vector<char>(bytes.begin(), bytes.end() - 100), "truncated");
  auto bad_json = bytes;
  bad_json[8] = 'x';  // the opening brace of the JSON header
  expect_io(bad_json, "JSON");
  auto huge = bytes;
  huge[7] = 0x40;
  expect_io(huge, "header length");
  // another architecture
  ltl::nn::resnet_cifar<float> wide({.depth = 8, .num_classes = 4, .in_channels = 1});
  REQUIRE_THROWS_AS(ltl::train::load_checkpoint(path, static_cast<ltl::nn::module<float>&>(wide), nullptr), ltl::io_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("epoch progress is typed in memory and keeps its historical checkpoint keys", "[train][checkpoint]") {
  // A state as checkpoints have always stored it: the epoch's totals as keys of "extra".
  const auto old = nlohmann::json::parse(R"({"epoch": 1, "iteration": 5, "rngs": {"mix": [1, 2, 3, 4]},
    "extra": {"batch_in_epoch": 3, "epoch_loss_sum": 1.5, "epoch_seen": 24, "epoch_correct": 7,
              "epoch_seconds": 2.25, "fsa": {"h_r": 0.9}}})");
  const auto st = ltl::train::train_state::from_json(old, "old.safetensors");
  REQUIRE(st.progress == ltl::train::epoch_progress{.batch_in_epoch = 3, .loss_sum = 1.5, .seen = 24, .correct = 7,
                                                     .seconds = 2.25});
  REQUIRE(st.extra == nlohmann::json{{"fsa", {{"h_r", 0.9}}}});  // only the caller's own state is left
  REQUIRE(st.to_json() == old);                                   // and it is written back the same way
  // A state without the keys (an epoch boundary of an older writer, or no trainer) starts at zero.
  const auto bare = ltl::train::train_state::from_json(nlohmann::json{{"epoch", 2}, {"iteration", 9}}, "x");
  REQUIRE(bare.progress == ltl::train::epoch_progress{});
}

TEST_CASE("a resumed run reproduces the uninterrupted run bit for bit", "[train][resume]") {
  const auto train = toy_dataset(24, 3, 2);
  const ltl::data::standard_augment aug{.crop = {.pad = 1}, .flip = {.p = 0.5}, .norm = {{0.3}, {0.3}}};
  auto run = [&](const std::filesystem::path& dir, ltl::index_t stop, bool resume) {
    ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 11});
    const auto y = train.labels();
    ltl::train::trainer tr(m, train,
                           {.epochs = 3, .batch_size = 8, .seed = 4, .out_dir = dir, .stop_after_steps = stop,
                            .loader_workers = 2, .progress = false, .print_epochs = false},
                           ltl::sampling::power_sampler(y, 3, 0.5, 4), ltl::losses::compose(ltl::losses::ldam{}, ltl::losses::drw(1)),
                           ltl::mixing::mfw{.alpha = 1.0, .at = "stage1"}, ltl::optim::make_step_recipe(0.05, 6, 1, 2, 3),
                           [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, {{0.3}, {0.3}});
    if (resume) tr.resume(dir / "checkpoint.safetensors");
    tr.fit();
    return std::pair{flat_state(m), tr.state().iteration};
  };
  const auto d1 = fresh_dir("full"), d2 = fresh_dir("part");
  const auto [full, steps] = run(d1, -1, false);
  REQUIRE(steps > 10);
  const auto [partial, at] = run(d2, 8, false);  // "killed" after 8 steps, mid-epoch 1
  REQUIRE(at == 8);
  REQUIRE(partial != full);
  const auto [resumed, end] = run(d2, -1, true);
  REQUIRE(end == steps);
  REQUIRE(resumed == full);
  // The JSON-lines log has one line per completed epoch, and the epoch the resume split reports
  // the whole epoch's loss, accuracy and image count, as the uninterrupted run does.
  auto read_log = [](const std::filesystem::path& f) {
    std::vector<nlohmann::json> out;
    std::ifstream in(f);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) out.push_back(nlohmann::json::parse(l));
    return out;
  };
  const auto log_full = read_log(d1 / "log.jsonl"), log_resumed = read_log(d2 / "log.jsonl");
  REQUIRE(log_full.size() == 3);
  REQUIRE(log_resumed.size() == 3);
  for (std::size_t e = 0; e < 3; ++e) {
    INFO("epoch " << e);
    REQUIRE(log_resumed[e]["epoch"] == log_full[e]["epoch"]);
    REQUIRE(log_resumed[e]["train_loss"].get<double>() == log_full[e]["train_loss"].get<double>());
    REQUIRE(log_resumed[e]["train_acc"].get<double>() == log_full[e]["train_acc"].get<double>());
    const auto images = [](const nlohmann::json& j) {
      return std::llround(j["images_per_sec"].get<double>() * j["seconds"].get<double>());
    };
    REQUIRE(images(log_resumed[e]) == images(log_full[e]));
  }
  std::filesystem::remove_all(d1);
  std::filesystem::remove_all(d2);
}

TEST_CASE("end to end: a small ResNet learns real Fashion-MNIST", "[train][e2e]") {
  namespace ld = ltl::data;
  if (!std::filesystem::exists(ld::fashion_mnist_default_dir() / "train-images-idx3-ubyte.gz")) {
    WARN("SKIPPED: Debian's dataset-fashion-mnist is not installed (the README test command installs it)");
    return;
  }
  const auto full = ld::read_fashion_mnist(ld::split::train);
  const auto test_full = ld::read_fashion_mnist(ld::split::test);
  // 200 training images per class (a balanced subset) and the first 1,000 test images.
  const auto train = ld::make_long_tailed(full, std::vector<ltl::index_t>(10, 200), 0);
  std::vector<ltl::index_t> first(1000);
  std::iota(first.begin(), first.end(), 0);
  const auto test = test_full.subset(first);
  const ld::normalize norm{{0.2860}, {0.3530}};
  const ld::standard_augment aug{.crop = {.pad = 2}, .flip = {.p = 0.5}, .norm = norm};
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 10, .in_channels = 1, .width = 8, .seed = 0});
  const auto y = train.labels();
  ltl::train::trainer tr(m, train,
                         {.epochs = 6, .batch_size = 50, .seed = 0, .progress = false, .print_epochs = false},
                         ltl::sampling::instance_balanced(y, 10, 0), ltl::losses::cross_entropy{}, ltl::mixing::none{},
                         ltl::optim::make_cosine_recipe(0.1, 40, 1, 6),
                         [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, norm);
  tr.set_eval_sets(nullptr, &test);
  const auto s = tr.fit();
  REQUIRE(s.size() == 6);
  const double acc = s.back().test->top1;
  INFO("test accuracy " << acc);
  // Chance is 10 %; six epochs on 2,000 images reach about 75 %.
  REQUIRE(acc > 0.70);
  REQUIRE(s.back().train_loss < s.front().train_loss);
}

TEST_CASE("progress output degrades to plain lines off a terminal", "[train][progress]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  {
    ltl::train::progress_bar bar("epoch 1/2", 20, f);
    for (long i = 1; i <= 20; ++i) bar.update(i, i * 8, 1.0 / static_cast<double>(i), 0.1);
  }
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(f);
  REQUIRE(text.find('\r') == std::string::npos);  // no in-place redraws
  REQUIRE(std::count(text.begin(), text.end(), '\n') == 11);  // the first step, then every 10 %
  REQUIRE_THAT(text, Catch::Contains("epoch 1/2 20/20") && Catch::Contains("img/s") && Catch::Contains("ETA"));
}
