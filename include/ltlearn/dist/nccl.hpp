#pragma once
/// \file
/// dist::nccl_communicator: the communicator concept over NCCL, for buffers in GPU memory,
/// bootstrapped over MPI: rank 0 creates the ncclUniqueId and broadcasts it over MPI, and each
/// rank takes the GPU numbered by its node-local rank (MPI_Comm_split_type SHARED) modulo the
/// node's GPU count. CUDA builds only (target ltlearn::nccl); needs no nvcc.
///
/// Stream ordering: collectives are enqueued on `stream()`, by default the GPU's compute stream
/// (ltl::cuda::context's), which produces the buffers, so a reduction starts after the gradient
/// it reads.
/// all_reduce_sum and broadcast return once the result is in place (the stream is synchronised);
/// start_all_reduce_sum only enqueues, and wait_all synchronises.

#include "ltlearn/backends/cuda/context.hpp"
#include "ltlearn/backends/cuda/error.hpp"
#include "ltlearn/dist/communicator.hpp"
#include "ltlearn/dist/mpi.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <memory>
#include <optional>
#include <span>
#include <string>

namespace ltl::dist {

namespace detail {
inline void nccl_check(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return;
  throw cuda_error(fmt::format("NCCL: {} failed: {}", what, ncclGetErrorString(r)));
}
}  // namespace detail

/// Options of nccl_communicator.
struct nccl_options {
  /// Stream to enqueue on (nullptr: the chosen GPU's compute stream, ltl::cuda::context's). The
  /// trainer's gradient buckets are filled by copies on the compute stream, and NCCL orders its
  /// reads after them only on the same stream: pass another stream only with your own ordering.
  cudaStream_t stream = nullptr;
  int device = -1;                ///< GPU to use (-1: node-local rank modulo the GPU count)
};

/// NCCL over the ranks of an MPI communicator; spans passed to it point to device memory.
class nccl_communicator {
 public:
  /// Spans passed to the collectives point to device memory; host() sums host buffers.
  static constexpr bool device_memory = true;

  explicit nccl_communicator(const mpi_communicator& boot, nccl_options o = {})
      : s_(std::make_shared<shared>()), boot_(boot) {
    s_->rank = boot.rank();
    s_->size = boot.size();
    int count = 0;
    LTL_CUDA_CHECK(cudaGetDeviceCount(&count));
    LTL_CHECK(count > 0, device_error, "nccl_communicator: no GPU on this node");
    s_->device = o.device >= 0 ? o.device : node_local_rank(boot.native()) % count;
    LTL_CUDA_CHECK(cudaSetDevice(s_->device));
    s_->stream = o.stream ? o.stream : cuda::context::current().stream();
    ncclUniqueId id{};
    if (s_->rank == 0) detail::nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    boot_->broadcast(std::as_writable_bytes(std::span<ncclUniqueId>(&id, 1)), 0);
    detail::nccl_check(ncclCommInitRank(&s_->comm, s_->size, id, s_->rank), "ncclCommInitRank");
  }

  [[nodiscard]] int rank() const noexcept { return s_->rank; }
  [[nodiscard]] int size() const noexcept { return s_->size; }
  [[nodiscard]] int device() const noexcept { return s_->device; }
  [[nodiscard]] cudaStream_t stream() const noexcept { return s_->stream; }
  /// The MPI communicator it was bootstrapped over: the same ranks, for host buffers.
  [[nodiscard]] const mpi_communicator& host() const noexcept { return *boot_; }

  void all_reduce_sum(std::span<float> x) {
    enqueue_sum(x.data(), x.size(), ncclFloat32);
    wait_all();
  }
  void all_reduce_sum(std::span<double> x) {
    enqueue_sum(x.data(), x.size(), ncclFloat64);
    wait_all();
  }
  void all_reduce_sum(std::span<std::int64_t> x) {
    enqueue_sum(x.data(), x.size(), ncclInt64);
    wait_all();
  }
  void start_all_reduce_sum(std::span<float> x) { enqueue_sum(x.data(), x.size(), ncclFloat32); }
  void start_all_reduce_sum(std::span<double> x) { enqueue_sum(x.data(), x.size(), ncclFloat64); }
  void progress() noexcept {}  // NCCL progresses on the GPU by itself
  void wait_all() { LTL_CUDA_CHECK(cudaStreamSynchronize(s_->stream)); }
  void broadcast(std::span<std::byte> x, int root) {
    LTL_CHECK(root >= 0 && root < s_->size, value_error, "nccl_communicator::broadcast: root {} outside a world of {}",
              root, s_->size);
    detail::nccl_check(ncclBroadcast(x.data(), x.data(), x.size(), ncclUint8, root, s_->comm, s_->stream),
                       "ncclBroadcast");
    wait_all();
  }
  /// Every rank's enqueued work is done and every rank reached this point.
  void barrier() {
    wait_all();
    boot_->barrier();
  }
  [[noreturn]] void abort(int code) noexcept {
    ncclCommAbort(s_->comm);
    s_->comm = nullptr;
    boot_->abort(code);
  }
  [[nodiscard]] std::string name() const { return "nccl"; }

 private:
  struct shared {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
    bool own_stream = false;
    int rank = 0, size = 1, device = 0;
    ~shared() {
      if (comm) ncclCommDestroy(comm);
      if (own_stream) cudaStreamDestroy(stream);
    }
  };
  void enqueue_sum(void* p, std::size_t n, ncclDataType_t t) {
    detail::nccl_check(ncclAllReduce(p, p, n, t, ncclSum, s_->comm, s_->stream), "ncclAllReduce");
  }
  std::shared_ptr<shared> s_;
  std::optional<mpi_communicator> boot_;
};

static_assert(communicator<nccl_communicator>);

}  // namespace ltl::dist
