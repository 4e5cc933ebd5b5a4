#pragma once
// Archetypes of data/dataset.hpp: ltl::data::dataset and ltl::data::subsettable_dataset.
#include "support/archetype.hpp"

#include <ltlearn/data/dataset.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ltl_test {

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

}  // namespace ltl_test
