// cifar_lt: the CIFAR-10/100-LT recipe of SPEC §4 (ResNet-32, batch 128, SGD 0.9, wd 2e-4,
// 5-epoch warm-up to 0.1, x0.01 at 160 and x0.0001 at 180 of 200 epochs; --schedule cosine and
// --epochs 300 for the MFW recipe) on the CIFAR binary files, which the user provides:
//   cifar_lt --data-dir cifar-10-batches-bin --dataset cifar10 --rho 100 --loss ldam --drw-epoch 160
#include "distributed.hpp"
#include "main_guard.hpp"
#include "modes.hpp"

#include <ltlearn/data/cifar.hpp>

#include <omp.h>

int main(int argc, char** argv) {
  example::distributed dist(argc, argv);  // under mpirun: data parallel
  CLI::App app{"ResNet-32 on CIFAR-10/100-LT (SPEC §4 recipe)"};
  std::string data_dir = "cifar-10-batches-bin", dataset = "cifar10";
  example::run_flags f;
  f.out = "runs/cifar_lt";
  f.epochs = 200;
  f.warmup = 5;
  f.policy.decay_a = 0.01;  // CDT / LDAM-DRW recipe: x0.01 at 160, x0.0001 at 180
  f.policy.decay_b = 0.0001;
  app.add_option("--data-dir", data_dir, "directory of the CIFAR binary files")->capture_default_str();
  app.add_option("--dataset", dataset, "cifar10 | cifar100")->check(example::one_of({"cifar10", "cifar100"}))->capture_default_str();
  f.add_to(app);
  CLI11_PARSE(app, argc, argv);
  return example::guarded_main("cifar_lt", [&]() -> int {
    f.check();
    omp_set_num_threads(f.threads);
    namespace ld = ltl::data;
    const bool c100 = dataset == "cifar100";
    if (!c100 && dataset != "cifar10") throw ltl::value_error("unknown --dataset '" + dataset + "'");
    const auto full = c100 ? ld::read_cifar100(data_dir, ld::split::train) : ld::read_cifar10(data_dir, ld::split::train);
    const auto test = c100 ? ld::read_cifar100(data_dir, ld::split::test) : ld::read_cifar10(data_dir, ld::split::test);
    const ld::normalize norm{{0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}};
    return example::run_mode(f, full, test, c100 ? 500 : 5000, norm, app.config_to_str(true, false));
  }, [&](int status) { return dist.fail(status); });
}
