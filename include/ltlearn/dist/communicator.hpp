#pragma once
/// \file
/// dist::communicator: the collective operations data-parallel training needs (SPEC §14), as a
/// concept with three models — local_communicator (one process, every operation the identity;
/// the default, so single-process training is unchanged bit for bit), mpi_communicator
/// (dist/mpi.hpp, host buffers over MPI) and nccl_communicator (dist/nccl.hpp, device buffers
/// over NCCL, bootstrapped over MPI) — and dist::any_communicator, which holds any of them so
/// that the trainer takes one at run time.
///
/// Memory: local and MPI communicators sum host buffers. A model whose buffers are device memory
/// (NCCL) says so with `static constexpr bool device_memory = true` and names the communicator
/// of the same ranks for host buffers with `host()`; any_communicator exposes both, so code that
/// sums host scalars takes `comm.host()` and code that holds device buckets asks
/// `comm.device_memory()`.
///
/// Ordering rule shared by every model: collectives are matched by the order in which ranks
/// issue them, so every rank must issue the same sequence (same kinds, same lengths).

#include "ltlearn/core/error.hpp"

#include <concepts>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace ltl::dist {

/// A group of `size()` processes that exchange buffers.
///
/// Represents one rank of a fixed group. Requires rank() in [0, size()); all_reduce_sum
/// (in place, every rank gets the element-wise sum) of float, double and int64 buffers;
/// start_all_reduce_sum (the same, non-blocking: the buffer must stay alive and untouched until
/// wait_all() returns; progress() may be called meanwhile to drive it); broadcast of raw bytes
/// from `root` (in place); barrier(); abort(code), which ends every rank of the group and does
/// not return; and name(). Ensures that after a collective every rank holds the same bits.
template <class C>
concept communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d,
                                std::span<std::int64_t> i, std::span<std::byte> b, int root) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  c.all_reduce_sum(f);
  c.all_reduce_sum(d);
  c.all_reduce_sum(i);
  c.start_all_reduce_sum(f);
  c.start_all_reduce_sum(d);
  c.progress();
  c.wait_all();
  c.broadcast(b, root);
  c.barrier();
  c.abort(1);
  { cc.name() } -> std::convertible_to<std::string>;
};

/// World of one process: every collective is the identity (no copy, no rounding).
class local_communicator {
 public:
  [[nodiscard]] int rank() const noexcept { return 0; }
  [[nodiscard]] int size() const noexcept { return 1; }
  void all_reduce_sum(std::span<float>) noexcept {}
  void all_reduce_sum(std::span<double>) noexcept {}
  void all_reduce_sum(std::span<std::int64_t>) noexcept {}
  void start_all_reduce_sum(std::span<float>) noexcept {}
  void start_all_reduce_sum(std::span<double>) noexcept {}
  void progress() noexcept {}
  void wait_all() noexcept {}
  void broadcast(std::span<std::byte>, int root) const {
    LTL_CHECK(root == 0, value_error, "local_communicator::broadcast: root {} outside a world of 1", root);
  }
  void barrier() noexcept {}
  [[noreturn]] void abort(int code) noexcept { std::_Exit(code); }
  [[nodiscard]] std::string name() const { return "local"; }
};

/// True when communicator type C sums device buffers (see the file comment).
template <class C>
inline constexpr bool device_memory_v = [] {
  if constexpr (requires { C::device_memory; }) {
    return static_cast<bool>(C::device_memory);
  } else {
    return false;
  }
}();

/// Holds any communicator by shared handle (copies of an any_communicator are the same rank).
/// Default: a local_communicator.
class any_communicator {
 public:
  any_communicator() : any_communicator(local_communicator{}) {}
  template <communicator C>
    requires(!std::same_as<std::decay_t<C>, any_communicator>)
  any_communicator(C c)  // NOLINT(google-explicit-constructor): wrapping is the point
      : impl_(std::make_shared<model<C>>(std::move(c))) {}

