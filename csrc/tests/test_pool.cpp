#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "common/parallel.h"
#include "cpu/pool.h"

namespace kiln {
namespace {

struct Case {
  Shape input;
  Pool2dWindow w;
};

Pool2dWindow window(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    int64_t dh = 1, int64_t dw = 1, bool ceil_mode = false) {
  Pool2dWindow w;
  w.kernel[0] = kh, w.kernel[1] = kw;
  w.stride[0] = sh, w.stride[1] = sw;
  w.padding[0] = ph, w.padding[1] = pw;
  w.dilation[0] = dh, w.dilation[1] = dw;
  w.ceil_mode = ceil_mode;
  return w;
}

template <typename T>
std::vector<T> random_vector(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<T> v(n);
  for (auto& x : v) x = T(dist(gen));
  return v;
}

// Reference max pooling: the textbook loop over every window tap.
template <typename T>
void naive_max_pool(const std::vector<T>& x, const Pool2dSizes& s, const Pool2dWindow& w,
                    std::vector<T>& y, std::vector<int64_t>& ind) {
  y.assign(s.planes * s.out_h * s.out_w, T(0));
  ind.assign(y.size(), 0);
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t arg = -1;
        for (int64_t kh = 0; kh < w.kernel[0]; ++kh)
          for (int64_t kw = 0; kw < w.kernel[1]; ++kw) {
            const int64_t h = oh * w.stride[0] - w.padding[0] + kh * w.dilation[0];
            const int64_t c = ow * w.stride[1] - w.padding[1] + kw * w.dilation[1];
            if (h < 0 || h >= s.in_h || c < 0 || c >= s.in_w) continue;
            const T v = x[(p * s.in_h + h) * s.in_w + c];
            if (arg < 0) arg = h * s.in_w + c;  // names the max while all are -inf
            if (v > best || std::isnan(v)) {
              best = v;
              arg = h * s.in_w + c;
            }
          }
        y[(p * s.out_h + oh) * s.out_w + ow] = best;
        ind[(p * s.out_h + oh) * s.out_w + ow] = arg;
      }
}

// Reference average pooling, PyTorch's divisor rules written out per window.
template <typename T>
void naive_avg_pool(const std::vector<T>& x, const Pool2dSizes& s, const Pool2dWindow& w,
                    bool include_pad, std::optional<int64_t> divisor, std::vector<T>& y,
                    const std::vector<T>* dy = nullptr, std::vector<T>* dx = nullptr) {
  y.assign(s.planes * s.out_h * s.out_w, T(0));
  if (dx) dx->assign(x.size(), T(0));
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        int64_t h0 = oh * w.stride[0] - w.padding[0], c0 = ow * w.stride[1] - w.padding[1];
        int64_t h1 = std::min(h0 + w.kernel[0], s.in_h + w.padding[0]);
        int64_t c1 = std::min(c0 + w.kernel[1], s.in_w + w.padding[1]);
        const int64_t pool = (h1 - h0) * (c1 - c0);
        h0 = std::max<int64_t>(h0, 0), c0 = std::max<int64_t>(c0, 0);
        h1 = std::min(h1, s.in_h), c1 = std::min(c1, s.in_w);
        if (h0 >= h1 || c0 >= c1) continue;
        const double div = divisor ? *divisor : (include_pad ? pool : (h1 - h0) * (c1 - c0));
        const int64_t o = (p * s.out_h + oh) * s.out_w + ow;
        double sum = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t c = c0; c < c1; ++c) {
            sum += x[(p * s.in_h + h) * s.in_w + c];
            if (dx) (*dx)[(p * s.in_h + h) * s.in_w + c] += T((*dy)[o] / div);
          }
        y[o] = T(sum / div);
      }
}

template <typename T>
void expect_near_all(const std::vector<T>& a, const std::vector<T>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(double(a[i]), double(b[i]), tol) << i;
}

