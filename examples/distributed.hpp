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

#include <ltlearn/dist/communicator.hpp>
#include <ltlearn/dist/gradient_reducer.hpp>
#if LTL_HAS_MPI
#include <ltlearn/dist/mpi.hpp>
#endif

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <memory>

namespace example {

/// The process's place in a (possibly) data-parallel job; create one at the top of main.
class distributed {
 public:
  distributed(int& argc, char**& argv) {
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--sync-bn") == 0) {
        sync_bn_flag() = true;
      } else {
        argv[kept++] = argv[i];
      }
    }
    argc = kept;
    argv[argc] = nullptr;
#if LTL_HAS_MPI
    if (ltl::dist::launched_by_mpi()) {
      env_ = std::make_unique<ltl::dist::mpi_environment>(&argc, &argv);
      comm() = ltl::dist::mpi_communicator();
      if (!root() && std::freopen("/dev/null", "w", stdout) == nullptr)
        std::fprintf(stderr, "rank %d: cannot silence stdout; its output is printed too\n", comm().rank());
    }
#else
    (void)argc, (void)argv;
#endif
  }
  distributed(const distributed&) = delete;
  distributed& operator=(const distributed&) = delete;

  /// The communicator the trainer uses (a world of one unless launched by mpirun).
  static ltl::dist::any_communicator& comm() {
    static ltl::dist::any_communicator c;
    return c;
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
#if LTL_HAS_MPI
  std::unique_ptr<ltl::dist::mpi_environment> env_;
#endif
};

}  // namespace example
