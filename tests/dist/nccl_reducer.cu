// The data-parallel gradient path over NCCL on the GPU (issue 19, dist/gradient_reducer.hpp),
// at world 1 (one GPU): gradient buckets in device memory, filled by the device's copies on the
// compute stream and all-reduced by NCCL on that same stream from the backward pass; the sums
// of a world of one are the gradients themselves, bit for bit; parameters and buffers broadcast
// in device memory; the trainer accepts the NCCL communicator for a GPU model. Compiled in CUDA
// builds with NCCL; [cuda]: skips, with the reason, without a GPU.
#include "support/cuda_skip.hpp"
#include "support/toy_data.hpp"

#if LTL_HAS_NCCL
#include <ltlearn/dist/nccl.hpp>

#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace dist = ltl::dist;
using gpu = ltl::cuda::device;

TEST_CASE("NCCL at world 1 in the data-parallel path: device buckets, identity sums, device broadcast",
          "[cuda][nccl]") {
  LTL_REQUIRE_GPU();
  const dist::mpi_environment env;  // a singleton world: this binary is not launched by mpiexec
  dist::mpi_communicator self(MPI_COMM_SELF);
  // The compute stream: bucket copies, NCCL and the gradients' kernels in one order.
  dist::nccl_communicator nc(self, {.stream = ltl::cuda::context::current().stream(), .device = 0});
  dist::any_communicator comm(nc);
  REQUIRE(comm.device_memory());
  REQUIRE(comm.host().name() == "mpi");

  ltl::nn::resnet_cifar<float, gpu> m({.depth = 8, .num_classes = 3, .in_channels = 1, .width = 4, .seed = 2});
  ltl::optim::sgd<float, gpu> opt(m.named_parameters(), {});
  dist::gradient_reducer<float, gpu> red(opt.params(), comm, {.bucket_bytes = 512});
  REQUIRE(red.buckets_on_device());
  const auto ds = ltl_test::toy_dataset(6, 3, 1);
  std::vector<ltl::index_t> idx(static_cast<std::size_t>(ds.size()));
  std::iota(idx.begin(), idx.end(), 0);
  const auto bt = ltl::data::make_batch<float>(ds, idx);
  auto step = [&](bool reduce) {
    opt.zero_grad();
    if (reduce) red.prepare();
    ltl::cross_entropy(m.forward(ltl::variable<float, gpu>(bt.images.to<gpu>())), bt.labels.to<gpu>()).backward();
    if (reduce) red.finish();
    std::map<std::string, std::vector<float>> g;
    for (auto& [n, p] : opt.params()) g.emplace(n, p.grad().to_vector());
    return g;
  };
  const auto own = step(false);
  REQUIRE(step(true) == own);  // the sum over one rank, in device buckets
  REQUIRE(red.started_during_backward() > 0);

  std::map<std::string, std::vector<float>> kept;
  for (auto& [n, t] : m.state_dict()) kept.emplace(n, t.to_vector());
  dist::broadcast_state(comm, m, &opt);
  for (auto& [n, t] : m.state_dict()) REQUIRE(t.to_vector() == kept.at(n));

  // The trainer's data-parallel side takes the NCCL communicator for a GPU model.
  ltl::train::data_parallel<float, gpu> dp(comm, 8, opt.params(), {.sync_batch_norm = true});
  REQUIRE(dp.local_batch() == 8);
}
#endif