std::vector<Case> max_cases() {
  return {
      {{2, 3, 7, 9}, window(3, 3, 2, 2, 1, 1)},
      {{1, 2, 8, 8}, window(2, 2, 2, 2, 0, 0)},
      {{3, 5, 5}, window(3, 2, 1, 2, 1, 1, 2, 1, true)},
      {{2, 2, 6, 11}, window(2, 3, 3, 2, 1, 1, 1, 2, true)},
      {{1, 1, 9, 9}, window(7, 7, 1, 1, 3, 3)},
      {{2, 1, 4, 4}, window(1, 1, 2, 3, 0, 0)},
      {{1, 1, 2, 2}, window(2, 2, 1, 1, 1, 1, 3, 3)},  // windows wholly in padding
      // 2x2 stride 2 (the pair path): odd sizes drop the last row and column, ceil
      // mode that adds no partial window, and one that does (the generic path)
      {{2, 3, 7, 9}, window(2, 2, 2, 2, 0, 0)},
      {{3, 6, 10}, window(2, 2, 2, 2, 0, 0, 1, 1, true)},
      {{1, 2, 5, 7}, window(2, 2, 2, 2, 0, 0, 1, 1, true)},
  };
}

template <typename T>
void check_max_pool(const Case& c) {
  const Pool2dSizes s = pool2d_sizes("max_pool2d", c.input, c.w);
  const auto x = random_vector<T>(s.planes * s.in_h * s.in_w, 7);
  std::vector<T> want;
  std::vector<int64_t> want_ind;
  naive_max_pool(x, s, c.w, want, want_ind);
  std::vector<T> y(want.size());
  std::vector<int64_t> ind(want.size());
  max_pool2d_forward(x.data(), y.data(), ind.data(), s, c.w);
  EXPECT_EQ(ind, want_ind);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], want[i]) << i;
  std::vector<T> values_only(want.size());
  max_pool2d_forward(x.data(), values_only.data(), static_cast<int64_t*>(nullptr), s, c.w);
  EXPECT_EQ(values_only, want);

  const auto dy = random_vector<T>(y.size(), 8);
  std::vector<T> want_dx(x.size(), T(0)), dx(x.size());
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t o = 0; o < s.out_h * s.out_w; ++o) {
      const int64_t i = want_ind[p * s.out_h * s.out_w + o];
      if (i >= 0) want_dx[p * s.in_h * s.in_w + i] += dy[p * s.out_h * s.out_w + o];
    }
  max_pool2d_backward("max_pool2d_backward", dy.data(), ind.data(), dx.data(), s);
  expect_near_all(dx, want_dx, 1e-5);
}

TEST(MaxPool2d, MatchesNaiveFloatAndDouble) {
  for (const Case& c : max_cases()) {
    check_max_pool<float>(c);
    check_max_pool<double>(c);
  }
}

TEST(MaxPool2d, ThreadCountDoesNotChangeResult) {
  const Case c{{8, 16, 15, 15}, window(3, 3, 2, 2, 1, 1)};
  const Pool2dSizes s = pool2d_sizes("max_pool2d", c.input, c.w);
  const auto x = random_vector<float>(s.planes * s.in_h * s.in_w, 3);
  std::vector<float> y1(s.planes * s.out_h * s.out_w), y2(y1.size());
  std::vector<int64_t> i1(y1.size()), i2(y1.size());
  set_num_threads(1);
  max_pool2d_forward(x.data(), y1.data(), i1.data(), s, c.w);
  set_num_threads(2);
  max_pool2d_forward(x.data(), y2.data(), i2.data(), s, c.w);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(i1, i2);
}

TEST(MaxPool2d, NanWinsAndMinusInfKeepsFirstIndex) {
  const Pool2dWindow w = window(2, 2, 1, 1, 0, 0);
  const Pool2dSizes s = pool2d_sizes("max_pool2d", {1, 1, 2, 3}, w);
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1, nan, 3, nan, 2, 1}, y(2);
  std::vector<int64_t> ind(2);
  max_pool2d_forward(x.data(), y.data(), ind.data(), s, w);
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
  EXPECT_EQ(ind[0], 3);  // the last NaN in scan order, as PyTorch
  EXPECT_EQ(ind[1], 1);
  std::vector<float> values_only(2);
  max_pool2d_forward(x.data(), values_only.data(), static_cast<int64_t*>(nullptr), s, w);
  EXPECT_TRUE(std::isnan(values_only[0]) && std::isnan(values_only[1]));
  x.assign(6, -inf);
  max_pool2d_forward(x.data(), y.data(), ind.data(), s, w);
  EXPECT_EQ(ind[0], 0);
  EXPECT_EQ(ind[1], 1);
}

