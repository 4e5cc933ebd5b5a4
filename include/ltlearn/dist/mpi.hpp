#pragma once
/// \file
/// dist::mpi_environment and dist::mpi_communicator: the communicator concept over MPI, for
/// host buffers (CPU training; the NCCL model bootstraps over it). Needs <mpi.h>: include this
/// header only in programs linked to MPI (CMake: LTL_WITH_MPI, target ltlearn::mpi).
///
/// Threading: MPI is initialised with MPI_THREAD_FUNNELED — only the thread that initialised
/// it calls MPI (the data loader's workers never do).

#include "ltlearn/dist/communicator.hpp"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ltl::dist {

namespace detail {
inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw error(fmt::format("MPI: {} failed: {}", what, std::string(msg, static_cast<std::size_t>(len))));
}
}  // namespace detail

/// True when MPI is initialised and not yet finalised.
inline bool mpi_active() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

/// True when this process was started by an MPI launcher (mpirun/mpiexec/srun), judged by the
/// environment variables Open MPI, MPICH/Hydra, Intel MPI and Slurm's PMI set.
inline bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "PMI_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

/// RAII MPI initialisation: MPI_Init_thread (FUNNELED) unless MPI is already running, and
/// MPI_Finalize at destruction if this object initialised it.
class mpi_environment {
 public:
  mpi_environment() : mpi_environment(nullptr, nullptr) {}
  mpi_environment(int* argc, char*** argv) {
    if (mpi_active()) return;
    int provided = 0;
    detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    LTL_CHECK(provided >= MPI_THREAD_FUNNELED, error, "MPI: the library provides thread level {}, ltlearn needs FUNNELED",
              provided);
  }
  ~mpi_environment() {
    if (owner_ && mpi_active()) MPI_Finalize();
  }
  mpi_environment(const mpi_environment&) = delete;
  mpi_environment& operator=(const mpi_environment&) = delete;

 private:
  bool owner_ = false;
};

/// The communicator concept over an MPI communicator (default: a duplicate of MPI_COMM_WORLD,
/// so ltlearn's collectives never match a caller's). MPI must be initialised (mpi_environment).
/// Copies share the communicator and its pending non-blocking requests.
class mpi_communicator {
 public:
  mpi_communicator() : mpi_communicator(MPI_COMM_WORLD) {}
  /// Duplicates `base` (which must outlive nothing: the duplicate is freed with the last copy).
  explicit mpi_communicator(MPI_Comm base) : s_(std::make_shared<shared>()) {
    LTL_CHECK(mpi_active(), error, "mpi_communicator: MPI is not initialised (create a dist::mpi_environment first)");
    detail::mpi_check(MPI_Comm_dup(base, &s_->comm), "MPI_Comm_dup");
    // Errors come back as codes (and become exceptions) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(s_->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(s_->comm, &s_->rank);
    MPI_Comm_size(s_->comm, &s_->size);
  }

  [[nodiscard]] int rank() const noexcept { return s_->rank; }
  [[nodiscard]] int size() const noexcept { return s_->size; }
  [[nodiscard]] MPI_Comm native() const noexcept { return s_->comm; }

  void all_reduce_sum(std::span<float> x) { reduce(x.data(), x.size(), MPI_FLOAT, sizeof(float)); }
  void all_reduce_sum(std::span<double> x) { reduce(x.data(), x.size(), MPI_DOUBLE, sizeof(double)); }
  void all_reduce_sum(std::span<std::int64_t> x) { reduce(x.data(), x.size(), MPI_INT64_T, sizeof(std::int64_t)); }
  void start_all_reduce_sum(std::span<float> x) { start(x.data(), x.size(), MPI_FLOAT); }
  void start_all_reduce_sum(std::span<double> x) { start(x.data(), x.size(), MPI_DOUBLE); }
  /// Lets pending non-blocking reductions advance (MPI progresses them only inside MPI calls).
  void progress() {
    if (s_->pending.empty()) return;
    int done = 0;
    detail::mpi_check(MPI_Testall(static_cast<int>(s_->pending.size()), s_->pending.data(), &done, MPI_STATUSES_IGNORE),
                      "MPI_Testall");
    if (done) s_->pending.clear();
  }
  void wait_all() {
    if (s_->pending.empty()) return;
    detail::mpi_check(MPI_Waitall(static_cast<int>(s_->pending.size()), s_->pending.data(), MPI_STATUSES_IGNORE),
                      "MPI_Waitall");
    s_->pending.clear();
  }
  void broadcast(std::span<std::byte> x, int root) {
    LTL_CHECK(root >= 0 && root < s_->size, value_error, "mpi_communicator::broadcast: root {} outside a world of {}",
              root, s_->size);
    for (std::size_t done = 0; done < x.size();) {  // counts are int: chunks below 2^31
      const std::size_t n = std::min(x.size() - done, chunk);
      detail::mpi_check(MPI_Bcast(x.data() + done, static_cast<int>(n), MPI_BYTE, root, s_->comm), "MPI_Bcast");
      done += n;
    }
  }
  void barrier() { detail::mpi_check(MPI_Barrier(s_->comm), "MPI_Barrier"); }
  /// Ends every rank (MPI_Abort on the world, so the launcher tears the job down at once).
  [[noreturn]] void abort(int code) noexcept {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }
  [[nodiscard]] std::string name() const { return "mpi"; }

 private:
  struct shared {
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0, size = 1;
    std::vector<MPI_Request> pending;
    ~shared() {
      if (comm != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&comm);
    }
  };
  static constexpr std::size_t chunk = std::size_t{1} << 30;
  void reduce(void* p, std::size_t n, MPI_Datatype t, std::size_t es) {
    for (std::size_t done = 0; done < n;) {
      const std::size_t k = std::min(n - done, chunk);
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(p) + done * es, static_cast<int>(k), t, MPI_SUM,
                                      s_->comm),
                        "MPI_Allreduce");
      done += k;
    }
  }
  void start(void* p, std::size_t n, MPI_Datatype t) {
    LTL_CHECK(n < chunk, value_error, "mpi_communicator: a non-blocking reduction of {} elements is too long", n);
    MPI_Request r;
    detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, p, static_cast<int>(n), t, MPI_SUM, s_->comm, &r), "MPI_Iallreduce");
    s_->pending.push_back(r);
  }
  std::shared_ptr<shared> s_;
};

static_assert(communicator<mpi_communicator>);

/// The node-local rank (MPI_Comm_split_type SHARED) of this process within `base`.
inline int node_local_rank(MPI_Comm base = MPI_COMM_WORLD) {
  MPI_Comm node;
  detail::mpi_check(MPI_Comm_split_type(base, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  return r;
}

}  // namespace ltl::dist
