// Archetypes of ltlearn's concepts, one per concept: the smallest type that models it, built from
// exactly what the concept's contract documents. Each archetype takes a bit mask `Drop`; bit i
// removes requirement i, and every single removal must make the concept reject the type. So a
// concept that starts demanding more than it documents rejects its archetype, and one that stops
// checking a documented requirement accepts a reduced archetype: either fails this build.
//
// The library's own models are asserted next to each archetype, and the type-erased holders
// (any_sampler, any_policy, any_schedule) are run on the archetypes: they accept every model of
// their concept, not only the library's policies.
#include <catch2/catch.hpp>

#include <ltlearn/ltlearn.hpp>

#include <array>
#include <complex>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using ltl::index_t;

namespace {

/// True when requirement `Bit` is kept in an archetype built with mask `Drop`.
template <unsigned Drop, unsigned Bit>
inline constexpr bool keep = (Drop & (1u << Bit)) == 0;

/// Index of the first single-requirement removal (of `N`) that the concept still accepts, or −1
/// when every removal is rejected. `models<Drop>()` evaluates the concept on the reduced archetype.
template <unsigned N, class Models>
consteval int first_unchecked_requirement(Models models) {
  int first = -1;
  [&]<unsigned... I>(std::integer_sequence<unsigned, I...>) {
    ((first < 0 && models.template operator()<(1u << I)>() ? first = static_cast<int>(I) : 0), ...);
  }(std::make_integer_sequence<unsigned, N>{});
  return first;
}

/// Distinct empty bases, so an archetype can drop a static data member or a member type.
template <unsigned Bit>
struct dropped {};

// ---- ltl::device (core/concepts.hpp): 0 allocate, 1 deallocate, 2 copy, 3 zero, 4 name, 5 is_host
struct device_name {
  static constexpr const char* name = "archetype";
};
struct device_is_host {
  static constexpr bool is_host = true;
};
template <unsigned Drop = 0>
struct device_archetype : std::conditional_t<keep<Drop, 4>, device_name, dropped<4>>,
                          std::conditional_t<keep<Drop, 5>, device_is_host, dropped<5>> {
  static void* allocate(std::size_t n)
    requires keep<Drop, 0>
  {
    return ::operator new(n);
  }
  static void deallocate(void* p, std::size_t)
    requires keep<Drop, 1>
  {
    ::operator delete(p);
  }
  static void copy(void* dst, const void* src, std::size_t n)
    requires keep<Drop, 2>
  {
    std::memcpy(dst, src, n);
  }
  static void zero(void* p, std::size_t n)
    requires keep<Drop, 3>
  {
    std::memset(p, 0, n);
  }
};
static_assert(ltl::device<device_archetype<>>, "the archetype must model ltl::device");
static_assert(first_unchecked_requirement<6>([]<unsigned D>() { return ltl::device<device_archetype<D>>; }) == -1,
              "ltl::device accepts a type missing one of its documented requirements");
static_assert(ltl::device<ltl::cpu::device>);
static_assert(!ltl::device<int>);

// ---- ltl::real_scalar, ltl::tensor_element (core/concepts.hpp): closed sets, checked by member
static_assert(ltl::real_scalar<float> && ltl::real_scalar<double>);
static_assert(!ltl::real_scalar<long double> && !ltl::real_scalar<int> && !ltl::real_scalar<const float>);
static_assert(ltl::tensor_element<std::uint8_t> && ltl::tensor_element<std::int64_t> && ltl::tensor_element<float>);
static_assert(!ltl::tensor_element<std::string> && !ltl::tensor_element<std::complex<float>>);

// ---- ltl::data::dataset: 0 size, 1 num_classes, 2 image_shape, 3 image, 4 label
template <unsigned Drop = 0>
struct dataset_archetype {
  static constexpr std::array<std::uint8_t, 4> pixels{1, 2, 3, 4};  // two 1×1×2 images
  [[nodiscard]] index_t size() const
    requires keep<Drop, 0>
  {
    return 2;
  }
  [[nodiscard]] index_t num_classes() const
    requires keep<Drop, 1>
  {
    return 2;
  }
  [[nodiscard]] ltl::shape image_shape() const
    requires keep<Drop, 2>
  {
    return ltl::shape{1, 1, 2};
  }
  [[nodiscard]] std::span<const std::uint8_t> image(index_t i) const
    requires keep<Drop, 3>
  {
    return std::span<const std::uint8_t>(pixels).subspan(static_cast<std::size_t>(2 * i), 2);
  }
  [[nodiscard]] std::int64_t label(index_t i) const
    requires keep<Drop, 4>
  {
    return i;
  }
};
static_assert(ltl::data::dataset<dataset_archetype<>>, "the archetype must model ltl::data::dataset");
static_assert(first_unchecked_requirement<5>([]<unsigned D>() { return ltl::data::dataset<dataset_archetype<D>>; }) ==
                  -1,
              "ltl::data::dataset accepts a type missing one of its documented requirements");
static_assert(ltl::data::dataset<ltl::data::image_dataset>);

// ---- ltl::sampling::sampler: 0 epoch_indices, 1 name
template <unsigned Drop = 0>
struct sampler_archetype {
  [[nodiscard]] std::vector<index_t> epoch_indices(index_t epoch) const
    requires keep<Drop, 0>
  {
    return {epoch, 0, 1};
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 1>
  {
    return "sampler archetype";
  }
};
/// The order's element type is part of the contract (the loader indexes with index_t).
struct sampler_with_int_indices {
  [[nodiscard]] std::vector<int> epoch_indices(index_t) const { return {}; }
  [[nodiscard]] std::string name() const { return "int indices"; }
};
static_assert(ltl::sampling::sampler<sampler_archetype<>>, "the archetype must model ltl::sampling::sampler");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::sampling::sampler<sampler_archetype<D>>; }) ==
                  -1,
              "ltl::sampling::sampler accepts a type missing one of its documented requirements");