TEST(MaxPool2d, PairWindowNanAndTiesAsPyTorch) {
  // 2x2 stride 2 windows in scan order a b / c d: the last NaN wins, the first of
  // equal maxima wins, and all -inf names the first element.
  const Pool2dWindow w = window(2, 2, 2, 2, 0, 0);
  const Pool2dSizes s = pool2d_sizes("max_pool2d", {1, 1, 2, 8}, w);
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {nan, 1, 5, 5, -inf, -inf, 0, 2,
                          nan, 2, 1, 5, -inf, -inf, 2, 1};
  std::vector<float> y(4);
  std::vector<int64_t> ind(4);
  max_pool2d_forward(x.data(), y.data(), ind.data(), s, w);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(ind[0], 8);
  EXPECT_EQ(y[1], 5.0f);
  EXPECT_EQ(ind[1], 2);
  EXPECT_EQ(y[2], -inf);
  EXPECT_EQ(ind[2], 4);
  EXPECT_EQ(y[3], 2.0f);
  EXPECT_EQ(ind[3], 7);
}

TEST(MaxPool2d, BackwardRejectsOutOfRangeIndex) {
  const Pool2dSizes s = pool2d_grad_sizes("max_pool2d_backward", {1, 1, 1, 2}, {1, 1, 2, 2});
  std::vector<float> dy = {1, 2}, dx(4);
  std::vector<int64_t> ind = {0, 4};
  EXPECT_THROW(max_pool2d_backward("max_pool2d_backward", dy.data(), ind.data(), dx.data(), s),
               ValueError);
  ind = {-2, 0};
  EXPECT_THROW(max_pool2d_backward("max_pool2d_backward", dy.data(), ind.data(), dx.data(), s),
               ValueError);
}

TEST(AvgPool2d, MatchesNaiveAllDivisorRules) {
  const std::vector<Case> cases = {
      {{2, 3, 7, 9}, window(3, 3, 2, 2, 1, 1)},
      {{1, 2, 5, 5}, window(3, 3, 2, 2, 1, 1, 1, 1, true)},
      {{3, 6, 7}, window(2, 3, 2, 2, 1, 1, 1, 1, true)},
      {{1, 1, 1, 1}, window(2, 2, 2, 2, 1, 1, 1, 1, true)},
      {{2, 2, 9, 8}, window(7, 5, 1, 3, 3, 2)},
  };
  for (const Case& c : cases)
    for (bool include_pad : {true, false})
      for (std::optional<int64_t> divisor : {std::optional<int64_t>{}, std::optional<int64_t>{3}}) {
        const Pool2dSizes s = pool2d_sizes("avg_pool2d", c.input, c.w);
        const auto x = random_vector<double>(s.planes * s.in_h * s.in_w, 5);
        const auto dy = random_vector<double>(s.planes * s.out_h * s.out_w, 6);
        std::vector<double> want, want_dx;
        naive_avg_pool(x, s, c.w, include_pad, divisor, want, &dy, &want_dx);
        std::vector<double> y(want.size()), dx(x.size());
        avg_pool2d_forward(x.data(), y.data(), s, c.w, include_pad, divisor);
        avg_pool2d_backward(dy.data(), dx.data(), s, c.w, include_pad, divisor);
        expect_near_all(y, want, 1e-12);
        expect_near_all(dx, want_dx, 1e-12);
      }
}

TEST(AdaptivePool2d, MatchesNaiveWindows) {
  for (auto [oh, ow] : {std::pair<int64_t, int64_t>{1, 1}, {3, 4}, {5, 7}, {7, 9}, {10, 3}}) {
    const Shape in{2, 3, 7, 9};
    const Pool2dSizes s = adaptive_pool2d_sizes("adaptive_avg_pool2d", in, oh, ow);
    const auto x = random_vector<double>(s.planes * s.in_h * s.in_w, 9);
    const auto dy = random_vector<double>(s.planes * oh * ow, 10);
    std::vector<double> y(s.planes * oh * ow), ymax(y.size()), dx(x.size()), want_dx(x.size());
    std::vector<int64_t> ind(y.size());
    adaptive_avg_pool2d_forward(x.data(), y.data(), s);
    adaptive_max_pool2d_forward(x.data(), ymax.data(), ind.data(), s);
    adaptive_avg_pool2d_backward(dy.data(), dx.data(), s);
    for (int64_t p = 0; p < s.planes; ++p)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t h0 = i * 7 / oh, h1 = ((i + 1) * 7 + oh - 1) / oh;
          const int64_t c0 = j * 9 / ow, c1 = ((j + 1) * 9 + ow - 1) / ow;
          const int64_t o = (p * oh + i) * ow + j;
          double sum = 0, best = -1e300;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t c = c0; c < c1; ++c) {
              sum += x[(p * 7 + h) * 9 + c];
              best = std::max(best, x[(p * 7 + h) * 9 + c]);
              want_dx[(p * 7 + h) * 9 + c] += dy[o] / ((h1 - h0) * (c1 - c0));
            }
          EXPECT_NEAR(y[o], sum / ((h1 - h0) * (c1 - c0)), 1e-12);
          EXPECT_EQ(ymax[o], best);
          EXPECT_EQ(x[p * 63 + ind[o]], best);
        }
    expect_near_all(dx, want_dx, 1e-12);
  }
}

