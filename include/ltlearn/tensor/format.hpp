#pragma once
/// \file
/// fmt support for tensors: `fmt::format("{}", t)` prints the shape, device and (for up to
/// 64 elements) the values; larger tensors print a summary.

#include "ltlearn/tensor/tensor.hpp"

#include <fmt/format.h>

#include <string>

namespace ltl::detail {
template <class T>
void format_values(std::string& out, const T* p, const shape& s, const shape& st, int d) {
  if (s.size() == 0) {
    out += fmt::format("{}", p[0]);
    return;
  }
  out += '[';
  for (index_t i = 0; i < s[d]; ++i) {
    if (i) out += ", ";
    if (d + 1 == s.size()) {
      out += fmt::format("{:.6g}", static_cast<double>(p[i * st[d]]));
    } else {
      format_values(out, p + i * st[d], s, st, d + 1);
    }
  }
  out += ']';
}
}  // namespace ltl::detail

/// Formats a tensor as `tensor<cpu>[2, 3] [[1, 2, 3], [4, 5, 6]]`.
template <class T, class D>
struct fmt::formatter<ltl::tensor<T, D>> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  template <class Ctx>
  auto format(const ltl::tensor<T, D>& t, Ctx& ctx) const {
    if (!t.defined()) return fmt::format_to(ctx.out(), "tensor<undefined>");
    auto out = fmt::format_to(ctx.out(), "tensor<{}>{}", D::name, t.sizes());
    if (t.numel() > 64) return fmt::format_to(out, " ({} elements)", t.numel());
    const auto h = t.template to<ltl::host_device>();
    std::string s;
    ltl::detail::format_values(s, h.data(), h.sizes(), h.strides(), 0);
    return fmt::format_to(out, " {}", s);
  }
};
