// Hardened parsers (issue 20, findings 4 and 6) of train/safetensors.hpp and train/checkpoint.hpp:
// JSON numbers and types nlohmann rejects, checkpoint state fields of the wrong type, overflow-safe
// element counts, duplicate names. Every error an ltl::io_error naming the file.
#include <catch2/catch.hpp>
#include <ltlearn/nn/models/resnet_cifar.hpp>
#include <ltlearn/train/checkpoint.hpp>
#include <ltlearn/train/safetensors.hpp>

#include "support/parser_inputs.hpp"

#include <cstdint>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using namespace ltl_test;  // support/parser_inputs.hpp

TEST_CASE("safetensors header numbers and types that nlohmann rejects become io_error", "[parsers][finding4]") {
  // The 24-byte file libFuzzer found: a double overflow is nlohmann::out_of_range, not parse_error.
  const auto overflow = safetensors_bytes("{\"a\":1e999}     ");
  REQUIRE(overflow.size() == 24);
  REQUIRE_THAT(io_message([&] { (void)parse(overflow); }), Contains("bad.safetensors") && Contains("JSON"));
  // Wrong types in tensor entries.
  for (const std::string& h : std::vector<std::string>{R"({"t":{"dtype":1,"shape":[1],"data_offsets":[0,4]}})",
                              R"({"t":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})",
                              R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
                              R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
                              R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})",
                              R"({"t":[1,2,3]})", R"({"__metadata__":{"k":1}})", R"([1])"}) {
    INFO(h);
    REQUIRE_THAT(io_message([&] { (void)parse(safetensors_bytes(h, 4)); }), Contains("bad.safetensors"));
  }
}

TEST_CASE("checkpoint state fields of the wrong JSON type are io_error naming the file", "[parsers][finding4]") {
  temp_dir tmp("parsers_state");
  ltl::nn::resnet_cifar<float> m({.depth = 8, .num_classes = 3, .in_channels = 1, .seed = 1});
  const auto good = tmp / "good.safetensors";
  ltl::train::save_checkpoint(good, static_cast<const ltl::nn::module<float>&>(m), nullptr, {});
  auto data = ltl::io::load_safetensors(good);
  for (const std::string& st : std::vector<std::string>{R"({"epoch":"3","iteration":1})", R"({"epoch":3,"iteration":[1]})",
                               R"({"epoch":3,"iteration":1,"rngs":{"mix":"x"}})",
                               R"({"epoch":3,"iteration":1,"rngs":[1]})", R"([3,1])", R"({"epoch":3e999})",
                               R"({"epoch":3,"epoch":4,"iteration":1})",
                               R"({"epoch":3,"iteration":1,"extra":)" + deep_json(100000) + "}"}) {
    INFO(st.substr(0, 80));
    data.metadata["ltlearn.state"] = st;
    const auto bad = tmp / "bad.safetensors";
    ltl::io::save_safetensors(bad, data);
    REQUIRE_THAT(io_message([&] {
                   (void)ltl::train::load_checkpoint(bad, static_cast<ltl::nn::module<float>&>(m), nullptr);
                 }),
                 Contains("bad.safetensors") && Contains("ltlearn.state"));
  }
}

TEST_CASE("safetensors element counts and byte sizes cannot overflow", "[parsers][finding6]") {
  const std::string two62_16 = std::to_string((std::uint64_t{1} << 62) + 16);  // · 4 bytes wraps to 64
  const std::string two62_1 = std::to_string((std::uint64_t{1} << 62) + 1);
  const std::string two63 = std::to_string(std::uint64_t{1} << 63);
  for (const std::string& shp : std::vector<std::string>{"[" + two62_16 + "]", "[" + two62_1 + "]", "[4294967296,4294967296,4]",
                                "[" + two63 + "]", "[3037000500,3037000500]", "[18446744073709551615]",
                                "[1,1,1,1,1,1,1,1,1]"}) {
    INFO(shp);
    const auto msg = io_message([&] {
      (void)parse(safetensors_bytes(R"({"big":{"dtype":"F32","shape":)" + shp + R"(,"data_offsets":[0,64]}})", 64));
    });
    REQUIRE_THAT(msg, Contains("bad.safetensors") && Contains("'big'"));
  }
  // A valid file with the same layout parses (and 16 floats of zero come back).
  const auto ok = parse(safetensors_bytes(R"({"big":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})", 64));
  REQUIRE(ok.get<float>("big").numel() == 16);
}

TEST_CASE("duplicate names in a safetensors header are rejected", "[parsers][finding6]") {
  const std::string e = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  REQUIRE_THAT(io_message([&] { (void)parse(safetensors_bytes(R"({"w":)" + e + R"(,"w":)" + e + "}", 4)); }),
               Contains("bad.safetensors") && Contains("duplicate") && Contains("'w'"));
  REQUIRE_THAT(io_message([&] {
                 (void)parse(safetensors_bytes(R"({"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4));
               }),
               Contains("duplicate") && Contains("'dtype'"));
  // The same key in different objects is fine.
  REQUIRE(parse(safetensors_bytes(R"({"w":)" + e + R"(,"__metadata__":{"w":"x"}})", 4)).metadata.at("w") == "x");
}