TEST(Pool2dSizes, FollowsPyTorchOutputRule) {
  EXPECT_EQ(pool_output_size(5, 3, 2, 1, 1, true), 3);
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, true), 3);
  EXPECT_EQ(pool_output_size(5, 2, 2, 0, 1, false), 2);
  // ceil_mode: a last window starting in the right padding is dropped.
  EXPECT_EQ(pool_output_size(5, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(pool_output_size(4, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(pool_output_size(1, 2, 2, 1, 1, true), 1);
}

TEST(Pool2dSizes, RejectsBadArguments) {
  const char* op = "max_pool2d";
  EXPECT_THROW(pool2d_sizes(op, {5, 5}, window(2, 2, 2, 2, 0, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 1, 5, 5}, window(2, 2, 2, 2, 0, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 0, 5, 5}, window(2, 2, 2, 2, 0, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(0, 2, 2, 2, 0, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(2, 2, 0, 2, 0, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(2, 2, 2, 2, -1, 0)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(3, 3, 1, 1, 2, 2)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(2, 2, 1, 1, 0, 0, 0, 1)), ValueError);
  EXPECT_THROW(pool2d_sizes(op, {1, 1, 5, 5}, window(7, 7, 1, 1, 0, 0)), ValueError);
  EXPECT_NO_THROW(pool2d_sizes(op, {0, 1, 5, 5}, window(2, 2, 2, 2, 0, 0)));
  EXPECT_THROW(adaptive_pool2d_sizes("adaptive_avg_pool2d", {1, 1, 0, 5}, 1, 1), ValueError);
  EXPECT_THROW(adaptive_pool2d_sizes("adaptive_avg_pool2d", {1, 1, 5, 5}, -1, 1), ValueError);
  EXPECT_THROW(check_divisor_override("avg_pool2d", 0), ValueError);
  try {
    pool2d_sizes(op, {2, 3, 4, 4}, window(5, 5, 1, 1, 0, 0));
    FAIL();
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("max_pool2d"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(2, 3, 4, 4)"), std::string::npos);
  }
}

TEST(Pool2dSizes, GradShapeChecks) {
  const Pool2dWindow w = window(2, 2, 2, 2, 0, 0);
  const Pool2dSizes s = pool2d_sizes("avg_pool2d", {1, 2, 4, 4}, w);
  EXPECT_NO_THROW(check_pool2d_grad("avg_pool2d_backward", {1, 2, 2, 2}, {1, 2, 4, 4}, s));
  EXPECT_THROW(check_pool2d_grad("avg_pool2d_backward", {1, 2, 3, 2}, {1, 2, 4, 4}, s),
               ValueError);
  EXPECT_THROW(pool2d_grad_sizes("max_pool2d_backward", {1, 3, 2, 2}, {1, 2, 4, 4}), ValueError);
  EXPECT_THROW(pool2d_grad_sizes("max_pool2d_backward", {2, 2, 2}, {1, 2, 4, 4}), ValueError);
}

// ---- fractional max pooling

TEST(FractionalMaxPool2d, WindowStartsFollowPyTorchsIntervals) {
  // H = 7, OH = 3, kH = 2, u = 0.5: alpha = 2.5, starts int(1.25) - 1 = 0,
  // int(3.75) - 1 = 2 and H - kH = 5. W = 9, OW = 3, kW = 3, u = 0.25: alpha = 3,
  // starts int(0.75) - 0 = 0, int(3.75) - 0 = 3, 6.
  const Shape shape{1, 1, 7, 9};
  const std::vector<double> samples = {0.25, 0.5};  // (W, H)
  const Pool2dSizes s = fractional_max_pool2d_sizes("fractional_max_pool2d", shape, 2, 3, 3, 3,
                                                    {1, 1, 2});
  std::vector<double> x(63);
  for (int64_t k = 0; k < 63; ++k) x[k] = double(k);  // increasing: the max is the window's last
  std::vector<double> y(9);
  std::vector<int64_t> ind(9);
  fractional_max_pool2d_forward(x.data(), samples.data(), y.data(), ind.data(), s, 2, 3);
  const int64_t rows[3] = {0, 2, 5}, cols[3] = {0, 3, 6};
  for (int oh = 0; oh < 3; ++oh)
    for (int ow = 0; ow < 3; ++ow) {
      const int64_t last = (rows[oh] + 1) * 9 + cols[ow] + 2;
      EXPECT_EQ(ind[oh * 3 + ow], last);
      EXPECT_EQ(y[oh * 3 + ow], double(last));
    }
}

TEST(FractionalMaxPool2d, EachPlaneUsesItsOwnSamplesInFloat) {
  // Two planes (samples for three: N' > N is allowed). H = 6, OH = 4, kH = 2:
  // alpha = 4/3; W = 5, OW = 3, kW = 2: alpha = 1.5. Starts by hand:
  // plane 0, u_h = 0.1: rows 0, 1, 2, 4; u_w = 0.9: cols int(1.35) - 1 = 0, int(2.85) - 1 = 1, 3.
  // plane 1, u_h = 0.7: rows 0, int(2.27) = 2, int(3.6) = 3, 4; u_w = 0.4: cols 0, 2, 3.
  const Shape shape{2, 1, 6, 5};
  const Pool2dSizes s = fractional_max_pool2d_sizes("fractional_max_pool2d", shape, 2, 2, 4, 3,
                                                    {3, 1, 2});
  const auto x = random_vector<float>(60, 7);
  const std::vector<float> samples = {0.9f, 0.1f, 0.4f, 0.7f, 0.5f, 0.5f};
  std::vector<float> y(24);
  std::vector<int64_t> ind(24);
  fractional_max_pool2d_forward(x.data(), samples.data(), y.data(), ind.data(), s, 2, 2);
  const int64_t rows[2][4] = {{0, 1, 2, 4}, {0, 2, 3, 4}}, cols[2][3] = {{0, 1, 3}, {0, 2, 3}};
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t oh = 0; oh < 4; ++oh)
      for (int64_t ow = 0; ow < 3; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t at = -1;
        for (int64_t h = rows[p][oh]; h < rows[p][oh] + 2; ++h)
          for (int64_t w = cols[p][ow]; w < cols[p][ow] + 2; ++w)
            if (x[p * 30 + h * 5 + w] > best) best = x[p * 30 + h * 5 + w], at = h * 5 + w;
        EXPECT_EQ(y[p * 12 + oh * 3 + ow], best) << p << " " << oh << " " << ow;
        EXPECT_EQ(ind[p * 12 + oh * 3 + ow], at) << p << " " << oh << " " << ow;
      }
}

TEST(FractionalMaxPool2d, RejectsBadArgumentsAndSamples) {
  const char* op = "fractional_max_pool2d";
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {1, 1, 7, 7}, 2, 2, 7, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {1, 1, 7, 7}, 0, 2, 3, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {1, 1, 7, 7}, 2, 2, -1, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {7, 7}, 2, 2, 3, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {2, 1, 7, 7}, 2, 2, 3, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {1, 2, 7, 7}, 2, 2, 3, 3, {1, 1, 2}), ValueError);
  EXPECT_THROW(fractional_max_pool2d_sizes(op, {1, 1, 7, 7}, 2, 2, 3, 3, {1, 1, 3}), ValueError);
  EXPECT_NO_THROW(fractional_max_pool2d_sizes(op, {3, 7, 7}, 2, 2, 3, 3, {1, 3, 2}));
  // Samples that do not convert to window starts: NaN, infinite, huge.
  const Pool2dSizes s = fractional_max_pool2d_sizes(op, {1, 1, 7, 7}, 2, 2, 3, 3, {1, 1, 2});
  const std::vector<double> x(49, 1.0);
  std::vector<double> y(9);
  std::vector<int64_t> ind(9);
  for (const double u : {std::nan(""), std::numeric_limits<double>::infinity(), -1e30}) {
    const std::vector<double> bad = {0.5, u};
    EXPECT_THROW(
        fractional_max_pool2d_forward(x.data(), bad.data(), y.data(), ind.data(), s, 2, 2),
        ValueError)
        << u;
  }
}

}  // namespace
}  // namespace kiln
