// inat_lt: iNaturalist 2018/2019 (COCO-style JSON, SPEC §12) with Kang et al.'s stage-1 recipe by
// default: ResNet-50, batch 512, lr 0.2 cosine, 90 epochs, weight decay 1e-4, RandomResizedCrop
// 224 + flip (no colour jitter), iNaturalist mean/std, Resize 256 + CenterCrop 224 for
// evaluation, many/medium/few reported. Category ids become labels 0..C-1 in id order; the
// mapping is saved as <out>/categories.json. Any long-tail policy of fmnist_lt applies.
//
//   inat_lt --root /data/inat2018 --train-json train2018.json --val-json val2018.json
//   inat_lt ... --loss cdt --gamma 0.1 --epochs 200
#include "image_lt_train.hpp"

#include <ltlearn/data/image/readers.hpp>

#include <omp.h>

int main(int argc, char** argv) {
  CLI::App app{"ResNet on iNaturalist 2018/2019"};
  std::string root, train_json, val_json;
  example::image_run_flags f;
  f.out = "runs/inat_lt";
  f.arch = "resnet50";
  f.weight_decay = 1e-4;
  f.jitter = false;
  app.add_option("--root", root, "directory the JSON's file_name paths are relative to (holds train_val2018/)")
      ->required();
  app.add_option("--train-json", train_json, "training annotations (train2018.json)")->required();
  app.add_option("--val-json", val_json, "validation annotations (val2018.json), labelled with the training mapping");
  f.add_to(app);
  CLI11_PARSE(app, argc, argv);
  try {
    omp_set_num_threads(f.threads);
    namespace ld = ltl::data;
    ld::category_map categories;
    auto train = ld::read_inat(train_json, root, nullptr, &categories, "train");
    ltl::io::create_output_dir(f.out);  // io_error naming --out's directory, not a filesystem_error
    example::write_json_atomically(std::filesystem::path(f.out) / "categories.json", categories.to_json());
    train = example::evenly_spaced(example::first_classes(train, f.subset), f.subset_images);
    std::vector<example::eval_set> evals;
    if (!val_json.empty())
      evals.push_back({"val", example::first_classes(ld::read_inat(val_json, root, &categories, nullptr, "val"), f.subset)});
    return example::train_image_lt(f, train, evals, ld::inat_mean, ld::inat_std, app.config_to_str(true, false),
                                   {{"categories", "categories.json"}});
  } catch (const ltl::io_error& e) {
    fmt::print(stderr, "inat_lt: {}\n{}", e.what(),
               f.skip_bad_images ? "" : "(--skip-bad-images logs and skips unreadable images)\n");
    return 1;
  } catch (const ltl::error& e) {
    fmt::print(stderr, "inat_lt: {}\n", e.what());
    return 1;
  }
}
