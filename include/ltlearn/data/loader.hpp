#pragma once
/// \file
/// data::loader: assembles batches [B, C, H, W] in the order a sampler gives, on background
/// threads with a bounded prefetch queue.
///
/// Reproducible regardless of thread timing: batch b of epoch e is built from the indices at
/// positions [b·B, (b+1)·B) of that epoch's order, and its random augmentation uses its own
/// generator `rng(seed, stream(e, b))`. Which worker builds it, and when, changes nothing.
/// Resuming mid-epoch starts at any batch index with the same result.
///
/// Two kinds of source: an in-memory `dataset` (batches via make_batch, then the batch-level
/// transform), or a `batch_source` such as data::image_pipeline that builds whole batches itself
/// with one generator per sample, `rng(seed, sample_stream(e, position))`.
///
/// Over a dataset with a data::standard_augment, the loader can also hand over the augmented
/// bytes (image_delivery::bytes, batch::bytes) for the upload to normalise on the device; the
/// values after that are the float delivery's bit for bit (standard_augment's comment).

#include "ltlearn/core/rng.hpp"
#include "ltlearn/data/batch.hpp"
#include "ltlearn/data/dataset.hpp"
#include "ltlearn/data/transforms.hpp"

#include <condition_variable>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

namespace ltl::data {

/// Options of data::loader.
struct loader_options {
  index_t batch_size = 128;
  bool drop_last = false;  ///< drop a final partial batch
  int workers = 1;         ///< background threads (0: build batches on the calling thread)
  int prefetch = 4;        ///< batches built ahead of the consumer, at most
  std::uint64_t seed = 0;  ///< augmentation seed
};

/// Random stream of batch `b` in epoch `e`.
inline constexpr std::uint64_t batch_stream(index_t epoch, index_t b) {
  return (static_cast<std::uint64_t>(epoch) << 32) ^ static_cast<std::uint64_t>(b);
}

/// Random stream of the sample at `position` of epoch `epoch`'s order (per-sample augmentation:
/// independent of batch size, batch composition, thread and rank).
inline constexpr std::uint64_t sample_stream(index_t epoch, index_t position) {
  return (static_cast<std::uint64_t>(epoch) << 40) ^ static_cast<std::uint64_t>(position);
}

/// Something that builds a whole batch itself (decoding and augmenting each item).
///
/// Requires `make_batch(indices, epoch, first_position, seed)` returning the batch<T> of items
/// `indices`, which sit at positions first_position, first_position + 1, … of the epoch's
/// order. Ensures the result is a pure function of these arguments (e.g. each sample drawn from
/// `rng(seed, sample_stream(epoch, position))`), so any worker may build any batch.
template <class S, class T>
concept batch_source = requires(const S& s, std::span<const index_t> idx, index_t i, std::uint64_t seed) {
  { s.make_batch(idx, i, i, seed) } -> std::same_as<batch<T>>;
};

/// Batch loader over a dataset or batch source `Ds` (which must outlive it).
template <real_scalar T, class Ds>
  requires dataset<Ds> || batch_source<Ds, T>
class loader {
 public:
  /// In-place transform of a batch of images in [0, 1] (augmentation + normalisation).
  using transform_fn = std::function<void(tensor<T>& images, rng& g)>;

  loader(const Ds& ds, loader_options o, transform_fn transform = {})
      : ds_(&ds), opt_(o), transform_(std::move(transform)) {
    LTL_CHECK(o.batch_size > 0 && o.workers >= 0 && o.prefetch > 0, value_error,
              "loader: batch size {}, workers {} and prefetch {} are invalid", o.batch_size, o.workers, o.prefetch);
    if constexpr (!dataset<Ds>)
      LTL_CHECK(!transform_, value_error, "loader: a batch source applies its own transforms; pass none");
  }

  /// Over an in-memory dataset, augmented by `aug`: with image_delivery::floats as the loader
  /// above with `aug` as its transform; with bytes, each batch's bytes are cropped and flipped
  /// with the same draws and handed over with aug.norm pending (batch::bytes).
  loader(const Ds& ds, loader_options o, standard_augment aug, image_delivery delivery)
    requires dataset<Ds>
      : loader(ds, o) {
    if (delivery == image_delivery::bytes) bytes_ = std::move(aug);
    else transform_ = [aug = std::move(aug)](tensor<T>& x, rng& g) { aug(x, g); };
  }

  /// Number of batches an order of `n` indices gives.
  [[nodiscard]] index_t num_batches(index_t n) const noexcept {
    return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
  }