  [[nodiscard]] int rank() const { return impl_->rank(); }
  [[nodiscard]] int size() const { return impl_->size(); }
  /// True when this is the only rank (collectives are no-ops).
  [[nodiscard]] bool single() const { return impl_->size() == 1; }
  void all_reduce_sum(std::span<float> x) { impl_->all_reduce_sum(x); }
  void all_reduce_sum(std::span<double> x) { impl_->all_reduce_sum(x); }
  void all_reduce_sum(std::span<std::int64_t> x) { impl_->all_reduce_sum(x); }
  void start_all_reduce_sum(std::span<float> x) { impl_->start_all_reduce_sum(x); }
  void start_all_reduce_sum(std::span<double> x) { impl_->start_all_reduce_sum(x); }
  void progress() { impl_->progress(); }
  void wait_all() { impl_->wait_all(); }
  void broadcast(std::span<std::byte> x, int root) { impl_->broadcast(x, root); }
  void barrier() { impl_->barrier(); }
  [[noreturn]] void abort(int code) noexcept {
    impl_->abort(code);
    std::_Exit(code);  // a model's abort does not return; this only satisfies [[noreturn]]
  }
  [[nodiscard]] std::string name() const { return impl_->name(); }
  /// True when the spans passed to the collectives must point to device memory (NCCL).
  [[nodiscard]] bool device_memory() const { return impl_->device_memory(); }
  /// The communicator of the same ranks for host buffers (this one unless device_memory()).
  [[nodiscard]] any_communicator host() const {
    auto h = impl_->host();
    return h ? any_communicator(std::move(h)) : *this;
  }

 private:
  struct base {
    virtual ~base() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void all_reduce_sum(std::span<float>) = 0;
    virtual void all_reduce_sum(std::span<double>) = 0;
    virtual void all_reduce_sum(std::span<std::int64_t>) = 0;
    virtual void start_all_reduce_sum(std::span<float>) = 0;
    virtual void start_all_reduce_sum(std::span<double>) = 0;
    virtual void progress() = 0;
    virtual void wait_all() = 0;
    virtual void broadcast(std::span<std::byte>, int) = 0;
    virtual void barrier() = 0;
    virtual void abort(int) noexcept = 0;
    virtual std::string name() const = 0;
    virtual bool device_memory() const = 0;
    virtual std::shared_ptr<base> host() const = 0;  // null: this communicator is the host one
  };
  template <class C>
  struct model final : base {
    explicit model(C c) : c_(std::move(c)) {}
    int rank() const override { return c_.rank(); }
    int size() const override { return c_.size(); }
    void all_reduce_sum(std::span<float> x) override { c_.all_reduce_sum(x); }
    void all_reduce_sum(std::span<double> x) override { c_.all_reduce_sum(x); }
    void all_reduce_sum(std::span<std::int64_t> x) override { c_.all_reduce_sum(x); }
    void start_all_reduce_sum(std::span<float> x) override { c_.start_all_reduce_sum(x); }
    void start_all_reduce_sum(std::span<double> x) override { c_.start_all_reduce_sum(x); }
    void progress() override { c_.progress(); }
    void wait_all() override { c_.wait_all(); }
    void broadcast(std::span<std::byte> x, int root) override { c_.broadcast(x, root); }
    void barrier() override { c_.barrier(); }
    void abort(int code) noexcept override { c_.abort(code); }
    std::string name() const override { return c_.name(); }
    bool device_memory() const override { return device_memory_v<C>; }
    std::shared_ptr<base> host() const override {
      if constexpr (device_memory_v<C>) {
        using H = std::decay_t<decltype(c_.host())>;
        return std::make_shared<model<H>>(c_.host());
      } else {
        return nullptr;
      }
    }
    C c_;
  };
  explicit any_communicator(std::shared_ptr<base> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<base> impl_;
};

/// True when `c`'s collectives take device buffers (an any_communicator decides at run time).
template <communicator C>
bool sums_device_memory(const C& c) {
  if constexpr (std::same_as<C, any_communicator>) {
    return c.device_memory();
  } else {
    return device_memory_v<C>;
  }
}

/// The communicator of `c`'s ranks for host buffers (`c` itself unless it sums device buffers).
template <communicator C>
any_communicator host_communicator(const C& c) {
  if constexpr (std::same_as<C, any_communicator>) {
    return c.host();
  } else if constexpr (device_memory_v<C>) {
    return any_communicator(c.host());
  } else {
    return any_communicator(c);
  }
}

/// Broadcasts a buffer of trivially copyable values from `root` (in place).
template <communicator C, class V>
  requires std::is_trivially_copyable_v<V>
void broadcast_values(C& comm, std::span<V> x, int root = 0) {
  comm.broadcast(std::as_writable_bytes(x), root);
}

/// Runs `fn()` and returns its result. With more than one rank, an exception escaping `fn`
/// prints "rank r: message" on stderr and aborts every rank — the others may be waiting in a
/// collective that would never complete. With one rank the exception propagates as usual.
template <class F>
decltype(auto) run_or_abort(any_communicator& comm, F&& fn) {
  if (comm.single()) return std::forward<F>(fn)();
  try {
    return std::forward<F>(fn)();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", comm.rank(), e.what());
  } catch (...) {
    std::fprintf(stderr, "rank %d: unknown exception\n", comm.rank());
  }
  std::fflush(stderr);
  comm.abort(1);
}

}  // namespace ltl::dist