static_assert(!ltl::sampling::sampler<sampler_with_int_indices>);
static_assert(ltl::sampling::sampler<ltl::sampling::instance_balanced>);
static_assert(ltl::sampling::sampler<ltl::sampling::any_sampler>);

// ---- ltl::losses::loss_policy: 0 apply, 1 name
template <unsigned Drop = 0>
struct loss_policy_archetype {
  double scale = 2.0;
  void apply(const std::vector<double>&, index_t epoch, ltl::loss_terms& t) const
    requires keep<Drop, 0>
  {
    t.scale = scale + static_cast<double>(epoch);
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 1>
  {
    return "loss archetype";
  }
};
static_assert(ltl::losses::loss_policy<loss_policy_archetype<>>, "the archetype must model ltl::losses::loss_policy");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::losses::loss_policy<loss_policy_archetype<D>>; }) ==
                  -1,
              "ltl::losses::loss_policy accepts a type missing one of its documented requirements");
static_assert(ltl::losses::loss_policy<ltl::losses::cross_entropy>);
static_assert(ltl::losses::loss_policy<ltl::losses::any_policy>);

// ---- ltl::mixing::mixing_policy: 0 point, 1 active, 2 name, 3 mix
template <unsigned Drop = 0>
struct mixing_policy_archetype {
  [[nodiscard]] std::string point() const
    requires keep<Drop, 0>
  {
    return "input";
  }
  [[nodiscard]] bool active(index_t) const
    requires keep<Drop, 1>
  {
    return true;
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 2>
  {
    return "mixing archetype";
  }
  [[nodiscard]] ltl::mixing::mix_result<float, ltl::cpu::device> mix(const ltl::variable<float>& h,
                                                                      const ltl::tensor<std::int64_t>&,
                                                                      const std::vector<double>&, ltl::rng&) const
    requires keep<Drop, 3>
  {
    return {h, {}, {}};
  }
};
static_assert(ltl::mixing::mixing_policy<mixing_policy_archetype<>>, "the archetype must model ltl::mixing::mixing_policy");
static_assert(first_unchecked_requirement<4>([]<unsigned D>() { return ltl::mixing::mixing_policy<mixing_policy_archetype<D>>; }) ==
                  -1,
              "ltl::mixing::mixing_policy accepts a type missing one of its documented requirements");
static_assert(ltl::mixing::mixing_policy<ltl::mixing::mfw>);
static_assert(ltl::mixing::mixing_policy<ltl::mixing::any_mixing<float>>);

// ---- ltl::nn::module_like: 0 value_type, 1 device_type, 2 named_parameters, 3 state_dict,
//      4 train, 5 is_training, 6 load_state_dict
struct module_value_type {
  using value_type = float;
};
struct module_device_type {
  using device_type = ltl::cpu::device;
};
template <unsigned Drop = 0>
struct module_archetype : std::conditional_t<keep<Drop, 0>, module_value_type, dropped<0>>,
                          std::conditional_t<keep<Drop, 1>, module_device_type, dropped<1>> {
  using state = std::map<std::string, ltl::tensor<float>>;
  bool training_ = true;
  [[nodiscard]] std::vector<std::pair<std::string, ltl::variable<float>>> named_parameters() const
    requires keep<Drop, 2>
  {
    return {};
  }
  [[nodiscard]] state state_dict() const
    requires keep<Drop, 3>
  {
    return {};
  }
  void train(bool on)
    requires keep<Drop, 4>
  {
    training_ = on;
  }
  [[nodiscard]] bool is_training() const
    requires keep<Drop, 5>
  {
    return training_;
  }
  void load_state_dict(const state&)
    requires keep<Drop, 6>
  {}
};
static_assert(ltl::nn::module_like<module_archetype<>>, "the archetype must model ltl::nn::module_like");
static_assert(first_unchecked_requirement<7>([]<unsigned D>() { return ltl::nn::module_like<module_archetype<D>>; }) == -1,
              "ltl::nn::module_like accepts a type missing one of its documented requirements");
static_assert(ltl::nn::module_like<ltl::nn::resnet_cifar<float>>);

// ---- ltl::optim::lr_schedule: 0 operator(), 1 base
template <unsigned Drop = 0>
struct lr_schedule_archetype {
  double operator()(index_t it) const
    requires keep<Drop, 0>
  {
    return 1.0 / static_cast<double>(it + 1);
  }
  [[nodiscard]] double base() const
    requires keep<Drop, 1>
  {
    return 1.0;
  }
};
static_assert(ltl::optim::lr_schedule<lr_schedule_archetype<>>, "the archetype must model ltl::optim::lr_schedule");
static_assert(first_unchecked_requirement<2>([]<unsigned D>() { return ltl::optim::lr_schedule<lr_schedule_archetype<D>>; }) ==
                  -1,
              "ltl::optim::lr_schedule accepts a type missing one of its documented requirements");
static_assert(ltl::optim::lr_schedule<ltl::optim::constant_lr>);
static_assert(ltl::optim::lr_schedule<ltl::optim::any_schedule>);

// ---- ltl::classifier::feature_source<S, T>: 0 labels, 1 num_classes, 2 dim, 3 batch
template <unsigned Drop = 0, class T = float>
struct feature_source_archetype {
  std::vector<std::int64_t> labels_{0, 1};
  [[nodiscard]] std::span<const std::int64_t> labels() const
    requires keep<Drop, 0>
  {
    return labels_;
  }
  [[nodiscard]] index_t num_classes() const
    requires keep<Drop, 1>
  {
    return 2;
  }
  [[nodiscard]] index_t dim() const
    requires keep<Drop, 2>
  {
    return 3;
  }
  [[nodiscard]] std::pair<ltl::tensor<T>, ltl::tensor<std::int64_t>> batch(index_t, index_t,
                                                                           std::span<const index_t> idx) const
    requires keep<Drop, 3>
  {
    return {ltl::tensor<T>(ltl::shape{static_cast<index_t>(idx.size()), 3}),
            ltl::tensor<std::int64_t>(ltl::shape{static_cast<index_t>(idx.size())})};
  }
};
static_assert(ltl::classifier::feature_source<feature_source_archetype<>, float>,
              "the archetype must model ltl::classifier::feature_source");
static_assert(first_unchecked_requirement<4>([]<unsigned D>() {
                return ltl::classifier::feature_source<feature_source_archetype<D>, float>;
              }) == -1,
              "ltl::classifier::feature_source accepts a type missing one of its documented requirements");
// The feature type is part of the contract: a double source is not a float source.
static_assert(!ltl::classifier::feature_source<feature_source_archetype<0, double>, float>);
static_assert(ltl::classifier::feature_source<ltl::classifier::cached_source<float>, float>);

// ---- ltl::data::subsettable_dataset: 0 size, 1 num_classes, 2 label, 3 name, 4 class_indices,
// 5 subset. A subset keeps the chosen items' labels in the order given.
template <unsigned Drop = 0>
struct subsettable_archetype {
  std::vector<std::int64_t> labels_{0, 1, 1, 0, 1};
  [[nodiscard]] index_t size() const
    requires keep<Drop, 0>
  {
    return static_cast<index_t>(labels_.size());
  }
  [[nodiscard]] index_t num_classes() const
    requires keep<Drop, 1>
  {
    return 2;
  }
  [[nodiscard]] std::int64_t label(index_t i) const
    requires keep<Drop, 2>
  {
    return labels_[static_cast<std::size_t>(i)];
  }
  [[nodiscard]] std::string name() const
    requires keep<Drop, 3>
  {
    return "subsettable archetype";
  }
  [[nodiscard]] std::vector<std::vector<index_t>> class_indices() const
    requires keep<Drop, 4>
  {
    std::vector<std::vector<index_t>> out(2);
    for (std::size_t i = 0; i < labels_.size(); ++i) out[static_cast<std::size_t>(labels_[i])].push_back(static_cast<index_t>(i));
    return out;
  }
  [[nodiscard]] subsettable_archetype subset(std::span<const index_t> idx, const std::string&) const
    requires keep<Drop, 5>
  {
    subsettable_archetype out;
    out.labels_.clear();
    for (index_t i : idx) out.labels_.push_back(labels_[static_cast<std::size_t>(i)]);
    return out;
  }
};
static_assert(ltl::data::subsettable_dataset<subsettable_archetype<>>,
              "the archetype must model ltl::data::subsettable_dataset");
static_assert(first_unchecked_requirement<6>([]<unsigned D>() {
                return ltl::data::subsettable_dataset<subsettable_archetype<D>>;
              }) == -1,
              "ltl::data::subsettable_dataset accepts a type missing one of its documented requirements");
static_assert(ltl::data::subsettable_dataset<ltl::data::image_dataset>);

// ---- ltl::data::batch_source<S, T>: 0 make_batch(indices, epoch, first_position, seed).
// Each item's pixel is a pure function of (index, epoch, position, seed), as the contract asks.
template <unsigned Drop = 0, class T = float>
struct batch_source_archetype {
  [[nodiscard]] ltl::data::batch<T> make_batch(std::span<const index_t> idx, index_t epoch, index_t first,
                                               std::uint64_t seed) const
    requires keep<Drop, 0>
  {
    const auto n = static_cast<index_t>(idx.size());
    ltl::data::batch<T> b{ltl::tensor<T>(ltl::shape{n, 1, 1, 1}), ltl::tensor<std::int64_t>(ltl::shape{n})};
    for (index_t k = 0; k < n; ++k) {
      b.images.data()[k] = static_cast<T>(1000 * idx[static_cast<std::size_t>(k)] + 100 * epoch + 10 * (first + k) +
                                          static_cast<index_t>(seed));
      b.labels.data()[k] = idx[static_cast<std::size_t>(k)] % 2;
    }
    return b;
  }
};
static_assert(ltl::data::batch_source<batch_source_archetype<>, float>,
              "the archetype must model ltl::data::batch_source");
static_assert(!ltl::data::batch_source<batch_source_archetype<1>, float>,
              "ltl::data::batch_source accepts a type without make_batch");
// The batch's element type is part of the contract: a double source is not a float source.
static_assert(!ltl::data::batch_source<batch_source_archetype<0, double>, float>);
static_assert(ltl::data::batch_source<ltl::data::image_pipeline<float>, float>);

// ---- ltl::conv_epilogue_device<T, D>: 0 conv2d_forward_epilogue, found by argument-dependent
// lookup on tensor<T, D> (a function in the device tag's namespace).
template <unsigned Drop = 0>
struct epilogue_device_archetype : ltl::cpu::device {
  static constexpr const char* name = "epilogue archetype";
};
template <unsigned Drop>
  requires keep<Drop, 0>
ltl::tensor<float, epilogue_device_archetype<Drop>> conv2d_forward_epilogue(
    const ltl::tensor<float, epilogue_device_archetype<Drop>>& x, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    const ltl::conv2d_options&, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    const ltl::tensor<float, epilogue_device_archetype<Drop>>&, const ltl::tensor<float, epilogue_device_archetype<Drop>>&,
    bool) {
  return x;
}
static_assert(ltl::device<epilogue_device_archetype<>>);
static_assert(ltl::conv_epilogue_device<float, epilogue_device_archetype<>>,
              "the archetype must model ltl::conv_epilogue_device");
static_assert(!ltl::conv_epilogue_device<float, epilogue_device_archetype<1>>,
              "ltl::conv_epilogue_device accepts a device without conv2d_forward_epilogue");
// The kernel is per element type: a float kernel does not make a double epilogue device.
static_assert(!ltl::conv_epilogue_device<double, epilogue_device_archetype<>>);
static_assert(ltl::conv_epilogue_device<float, ltl::cpu::device> && ltl::conv_epilogue_device<double, ltl::cpu::device>);

}  // namespace