  /// The batch `b` of `order` in `epoch` (what every path below returns for that position).
  [[nodiscard]] batch<T> make(index_t epoch, const std::vector<index_t>& order, index_t b) const {
    const auto n = static_cast<index_t>(order.size());
    const index_t begin = b * opt_.batch_size, end = std::min(n, begin + opt_.batch_size);
    LTL_CHECK(begin < end, value_error, "loader: batch {} is past the end of an order of {} indices", b, n);
    if constexpr (!dataset<Ds>) {
      return ds_->make_batch(std::span<const index_t>(order.data() + begin, static_cast<std::size_t>(end - begin)), epoch,
                             begin, opt_.seed);
    } else {
      const std::span<const index_t> items(order.data() + begin, static_cast<std::size_t>(end - begin));
      rng g(opt_.seed, batch_stream(epoch, b));
      if (bytes_) {
        auto out = make_byte_batch<T>(*ds_, items, bytes_->norm);
        bytes_->augment(out.bytes->pixels, g);
        return out;
      }
      auto out = make_batch<T>(*ds_, items);
      if (transform_) transform_(out.images, g);
      return out;
    }
  }

  /// One pass over `order` from batch `start`; iterate with next().
  class epoch_run {
   public:
    epoch_run(const loader& l, index_t epoch, std::vector<index_t> order, index_t start)
        : l_(&l), epoch_(epoch), order_(std::move(order)), next_(start), end_(l.num_batches(static_cast<index_t>(order_.size()))) {
      LTL_CHECK(start >= 0 && start <= end_, value_error, "loader: start batch {} is outside [0, {}]", start, end_);
      produce_next_ = next_;
      for (int w = 0; w < l.opt_.workers; ++w) threads_.emplace_back([this] { work(); });
    }
    ~epoch_run() {
      {
        std::lock_guard lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      for (auto& t : threads_) t.join();
    }
    epoch_run(const epoch_run&) = delete;
    epoch_run& operator=(const epoch_run&) = delete;

    /// Index of the batch next() returns next.
    [[nodiscard]] index_t position() const noexcept { return next_; }
    [[nodiscard]] index_t size() const noexcept { return end_; }

    /// The next batch, or nullopt at the end of the epoch. Rethrows a worker's error.
    std::optional<batch<T>> next() {
      if (next_ >= end_) return std::nullopt;
      if (threads_.empty()) return l_->make(epoch_, order_, next_++);
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return ready_.count(next_) || error_; });
      if (error_) std::rethrow_exception(error_);
      auto node = ready_.extract(next_);
      ++next_;
      lock.unlock();
      cv_.notify_all();
      return std::move(node.mapped());
    }

   private:
    void work() {
#if LTL_HAS_OPENMP
      omp_set_num_threads(1);  // the training step owns the cores' OpenMP team
#endif
      for (;;) {
        index_t b;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [&] { return stop_ || error_ || (produce_next_ < end_ && produce_next_ < next_ + l_->opt_.prefetch); });
          if (stop_ || error_) return;
          b = produce_next_++;
        }
        try {
          auto bt = l_->make(epoch_, order_, b);
          std::lock_guard lock(mu_);
          ready_.emplace(b, std::move(bt));
        } catch (...) {
          std::lock_guard lock(mu_);
          if (!error_) error_ = std::current_exception();
        }
        cv_.notify_all();
      }
    }

    const loader* l_;
    index_t epoch_;
    std::vector<index_t> order_;
    index_t next_, end_, produce_next_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    std::map<index_t, batch<T>> ready_;
    std::exception_ptr error_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
  };

  /// How the batches hold their images (bytes only when built with image_delivery::bytes).
  [[nodiscard]] image_delivery delivery() const noexcept {
    return bytes_ ? image_delivery::bytes : image_delivery::floats;
  }

  /// Starts an epoch over `order` (e.g. a sampler's epoch_indices) at batch `start`.
  [[nodiscard]] std::unique_ptr<epoch_run> run(index_t epoch, std::vector<index_t> order, index_t start = 0) const {
    return std::make_unique<epoch_run>(*this, epoch, std::move(order), start);
  }
  [[nodiscard]] const loader_options& options() const noexcept { return opt_; }
  [[nodiscard]] const Ds& dataset_ref() const noexcept { return *ds_; }

 private:
  const Ds* ds_;
  loader_options opt_;
  transform_fn transform_;
  std::optional<standard_augment> bytes_;  // image_delivery::bytes: the augmentation on the bytes
};

}  // namespace ltl::data
