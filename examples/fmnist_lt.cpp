// fmnist_lt: the main job. ResNet-32 on long-tailed Fashion-MNIST (SPEC §5), with any sampler,
// loss and feature-mixing policy chosen by flags. Prints per-class and shot-group accuracy.
//
//   fmnist_lt                                  # ERM, exponential profile rho = 100
//   fmnist_lt --loss cdt --gamma 0.2           # class-dependent temperatures
//   fmnist_lt --loss ldam --drw-epoch 16       # LDAM-DRW
//   fmnist_lt --mix mfw --alpha 1 --profile step --beta 0.01
#include "common.hpp"

#include <ltlearn/data/idx.hpp>
#include <ltlearn/data/long_tail.hpp>
#include <ltlearn/data/transforms.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/train/trainer.hpp>

#include <omp.h>

#include <fstream>

using ltl::index_t;

int main(int argc, char** argv) {
  CLI::App app{"ResNet on long-tailed Fashion-MNIST (ltlearn's main job)"};
  std::string data_dir = ltl::data::fashion_mnist_default_dir().string(), profile = "exp", out = "runs/fmnist_lt",
              resume;
  double rho = 100, lr = 0.1;
  index_t epochs = 20, batch = 128, held_out = 0, train_limit = 0;
  int depth = 32, threads = 2, workers = 1;
  std::uint64_t seed = 0;
  bool quiet = false;
  example::policy_flags flags;
  app.add_option("--data-dir", data_dir, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--profile", profile, "exp | step")->capture_default_str();
  app.add_option("--rho", rho, "imbalance ratio N_max / N_min")->capture_default_str();
  app.add_option("--epochs", epochs)->capture_default_str();
  app.add_option("--batch-size", batch)->capture_default_str();
  app.add_option("--lr", lr, "peak learning rate")->capture_default_str();
  app.add_option("--depth", depth, "ResNet depth 6n+2 (20, 32, 44, 56, 110)")->capture_default_str();
  app.add_option("--seed", seed)->capture_default_str();
  app.add_option("--threads", threads, "OpenMP threads of the training step")->capture_default_str();
  app.add_option("--workers", workers, "data loader threads")->capture_default_str();
  app.add_option("--held-out", held_out, "K images per class held out of training for tuning (0: none)")->capture_default_str();
  app.add_option("--train-limit", train_limit, "use only the first N training images of the long-tailed set (smoke tests)");
  app.add_option("--out", out, "output directory (checkpoint, log.jsonl, results.json)")->capture_default_str();
  app.add_option("--resume", resume, "checkpoint to resume from");
  app.add_flag("--quiet", quiet, "no progress bar");
  flags.add_to(app);
  CLI11_PARSE(app, argc, argv);

  try {
    omp_set_num_threads(threads);
    namespace ld = ltl::data;
    const auto full = ld::read_fashion_mnist(ld::split::train, data_dir);
    const auto test = ld::read_fashion_mnist(ld::split::test, data_dir);
    const auto counts = profile == "step" ? ld::step_profile(6000, 10, rho) : ld::exponential_profile(6000, 10, rho);
    auto lt = ld::make_long_tailed(full, counts, seed);
    ld::image_dataset train = lt, val;
    if (held_out > 0) {
      auto split = ld::held_out_split(lt, held_out, seed + 1);
      train = std::move(split.train);
      val = std::move(split.val);
    }
    if (train_limit > 0 && train_limit < static_cast<index_t>(train.size())) {
      // Evenly spaced picks from the class-major set keep the profile's proportions.
      std::vector<index_t> pick(static_cast<std::size_t>(train_limit));
      for (std::size_t i = 0; i < pick.size(); ++i)
        pick[i] = static_cast<index_t>(i) * static_cast<index_t>(train.size()) / train_limit;
      train = train.subset(pick);
    }
    fmt::print("train {}  test {}{}\n", train.summary(), test.summary(), held_out > 0 ? "  val " + val.summary() : "");

    ltl::nn::resnet_cifar<float> model({.depth = depth, .num_classes = 10, .in_channels = 1,
                                        .normed_classifier = flags.loss == "ldam", .seed = seed});
    const ld::normalize norm{{0.2860}, {0.3530}};
    const ld::standard_augment aug{.crop = {.pad = 4}, .flip = {.p = 0.5}, .norm = norm};
    const auto labels = train.labels();
    auto sampler = flags.make_sampler(labels, 10, epochs, seed);
    const index_t iters = (static_cast<index_t>(sampler.epoch_indices(0).size()) + batch - 1) / batch;
    ltl::train::trainer tr(model, train,
                           {.epochs = epochs, .batch_size = batch, .seed = seed, .out_dir = out,
                            .loader_workers = workers, .progress = !quiet},
                           sampler, flags.make_loss(), flags.make_mixing(), flags.make_schedule(lr, iters, 1, epochs),
                           [aug](ltl::tensor<float>& x, ltl::rng& g) { aug(x, g); }, norm);
    tr.set_eval_sets(held_out > 0 ? &val : nullptr, &test);
    if (!resume.empty()) tr.resume(resume);
    const auto summaries = tr.fit();
    if (summaries.empty() || !summaries.back().test) return 0;
    const auto& last = summaries.back();
    example::print_report("test (balanced, 10,000 images)", *last.test, tr.class_counts());
    double secs = 0;
    for (auto& s : summaries) secs += s.seconds;
    fmt::print("  mean training time per epoch: {:.1f} s ({} threads)\n", secs / static_cast<double>(summaries.size()), threads);
    nlohmann::json res;
    res["test"] = last.test->to_json();
    res["seconds_per_epoch"] = secs / static_cast<double>(summaries.size());
    res["threads"] = threads;
    res["args"] = app.config_to_str(true, false);
    if (last.val) res["val"] = last.val->to_json();
    std::ofstream(std::filesystem::path(out) / "results.json") << res.dump(2) << '\n';
  } catch (const ltl::error& e) {
    fmt::print(stderr, "fmnist_lt: {}\n", e.what());
    return 1;
  }
  return 0;
}