TEST_CASE("type-erased holders accept every model of their concept", "[concepts]") {
  const ltl::sampling::any_sampler s = sampler_archetype<>{};
  CHECK(s.epoch_indices(7) == std::vector<index_t>{7, 0, 1});
  CHECK(s.name() == "sampler archetype");

  const ltl::losses::any_policy p = loss_policy_archetype<>{.scale = 3.0};
  ltl::loss_terms t;
  p.apply({10.0, 1.0}, 2, t);
  CHECK(t.scale == 5.0);
  CHECK(p.name() == "loss archetype");

  const ltl::optim::any_schedule lr = lr_schedule_archetype<>{};
  CHECK(lr(3) == 0.25);
  CHECK(lr.base() == 1.0);
}

TEST_CASE("the batch builder reads any model of the dataset concept", "[concepts]") {
  const dataset_archetype<> d;
  const std::vector<index_t> idx{1, 0};
  const auto b = ltl::data::make_batch<float>(d, idx);
  CHECK(b.images.sizes() == ltl::shape{2, 1, 1, 2});
  CHECK(b.images.to_vector() == std::vector<float>{3.f / 255, 4.f / 255, 1.f / 255, 2.f / 255});
  CHECK(b.labels.to_vector() == std::vector<std::int64_t>{1, 0});
}

