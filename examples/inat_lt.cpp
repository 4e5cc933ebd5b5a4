// inat_lt: iNaturalist 2018/2019 (COCO-style JSON, SPEC §12) with CDT's iNaturalist recipe by
// default (Ye et al., CDT paper App. A.4, SPEC §4): ResNet-50, 90 epochs, batch 512, lr warmed up
// linearly over 5 epochs to 0.2, ×0.1 at epochs 30, 60 and 80; weight decay 2e-4 (App. A.2: "for
// all the experiments"; SPEC §4 does not list it); images resized to 256×256 (aspect not kept),
// random crop 224, flip, the training-set RGB mean subtracted (--augment cdt; the mean of
// --mean-images evenly spaced training images after the resize, on the network's [0, 1] input
// scale, saved in <out>/train_mean.json); evaluation resizes to 256×256 and centre-crops 224 with
// the same mean; with --loss cdt, γ = 0 for the first 45 epochs (--gamma-start); many/medium/few
// reported. Kang et al.'s iNaturalist stage 1 instead: --augment rrc (RandomResizedCrop + flip,
// iNaturalist mean/std, Resize 256 short side + CenterCrop 224) --schedule cosine --warmup 0
// --weight-decay 5e-4. Category ids become labels 0..C-1 in id order; the mapping is saved as
// <out>/categories.json. Any long-tail policy of fmnist_lt applies. Stage 2 on the checkpoint:
// decouple_image --out <out> (it evaluates with the run's --augment and mean).
//
//   inat_lt --root /data/inat2018 --train-json train2018.json --val-json val2018.json --loss cdt
//   inat_lt ... --loss cdt --cdt-gamma 0.1 --epochs 200 --lr-steps 60,120,160 --gamma-start 100
#include "image_lt_train.hpp"

#include <ltlearn/data/image/readers.hpp>

#include <omp.h>

int main(int argc, char** argv) {
  example::distributed dist(argc, argv);  // under mpirun: data parallel
  CLI::App app{"ResNet on iNaturalist 2018/2019"};
  std::string root, train_json, val_json;
  example::image_run_flags f;
  f.out = "runs/inat_lt";
  f.arch = "resnet50";
  f.jitter = false;
  // CDT's iNaturalist schedule (CDT paper App. A.2 and A.4; SPEC §4).
  f.policy.schedule = "step";
  f.warmup = 5;
  f.lr_steps = {30, 60, 80};
  f.lr_step_factor = 0.1;
  f.weight_decay = 2e-4;
  // CDT's iNaturalist augmentation and γ delay (SPEC §4).
  f.augment = "cdt";
  f.policy.gamma_start = 45;
  app.add_option("--root", root, "directory the JSON's file_name paths are relative to (holds train_val2018/)")
      ->required();
  app.add_option("--train-json", train_json, "training annotations (train2018.json)")->required();
  app.add_option("--val-json", val_json, "validation annotations (val2018.json), labelled with the training mapping");
  f.add_to(app);
  app.get_option("--schedule")->description(
      "step (default here: CDT's iNaturalist schedule, warm-up 5 epochs to lr 0.2, x0.1 at the --lr-steps "
      "30,60,80) | cosine (Kang et al.'s stage 1)");
  app.get_option("--weight-decay")->description("weight decay (default: CDT paper App. A.2, 2e-4)");
  app.get_option("--warmup")->description("linear warm-up epochs (default: CDT's 5)");
  app.get_option("--augment")->description(
      "cdt (default here: CDT paper on iNaturalist, SPEC 4 — resize to S x S, S = round(resolution * 256 / 224), "
      "random crop resolution, flip, training-set RGB mean subtracted; evaluation: S x S + centre crop) | rrc "
      "(Kang et al.: RandomResizedCrop + flip, iNaturalist mean/std; evaluation: short side S + centre crop)");
  app.get_option("--gamma-start")->description(
      "--loss cdt: gamma = 0 before this epoch (default here: CDT paper on iNaturalist, 45 of 90 epochs; SPEC 4)");
  CLI11_PARSE(app, argc, argv);
  try {
    example::settle_cdt_start(app, f);
    omp_set_num_threads(f.threads);
    namespace ld = ltl::data;
    ld::category_map categories;
    auto train = ld::read_inat(train_json, root, nullptr, &categories, "train");
    if (example::distributed::root()) {
      ltl::io::create_output_dir(f.out);  // io_error naming --out's directory, not a filesystem_error
      example::write_json_atomically(std::filesystem::path(f.out) / "categories.json", categories.to_json());
    }
    train = example::evenly_spaced(example::first_classes(train, f.subset), f.subset_images);
    std::vector<example::eval_set> evals;
    if (!val_json.empty())
      evals.push_back({"val", example::first_classes(ld::read_inat(val_json, root, &categories, nullptr, "val"), f.subset)});
    const auto norm = example::normalisation_of(f, train, ld::inat_mean, ld::inat_std);
    return example::train_image_lt(f, train, evals, norm.mean, norm.stddev, app.config_to_str(true, false),
                                   norm.recorded_in({{"categories", "categories.json"}}));
  } catch (const ltl::io_error& e) {
    fmt::print(stderr, "inat_lt: {}\n{}", e.what(),
               f.skip_bad_images ? "" : "(--skip-bad-images logs and skips unreadable images)\n");
    return dist.fail(1);
  } catch (const ltl::error& e) {
    fmt::print(stderr, "inat_lt: {}\n", e.what());
    return dist.fail(1);
  }
}
