#pragma once
// Data-parallel launch of the example trainers: `mpirun -np N fmnist_lt ...` trains on N
// processes with no other change. Launched by an MPI launcher (detected from its environment
// variables) in a build with MPI, the process initialises MPI and the trainer gets MPI's world;
// otherwise everything is single-process, exactly as before.
//   - rank 0 alone prints (the other ranks' stdout goes to /dev/null; stderr stays) and writes
//     checkpoints, logs and results;
//   - --batch is the global batch (split across the ranks; it must be a multiple of N);
//   - an error on any rank prints "rank r: message" and aborts the whole job (MPI_Abort), since
//     the other ranks may be waiting in a collective that would never complete;
//   - `--sync-bn` (taken out of argv here, before the trainer's own flags are parsed) turns on
//     synchronised batch norm: the batch statistics of every process's batch norms are those of
//     the global batch. It changes nothing in a single process.
//   - --device cuda (the <example>_cuda binaries): each rank takes the GPU numbered by its
//     node-local rank modulo the node's GPU count, and in a build with NCCL the gradients are
//     summed by NCCL in device memory (dist::nccl_communicator over the MPI world; host sums such
//     as evaluation counts stay on MPI). `--reduce-over mpi` (also taken out of argv here) keeps
//     MPI for the gradients too, copied through the host.

#include <ltlearn/dist/communicator.hpp>
#include <ltlearn/dist/gradient_reducer.hpp>
#if LTL_HAS_MPI
#include <ltlearn/dist/mpi.hpp>
#endif
#if LTL_HAS_NCCL && defined(LTL_EXAMPLE_CUDA)
#include <ltlearn/dist/nccl.hpp>
#endif
#if defined(LTL_EXAMPLE_CUDA)
#include <ltlearn/backends/cuda/error.hpp>

#include <cuda_runtime_api.h>
#endif

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

namespace example {

/// The process's place in a (possibly) data-parallel job; create one at the top of main.
class distributed {
 public:
  distributed(int& argc, char**& argv) {
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--sync-bn") == 0) {
        sync_bn_flag() = true;
      } else if (std::strcmp(argv[i], "--reduce-over") == 0 && i + 1 < argc) {
        reduce_over() = argv[++i];
      } else if (std::strncmp(argv[i], "--reduce-over=", 14) == 0) {
        reduce_over() = argv[i] + 14;
      } else {
        argv[kept++] = argv[i];
      }
    }
    argc = kept;
    argv[argc] = nullptr;
    if (const std::string& how = reduce_over(); how != "auto" && how != "mpi" && how != "nccl") {
      std::fprintf(stderr, "--reduce-over '%s': auto, mpi or nccl\n", how.c_str());
      std::exit(2);  // refused before any work, like a flag CLI11 rejects
    }
#if LTL_HAS_MPI
    if (ltl::dist::launched_by_mpi()) {
      env_ = std::make_unique<ltl::dist::mpi_environment>(&argc, &argv);
      mpi_world().emplace();
      comm() = *mpi_world();
      if (!root() && std::freopen("/dev/null", "w", stdout) == nullptr)
        std::fprintf(stderr, "rank %d: cannot silence stdout; its output is printed too\n", comm().rank());
    }
#else
    (void)argc, (void)argv;
#endif
  }
  ~distributed() {
#if defined(LTL_EXAMPLE_CUDA) && LTL_HAS_NCCL
    nccl_holder().reset();  // before MPI_Finalize and the CUDA runtime's own teardown
#endif
  }
  distributed(const distributed&) = delete;
  distributed& operator=(const distributed&) = delete;

  /// The communicator the trainer uses (a world of one unless launched by mpirun).
  static ltl::dist::any_communicator& comm() {
    static ltl::dist::any_communicator c;
    return c;
  }
  /// The communicator of a trainer whose model lives on D, called before the model is built:
  /// on a GPU it first makes this rank's GPU (node-local rank modulo the GPU count) current, and
  /// under mpirun in a build with NCCL it is NCCL over the MPI world (unless --reduce-over mpi);
  /// otherwise comm(). ltl::value_error for --reduce-over nccl with a CPU model or in a binary
  /// without NCCL (other values were refused when the arguments were read).
  template <class D>
  static ltl::dist::any_communicator trainer_comm() {
    const std::string& how = reduce_over();
    if constexpr (D::is_host) {
      LTL_CHECK(how != "nccl", value_error, "--reduce-over nccl sums GPU gradients: it needs --device cuda");
      return comm();
    } else {
#if defined(LTL_EXAMPLE_CUDA) && LTL_HAS_MPI
      if (mpi_world() && !comm().single()) {
        int count = 0;
        if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0)
          LTL_CUDA_CHECK(cudaSetDevice(ltl::dist::node_local_rank(mpi_world()->native()) % count));
      }
#endif
#if defined(LTL_EXAMPLE_CUDA) && LTL_HAS_NCCL
      if (how != "mpi" && mpi_world() && !comm().single()) {
        auto& nccl = nccl_holder();
        if (!nccl) nccl.emplace(*mpi_world());
        return *nccl;
      }
#else
      LTL_CHECK(how != "nccl", value_error,
                "--reduce-over nccl: this binary was built without NCCL (a CUDA build that finds NCCL and MPI has it)");
#endif
      return comm();
    }
  }

  /// The trainer's data-parallel options (--sync-bn: synchronised batch norm).
  static ltl::dist::reducer_options reducer_options() { return {.sync_batch_norm = sync_bn_flag()}; }
  /// True on the rank that prints and writes files (the only rank of a single process).
  static bool root() { return comm().rank() == 0; }

  /// main's error exit after printing the error: `status` in a single process; in a job of
  /// several ranks, aborts them all (this rank's message is already on stderr).
  int fail(int status = 1) {
    if (comm().single()) return status;
    std::fprintf(stderr, "rank %d of %d: aborting the job\n", comm().rank(), comm().size());
    comm().abort(status);
  }

 private:
  static bool& sync_bn_flag() {
    static bool on = false;
    return on;
  }
  static std::string& reduce_over() {
    static std::string how = "auto";
    return how;
  }
#if LTL_HAS_MPI
  static std::optional<ltl::dist::mpi_communicator>& mpi_world() {
    static std::optional<ltl::dist::mpi_communicator> w;
    return w;
  }
#if defined(LTL_EXAMPLE_CUDA) && LTL_HAS_NCCL
  static std::optional<ltl::dist::nccl_communicator>& nccl_holder() {
    static std::optional<ltl::dist::nccl_communicator> c;
    return c;
  }
#endif
#else
  static std::optional<int>& mpi_world() {  // no MPI: never set
    static std::optional<int> w;
    return w;
  }
#endif
#if LTL_HAS_MPI
  std::unique_ptr<ltl::dist::mpi_environment> env_;
#endif
};

}  // namespace example
