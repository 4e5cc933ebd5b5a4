// Downstream smoke test: a small autograd graph through the installed headers.
#include <ltlearn/ltlearn.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {
bool close(double a, double b) { return std::abs(a - b) <= 1e-12 * (1 + std::abs(b)); }
}  // namespace

int main() {
  using tensor = ltl::tensor<double>;
  using variable = ltl::variable<double>;
  variable a(tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}));
  variable x(tensor::from({3, 1}, {0.5, -1, 2}), true);

  // y = sum(A x) + sum(x * x) = (0.5 - 2 + 6) + (2 - 5 + 12) + (0.25 + 1 + 4) = 18.75
  // dy/dx = column sums of A + 2x = [5 + 1, 7 - 2, 9 + 4]
  auto y = ltl::sum(ltl::matmul(a, x)) + ltl::sum(x * x);
  y.backward();

  int failures = 0;
  if (!close(y.value().item(), 18.75)) {
    std::printf("y = %.17g, expected 18.75\n", y.value().item());
    ++failures;
  }
  const std::vector<double> expected{6, 5, 13};
  const auto grad = x.grad().to_vector();
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (grad.size() != expected.size() || !close(grad[i], expected[i])) {
      std::printf("dy/dx[%zu] = %.17g, expected %.17g\n", i, i < grad.size() ? grad[i] : 0.0, expected[i]);
      ++failures;
    }
  }
  try {
    (void)(x + variable(tensor::from({2, 1}, {1, 2})));
    std::printf("adding [3, 1] and [2, 1] did not throw\n");
    ++failures;
  } catch (const ltl::shape_error&) {
  }
  std::printf("%s\n", failures == 0 ? "consumer: ok" : "consumer: FAILED");
  return failures == 0 ? 0 : 1;
}