TEST_CASE("long-tail subsetting and the loader work on any model of their concepts", "[concepts]") {
  // make_long_tailed needs only the subsettable_dataset contract: 2 of class 0, 1 of class 1.
  const subsettable_archetype<> d;
  const std::vector<index_t> counts{2, 1};
  const auto lt = ltl::data::make_long_tailed(d, counts, 7);
  CHECK(lt.size() == 3);
  CHECK(lt.class_indices()[0].size() == 2);
  CHECK(lt.class_indices()[1].size() == 1);
  CHECK_THROWS_AS(ltl::data::make_long_tailed(d, std::vector<index_t>{3, 1}, 7), ltl::value_error);

  // The loader hands a batch source the positions of its items in the epoch's order.
  const batch_source_archetype<> src;
  ltl::data::loader<float, batch_source_archetype<>> l(src, {.batch_size = 2, .workers = 0, .seed = 3});
  auto run = l.run(5, {4, 1, 2});
  auto b0 = run->next();
  auto b1 = run->next();
  REQUIRE(b0);
  REQUIRE(b1);
  CHECK_FALSE(run->next());
  CHECK(b0->images.to_vector() == std::vector<float>{4503.f, 1513.f});
  CHECK(b1->images.to_vector() == std::vector<float>{2523.f});
  CHECK(b0->labels.to_vector() == std::vector<std::int64_t>{0, 1});
}
