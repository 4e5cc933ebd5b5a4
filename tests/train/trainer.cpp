#include <catch2/catch.hpp>
#include <ltlearn/nn/linear.hpp>
#include <ltlearn/optim/schedule.hpp>
#include <ltlearn/optim/sgd.hpp>

using V = ltl::variable<double>;
using TD = ltl::tensor<double>;

TEST_CASE("sgd matches hand-computed PyTorch updates", "[optim]") {
  // p = 1, g = 0.5 every step, lr 0.1, momentum 0.9, wd 0.01.
  V p(TD::from({1}, {1.0}), true);
  ltl::optim::sgd<double> opt({{"p", p}}, {.momentum = 0.9, .weight_decay = 0.01});
  p.grad() = TD::from({1}, {0.5});
  opt.step(0.1);
  // d = 0.5 + 0.01·1 = 0.51; b = 0.51; p = 1 − 0.051 = 0.949
  REQUIRE(p.value().item() == Approx(0.949).epsilon(1e-12));
  opt.step(0.1);
  // d = 0.5 + 0.00949 = 0.50949; b = 0.9·0.51 + 0.50949 = 0.96849; p = 0.949 − 0.096849
  REQUIRE(p.value().item() == Approx(0.949 - 0.096849).epsilon(1e-12));

  V q(TD::from({1}, {1.0}), true);
  ltl::optim::sgd<double> nest({{"q", q}}, {.momentum = 0.9, .nesterov = true});
  q.grad() = TD::from({1}, {1.0});
  nest.step(0.1);  // b = 1; d = 1 + 0.9 = 1.9; q = 1 − 0.19
  REQUIRE(q.value().item() == Approx(0.81).epsilon(1e-12));
  nest.step(0.1);  // b = 0.9 + 1 = 1.9; d = 1 + 1.71 = 2.71
  REQUIRE(q.value().item() == Approx(0.81 - 0.271).epsilon(1e-12));

  auto st = nest.state_dict();
  REQUIRE(st.at("q").item() == Approx(1.9));
  REQUIRE_THROWS_AS(nest.load_state_dict({{"nope", TD::zeros({1})}}), ltl::value_error);
  REQUIRE_THROWS_AS((ltl::optim::sgd<double>({{"q", q}}, {.momentum = 0, .nesterov = true})), ltl::value_error);
}

TEST_CASE("schedules give the recipe's rates at chosen iterations", "[optim]") {
  // SPEC §5: 100 iterations per epoch, warm-up over epoch 0 to 0.1, ×0.1 from 16, ×0.01 from 18.
  auto s = ltl::optim::make_step_recipe(0.1, 100, 1, 16, 18);
  REQUIRE(s(0) == Approx(0.001));
  REQUIRE(s(49) == Approx(0.05));
  REQUIRE(s(99) == Approx(0.1));
  REQUIRE(s(100) == Approx(0.1));
  REQUIRE(s(1599) == Approx(0.1));
  REQUIRE(s(1600) == Approx(0.01));
  REQUIRE(s(1799) == Approx(0.01));
  REQUIRE(s(1800) == Approx(0.001));
  ltl::optim::multistep_lr m{.lr = 0.2, .milestones = {30, 60, 80}, .gamma = 0.1};
  REQUIRE(m(29) == Approx(0.2));
  REQUIRE(m(30) == Approx(0.02));
  REQUIRE(m(85) == Approx(0.0002));
  auto c = ltl::optim::make_cosine_recipe(0.1, 10, 5, 300);
  REQUIRE(c(49) == Approx(0.1));
  REQUIRE(c(50) == Approx(0.1));
  REQUIRE(c(50 + 1475) == Approx(0.05));
  REQUIRE(c(3000) == Approx(0.0).margin(1e-12));
  static_assert(ltl::optim::lr_schedule<decltype(s)>);
}

TEST_CASE("modules register parameters and round-trip state", "[nn]") {
  ltl::rng g(0);
  ltl::nn::linear<double> fc({.in_features = 4, .out_features = 3}, g);
  REQUIRE(fc.num_parameters() == 15);
  auto named = fc.named_parameters();
  REQUIRE(named.size() == 2);
  REQUIRE(named[0].first == "weight");
  ltl::rng g2(1);
  ltl::nn::linear<double> other({.in_features = 4, .out_features = 3}, g2);
  REQUIRE(other.weight.value().to_vector() != fc.weight.value().to_vector());
  other.load_state_dict(fc.state_dict());
  REQUIRE(other.weight.value().to_vector() == fc.weight.value().to_vector());
  ltl::nn::linear<double> wrong({.in_features = 5, .out_features = 3}, g2);
  REQUIRE_THROWS_AS(wrong.load_state_dict(fc.state_dict()), ltl::shape_error);
  static_assert(ltl::nn::module_like<ltl::nn::linear<double>>);
}

#include <ltlearn/nn/models/resnet_cifar.hpp>

