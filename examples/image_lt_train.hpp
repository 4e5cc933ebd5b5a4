#pragma once
// The training run of imagenet_lt / inat_lt: an ImageNet ResNet (optionally initialised from
// torchvision weights) trained on an encoded long-tailed set through data::image_pipeline
// (RandomResizedCrop + flip [+ ColorJitter], per-sample random streams), with the policies the
// flags choose, evaluated with Resize + CenterCrop, checkpointed and resumable bit for bit.
//
// The loop is the trainer's (train/trainer.hpp) over a batch source instead of an in-memory
// dataset: the same sampler order, schedule position, mixing generator and epoch totals are
// saved, so a resumed run continues exactly where it stopped.

#include "image_lt_flags.hpp"
#include "report.hpp"

#include <ltlearn/eval/scope.hpp>
#include <ltlearn/losses/fused_loss.hpp>
#include <ltlearn/metrics/report.hpp>
#include <ltlearn/mixing/mixed_loss.hpp>
#include <ltlearn/nn/models/torchvision.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/progress.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <deque>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

namespace example {

namespace ld = ltl::data;
using image_loader = ld::loader<float, ld::image_pipeline<float>>;

/// Evaluates `model` on every image of `src` in order (eval mode, no graph).
inline ltl::metrics::eval_report evaluate_images(ltl::nn::resnet<float>& model, const ld::image_pipeline<float>& src,
                                                 const std::vector<double>& counts, const image_run_flags& f) {
  ltl::eval::eval_scope scope(model);
  ltl::metrics::classification_meter meter(src.num_classes(), std::min<index_t>(5, src.num_classes()));
  image_loader loader(src, {.batch_size = f.eval_batch, .workers = f.workers, .seed = f.seed});
  std::vector<index_t> order(static_cast<std::size_t>(src.size()));
  std::iota(order.begin(), order.end(), index_t{0});
  double loss_sum = 0;
  auto run = loader.run(0, std::move(order));
  while (auto b = run->next()) {
    const auto z = model.forward(ltl::variable<float>(b->images));
    loss_sum += static_cast<double>(ltl::cross_entropy(z, b->labels).value().item()) * double(b->labels.numel());
    meter.add(z.value(), b->labels);
  }
  return ltl::metrics::eval_report::from(meter, loss_sum, counts);
}

/// Trains on `train`, evaluates on `evals`, writes <out>/results.json (plus `extra_results`).
inline int train_image_lt(const image_run_flags& f, const ld::encoded_dataset& train, const std::vector<eval_set>& evals,
                          const std::vector<double>& mean, const std::vector<double>& stddev,
                          const std::string& args_text, const nlohmann::json& extra_results = {}) {
  namespace fs = std::filesystem;
  const index_t C = train.num_classes();
  fmt::print("train {}\n", train.summary());
  for (auto& e : evals) fmt::print("{:5} {}\n", e.name, e.data.summary());
  auto mo = ltl::nn::torchvision_resnet_options(f.arch, C, f.seed);
  mo.normed_classifier = f.policy.loss == "ldam";
  ltl::nn::resnet<float> model(mo);
  if (!f.init.empty()) {
    const auto rep = ltl::nn::load_torchvision(f.init, model, {.classifier = ltl::nn::classifier_import::if_shape_matches});
    fmt::print("initialised from {}: {} entries{}\n", f.init, rep.loaded,
               rep.classifier_loaded ? "" : " (classifier kept: the file's has another class count)");
  }
  const auto log_bad = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  const auto [train_transform, eval_transform] = f.transforms(mean, stddev);
  const ld::image_pipeline<float> train_src(
      train, {.transform = train_transform, .on_bad_image = f.bad_images(), .log = log_bad});
  std::deque<ld::image_pipeline<float>> eval_srcs;  // a pipeline holds a mutex: not movable
  for (auto& e : evals)
    eval_srcs.emplace_back(e.data, ld::pipeline_options{.transform = eval_transform, .on_bad_image = f.bad_images(),
                                                        .log = log_bad});

  auto sampler = f.policy.make_sampler(train.labels(), C, f.epochs, f.seed);
  auto loss = f.policy.make_loss();
  auto mixer = f.policy.make_mixing();
  const index_t iters = (static_cast<index_t>(sampler.epoch_indices(0).size()) + f.batch - 1) / f.batch;
  auto schedule = f.make_schedule(iters);
  ltl::optim::sgd<float> sgd(model.named_parameters(), {.momentum = 0.9, .weight_decay = f.weight_decay});
  image_loader loader(train_src, {.batch_size = f.batch, .workers = f.workers, .seed = f.seed});
  ltl::rng mix_rng(f.seed, 0x6d6978ull);
  std::vector<double> counts;
  for (index_t c : train.class_counts()) counts.push_back(static_cast<double>(c));

  const fs::path out(f.out), ckpt = out / "checkpoint.safetensors";
  fs::create_directories(out);
  ltl::train::train_state st;
  if (!f.resume.empty()) {
    st = ltl::train::load_checkpoint(f.resume, static_cast<ltl::nn::module<float>&>(model), &sgd);
    const auto h = st.extra.find("train_hash");
    LTL_CHECK(h == st.extra.end() || *h == train.hash_hex(), value_error,
              "{}: the checkpoint was trained on another training set (hash {}, now {}); same lists, --subset and "
              "--subset-images are needed to resume", f.resume, h->dump(), train.hash_hex());
    if (auto it = st.rngs.find("mix"); it != st.rngs.end()) mix_rng.set_state(it->second);
    fmt::print("resumed from {} at epoch {}, step {}\n", f.resume, st.epoch, st.iteration);
  }
  const auto save = [&] {
    st.rngs["mix"] = mix_rng.state();
    st.extra["train_hash"] = train.hash_hex();
    ltl::train::save_checkpoint(ckpt, static_cast<const ltl::nn::module<float>&>(model), &sgd, st);
  };

  std::vector<std::pair<std::string, ltl::metrics::eval_report>> last_reports;
  double seconds = 0;
  index_t epochs_run = 0;
  while (st.epoch < f.epochs) {
    const index_t epoch = st.epoch;
    model.train();
    auto& pr = st.progress;
    auto run = loader.run(epoch, sampler.epoch_indices(epoch), pr.batch_in_epoch);
    const auto terms = ltl::losses::make_terms(loss, counts, epoch);
    const bool mixing_on = mixer.active(epoch);
    const int point = mixing_on && mixer.point() != "input" ? model.point(mixer.point()) : -1;
    ltl::train::progress_bar bar(fmt::format("epoch {}/{}", epoch + 1, f.epochs), static_cast<long>(run->size()),
                                 stderr, !f.quiet);
    const double seconds_before = pr.seconds;
    double lr = 0;
    while (auto b = run->next()) {
      lr = schedule(st.iteration);
      const ltl::variable<float> x(b->images);
      ltl::mixing::mix_result<float, ltl::cpu::device> m;
      ltl::variable<float> z;
      if (mixing_on) {
        m = mixer.mix(model.run(x, -1, point), b->labels, counts, mix_rng);
        z = model.run(m.h, point, model.last_point());
      } else {
        z = model.forward(x);
      }
      const auto l = ltl::mixing::mixed_loss(z, b->labels, m, terms);
      const double lv = static_cast<double>(l.value().item());
      LTL_CHECK(std::isfinite(lv), value_error, "the loss is {} at epoch {}, step {} (lr {})", lv, epoch,
                st.iteration, lr);
      sgd.zero_grad();
      l.backward();
      sgd.step(lr);
      ++st.iteration;
      pr.batch_in_epoch = run->position();
      pr.loss_sum += lv * double(b->labels.numel());
      pr.seen += b->labels.numel();
      pr.correct += ltl::metrics::count_correct(z.value(), b->labels);
      pr.seconds = seconds_before + bar.elapsed();
      bar.update(static_cast<long>(pr.batch_in_epoch), static_cast<long>(pr.seen),
                 pr.loss_sum / double(pr.seen), lr);
      if (f.checkpoint_every > 0 && st.iteration % f.checkpoint_every == 0) save();
    }
    nlohmann::json line{{"epoch", epoch},
                        {"lr", lr},
                        {"train_loss", pr.seen ? pr.loss_sum / double(pr.seen) : 0.0},
                        {"train_acc", pr.seen ? double(pr.correct) / double(pr.seen) : 0.0},
                        {"seconds", pr.seconds}};
    std::string text = fmt::format("epoch {:>3}/{}  loss {:.4f}  train acc {:.2f}%  lr {:.4g}  {:.1f}s", epoch + 1,
                                   f.epochs, line["train_loss"].get<double>(), 100 * line["train_acc"].get<double>(),
                                   lr, pr.seconds);
    seconds += pr.seconds;
    ++epochs_run;
    if ((epoch + 1) % f.test_every == 0 || epoch + 1 == f.epochs) {
      last_reports.clear();
      for (std::size_t k = 0; k < evals.size(); ++k) {
        auto r = evaluate_images(model, eval_srcs[k], counts, f);
        line[evals[k].name] = r.to_json();
        text += fmt::format("  {} {:.2f}%", evals[k].name, 100 * r.top1);
        last_reports.emplace_back(evals[k].name, std::move(r));
      }
    }
    st.epoch = epoch + 1;
    st.progress = {};
    save();
    std::ofstream(out / "log.jsonl", std::ios::app) << line.dump() << '\n';
    fmt::print("{}\n", text);
    std::fflush(stdout);
  }

  nlohmann::json res = extra_results.is_object() ? extra_results : nlohmann::json::object();
  for (auto& [name, r] : last_reports) {
    if (C <= 100) print_report(name, r, counts);
    else fmt::print("\n{}: top-1 {:.2f}%  top-5 {:.2f}%  many {}  medium {}  few {}\n", name, 100 * r.top1,
                    100 * r.top5, ltl::metrics::format_accuracy(r.shots.many),
                    ltl::metrics::format_accuracy(r.shots.medium), ltl::metrics::format_accuracy(r.shots.few));
    res[name] = r.to_json(/*with_confusion=*/C <= 100);
  }
  std::vector<std::string> bad = train_src.bad_images();
  for (auto& s : eval_srcs)
    for (auto& b : s.bad_images()) bad.push_back(b);
  if (f.skip_bad_images) fmt::print("bad images skipped: {}\n", bad.size());
  res["bad_images"] = {{"count", bad.size()}, {"files", bad}};
  res["arch"] = f.arch;
  res["classes"] = C;
  res["seconds_per_epoch"] = epochs_run ? seconds / double(epochs_run) : 0.0;
  res["threads"] = f.threads;
  res["args"] = args_text;
  write_json_atomically(out / "results.json", res);
  if (!f.export_torchvision.empty()) {
    ltl::nn::save_torchvision(f.export_torchvision, model);
    fmt::print("model written with torchvision's names to {}\n", f.export_torchvision);
  }
  return 0;
}

}  // namespace example
