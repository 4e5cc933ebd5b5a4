// imagenet_lt: ImageNet-LT and Places-LT (Liu et al.'s list files, SPEC §12) with Kang et al.'s
// stage-1 recipe by default: ResNeXt-50 32x4d (ImageNet-LT) or ResNet-152 (Places-LT), batch 512,
// lr 0.2 cosine, 90 epochs, RandomResizedCrop 224 + flip + ColorJitter(0.4, 0.4, 0.4), evaluated
// with Resize 256 + CenterCrop 224, many/medium/few reported. Any long-tail policy of fmnist_lt
// (--loss, --sampler, --mix, ...) applies.
//
//   imagenet_lt --root /data/imagenet --train-list ImageNet_LT_train.txt --val-list ImageNet_LT_val.txt
//               --test-list ImageNet_LT_test.txt
//   imagenet_lt --dataset places --root /data/places365 --train-list Places_LT_train.txt
//               --test-list Places_LT_test.txt --init resnet152.safetensors --epochs 30
//   imagenet_lt ... --subset 100 --subset-images 5000 --arch resnet10 --resolution 112   # a quick look
#include "image_lt_train.hpp"

#include <ltlearn/data/image/readers.hpp>

#include <omp.h>

int main(int argc, char** argv) {
  example::distributed dist(argc, argv);  // under mpirun: data parallel
  CLI::App app{"ResNet / ResNeXt on ImageNet-LT or Places-LT list files"};
  std::string dataset = "imagenet", root, train_list, val_list, test_list;
  ltl::index_t num_classes = 0;
  example::image_run_flags f;
  f.out = "runs/imagenet_lt";
  app.add_option("--dataset", dataset,
                 "imagenet (ResNeXt-50, 1000 classes) | places (ResNet-152, 365 classes): sets the defaults of "
                 "--arch and --num-classes")->capture_default_str();
  app.add_option("--root", root, "directory the list files' paths are relative to")->required();
  app.add_option("--train-list", train_list, "training list: 'relative/path.jpg label' per line")->required();
  app.add_option("--val-list", val_list, "validation list (optional)");
  app.add_option("--test-list", test_list, "test list (optional)");
  app.add_option("--num-classes", num_classes, "class count (0: the dataset's, 1000 or 365)");
  f.add_to(app);
  app.callback([&] {
    if (dataset != "imagenet" && dataset != "places")
      throw CLI::ValidationError("--dataset", "must be imagenet or places");
    if (dataset == "places" && app.count("--arch") == 0) f.arch = "resnet152";
  });
  CLI11_PARSE(app, argc, argv);
  try {
    omp_set_num_threads(f.threads);
    namespace ld = ltl::data;
    if (num_classes <= 0) num_classes = dataset == "places" ? 365 : 1000;
    auto train = ld::read_image_list(train_list, root, num_classes, "train");
    train = example::evenly_spaced(example::first_classes(train, f.subset), f.subset_images);
    std::vector<example::eval_set> evals;
    if (!val_list.empty())
      evals.push_back({"val", example::first_classes(ld::read_image_list(val_list, root, num_classes, "val"), f.subset)});
    if (!test_list.empty())
      evals.push_back(
          {"test", example::first_classes(ld::read_image_list(test_list, root, num_classes, "test"), f.subset)});
    const auto norm = example::normalisation_of(f, train, ld::imagenet_mean, ld::imagenet_std);
    return example::train_image_lt(f, train, evals, norm.mean, norm.stddev, app.config_to_str(true, false),
                                   norm.recorded_in({{"dataset", dataset}}));
  } catch (const ltl::io_error& e) {
    fmt::print(stderr, "imagenet_lt: {}\n{}", e.what(),
               f.skip_bad_images ? "" : "(--skip-bad-images logs and skips unreadable images)\n");
    return dist.fail(1);
  } catch (const ltl::error& e) {
    fmt::print(stderr, "imagenet_lt: {}\n", e.what());
    return dist.fail(1);
  }
}