TEST_CASE("resnet_cifar: parameter counts, points and a training-mode backward", "[nn][models]") {
  ltl::nn::resnet_cifar<float> r32({.depth = 32, .num_classes = 10});
  REQUIRE(r32.num_parameters() == 464154);  // 0.46 M as in He et al. / the LDAM code base
  ltl::nn::resnet_cifar<float> r20({.depth = 20, .num_classes = 10});
  REQUIRE(r20.num_parameters() == 269722);
  ltl::nn::resnet_cifar<float> r110({.depth = 110, .num_classes = 10});
  REQUIRE(r110.num_parameters() == 1727962);
  REQUIRE(r32.points() == std::vector<std::string>{"stem", "stage1", "stage2", "stage3", "pool", "fc"});
  REQUIRE(r32.group_point(2) == r32.point("stage1"));
  REQUIRE_THROWS_AS(r32.point("layer9"), ltl::value_error);
  REQUIRE_THROWS_AS(ltl::nn::resnet_cifar<float>({.depth = 33}), ltl::value_error);

  ltl::nn::resnet_cifar<float> m({.depth = 20, .num_classes = 3, .in_channels = 1, .seed = 3});
  ltl::rng g(5);
  ltl::tensor<float> x(ltl::shape{4, 1, 12, 12});
  for (ltl::index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(g.normal());
  ltl::variable<float> in(x);
  auto h = m.run(in, -1, m.point("stage2"));
  REQUIRE(h.sizes() == ltl::shape{4, 32, 6, 6});
  auto z = m.run(h, m.point("stage2"), m.last_point());
  REQUIRE(z.sizes() == ltl::shape{4, 3});
  auto f = m.features(in);
  REQUIRE(f.sizes() == ltl::shape{4, 64});
  auto loss = ltl::sum(z * z);
  loss.backward();
  for (auto& [name, p] : m.named_parameters()) {
    INFO(name);
    REQUIRE(p.grad().defined());
  }
  // running statistics moved in training mode, not in eval mode
  auto bn_mean = m.state_dict().at("stem.1.running_mean").clone();
  REQUIRE(bn_mean.to_vector() != std::vector<float>(16, 0.0f));
  m.eval();
  const auto z_eval = m.forward(in).value();
  REQUIRE(m.state_dict().at("stem.1.running_mean").to_vector() == bn_mean.to_vector());
  // Inference (eval + no_grad) folds batch norm into the convolutions' epilogues: the same
  // logits as eval mode with gradients enabled (separate batch-norm passes), to float rounding.
  // The running statistics moved in the steps above; make them far from (0, 1) to matter.
  for (auto& [name, t] : m.state_dict()) {
    if (name.find("running_var") != std::string::npos) t.fill_(2.5f);
    if (name.find("running_mean") != std::string::npos) t.fill_(-0.3f);
  }
  const auto z_grad = m.forward(in).value();
  ltl::no_grad_guard ng;
  const auto z_inf = m.forward(in).value();
  const auto a = z_grad.to_vector(), b = z_inf.to_vector();
  REQUIRE(a != z_eval.to_vector());
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == Approx(a[i]).epsilon(1e-4).margin(1e-5));
}

#include <ltlearn/data/loader.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/train/trainer.hpp>

#include <filesystem>
#include <fstream>

#include "support/toy_data.hpp"

using ltl_test::toy_dataset;

namespace {
std::filesystem::path fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("ltl_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}
std::vector<float> flat_params(const ltl::nn::module<float>& m) {
  std::vector<float> v;
  for (auto& [n, t] : m.state_dict()) {
    auto x = t.to_vector();
    v.insert(v.end(), x.begin(), x.end());
  }
  return v;
}
}  // namespace

TEST_CASE("loader batches do not depend on worker count or timing", "[data][loader]") {
  const auto ds = toy_dataset(40, 4, 1);
  std::vector<ltl::index_t> order(ds.size());
  std::iota(order.begin(), order.end(), 0);
  ltl::rng(3).shuffle(std::span<ltl::index_t>(order));
  const ltl::data::standard_augment aug{.crop = {.pad = 2}, .flip = {.p = 0.5}, .norm = {{0.5}, {0.25}}};
  auto collect = [&](int workers, ltl::index_t start) {
    ltl::data::loader<float, ltl::data::image_dataset> l(ds, {.batch_size = 7, .workers = workers, .prefetch = 3, .seed = 9},
                                                        [&](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); });
    std::vector<float> all;
    auto run = l.run(2, order, start);
    while (auto b = run->next()) {
      auto v = b->images.to_vector();
      all.insert(all.end(), v.begin(), v.end());
      for (ltl::index_t i = 0; i < b->labels.numel(); ++i) all.push_back(static_cast<float>(b->labels.data()[i]));
    }
    return all;
  };
  const auto ref = collect(0, 0);
  REQUIRE(ref.size() == static_cast<std::size_t>(ds.size()) * 65);
  REQUIRE(collect(1, 0) == ref);
  REQUIRE(collect(3, 0) == ref);
  // starting at batch 2 gives the tail of the same stream
  const auto tail = collect(2, 2);
  REQUIRE(std::equal(tail.begin(), tail.end(), ref.end() - static_cast<std::ptrdiff_t>(tail.size())));
  REQUIRE(tail.size() == ref.size() - 2 * 7 * 65);
}

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
  REQUIRE_FALSE(flat_params(a) == flat_params(b));
  ltl::optim::sgd<float> opt_b(b.named_parameters(), {.momentum = 0.9});
  const auto back = ltl::train::load_checkpoint(path, static_cast<ltl::nn::module<float>&>(b), &opt_b);
  REQUIRE(flat_params(a) == flat_params(b));
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
    const auto before = flat_params(c);
    try {
      (void)ltl::train::load_checkpoint(write(v), static_cast<ltl::nn::module<float>&>(c), nullptr);
      FAIL("expected an io_error");
    } catch (const ltl::io_error& e) {
      INFO(e.what());
      REQUIRE_THAT(e.what(), Catch::Contains("bad.safetensors") && Catch::Contains(needle));
    }
    REQUIRE(flat_params(c) == before);  // nothing half-loaded
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
    return std::pair{flat_params(m), tr.state().iteration};
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

#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/long_tail.hpp>

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
