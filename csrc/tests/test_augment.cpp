#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "common/rng.h"
#include "cpu/augment.h"

namespace kiln {
namespace {

template <typename T>
std::vector<T> ramp(const ImageBatch& b, int modulus = 251) {
  std::vector<T> x(b.n * b.image());
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>((i * 37) % modulus);
  return x;
}

TEST(Augment, UniformRowsFollowPhilox) {
  const int64_t n = 5, k = 7;
  std::vector<double> u(n * k);
  augment_uniform(u.data(), n, k, 99, 1000);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      const uint32_t bits = philox4x32(99, 1000 + r * 2 + j / 4)[j % 4];
      EXPECT_EQ(u[r * k + j], bits / 4294967296.0);
    }
  EXPECT_EQ(augment_uniform_counters(n, k), 10);
}

TEST(Augment, FlipMatchesIndexMapAndTwiceIsIdentity) {
  const ImageBatch b{3, 2, 4, 5};
  const auto x = ramp<float>(b);
  std::vector<float> y(x.size()), z(x.size());
  const uint8_t fh[] = {1, 0, 1}, fv[] = {0, 1, 1};
  augment_flip(x.data(), y.data(), b, fh, fv);
  for (int64_t n = 0; n < b.n; ++n)
    for (int64_t c = 0; c < b.c; ++c)
      for (int64_t i = 0; i < b.h; ++i)
        for (int64_t j = 0; j < b.w; ++j) {
          const int64_t si = fv[n] ? b.h - 1 - i : i, sj = fh[n] ? b.w - 1 - j : j;
          EXPECT_EQ(y[((n * b.c + c) * b.h + i) * b.w + j], x[((n * b.c + c) * b.h + si) * b.w + sj]);
        }
  augment_flip(y.data(), z.data(), b, fh, fv);
  EXPECT_EQ(z, x);
}

// Reference padding: the index map written out case by case.
int64_t padded_index(int64_t p, int64_t size, PadMode mode) {
  if (p >= 0 && p < size) return p;
  if (mode == PadMode::kConstant) return -1;
  if (mode == PadMode::kEdge) return p < 0 ? 0 : size - 1;
  if (size == 1) return 0;
  while (p < 0 || p >= size) p = p < 0 ? -p : 2 * (size - 1) - p;
  return p;
}

TEST(Augment, CropWithEveryPadModeMatchesReference) {
  const ImageBatch b{2, 3, 3, 4};
  const auto x = ramp<uint8_t>(b);
  const int64_t oh = 9, ow = 11;
  const int64_t top[] = {-4, 1}, left[] = {-6, -2};
  const float fill[] = {7, 8, 9};
  for (PadMode mode : {PadMode::kConstant, PadMode::kReflect, PadMode::kEdge}) {
    std::vector<uint8_t> y(b.n * b.c * oh * ow);
    augment_crop(x.data(), y.data(), b, oh, ow, top, left, mode, fill);
    for (int64_t n = 0; n < b.n; ++n)
      for (int64_t c = 0; c < b.c; ++c)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            const int64_t r = padded_index(top[n] + i, b.h, mode);
            const int64_t q = padded_index(left[n] + j, b.w, mode);
            const uint8_t want = r < 0 || q < 0 ? uint8_t(fill[c])
                                                : x[((n * b.c + c) * b.h + r) * b.w + q];
            EXPECT_EQ(y[((n * b.c + c) * oh + i) * ow + j], want) << int(mode) << " " << i << " " << j;
          }
  }
}

TEST(Augment, ResizedCropKeepsConstantsAndCopiesAtUnitScale) {
  const ImageBatch b{2, 1, 6, 7};
  std::vector<float> x(b.n * b.image(), 0.5f);
  const int64_t boxes[] = {1, 2, 4, 3, 0, 0, 6, 7};
  for (bool antialias : {true, false})
    for (auto [oh, ow] : {std::pair<int64_t, int64_t>{2, 2}, {9, 13}, {1, 5}}) {
      std::vector<float> y(b.n * oh * ow);
      augment_resized_crop(x.data(), y.data(), b, boxes, oh, ow, antialias);
      for (float v : y) EXPECT_NEAR(v, 0.5f, 1e-6f);
    }
  const auto r = ramp<uint8_t>(b);
  std::vector<uint8_t> y(r.size());
  const int64_t full[] = {0, 0, 6, 7, 0, 0, 6, 7};
  augment_resized_crop(r.data(), y.data(), b, full, 6, 7, true);
  EXPECT_EQ(y, r);
}

TEST(Augment, ResizedCropUpsamplesARampLinearly) {
  // Without antialias, upsampling samples between pixel centers: a ramp stays a ramp.
  const ImageBatch b{1, 1, 1, 4};
  const float x[] = {0, 2, 4, 6};
  const int64_t box[] = {0, 0, 1, 4};
  std::vector<float> y(8);
  augment_resized_crop(x, y.data(), b, box, 1, 8, false);
  // Output j samples input (j + 0.5) / 2 - 0.5, clamped at the borders.
  const float want[] = {0, 0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(y[j], want[j], 1e-6f) << j;
}

TEST(Augment, AffineIdentityAndShift) {
  const ImageBatch b{2, 3, 5, 6};
  const auto x = ramp<uint8_t>(b);
  std::vector<uint8_t> y(x.size());
  const double theta[] = {1, 0, 0, 0, 1, 0, 1, 0, -2, 0, 1, 1};  // image 1: shift by (+2, -1)
  const float fill[] = {200, 201, 202};
  augment_affine(x.data(), y.data(), b, theta, fill);
  for (int64_t i = 0; i < b.image(); ++i) EXPECT_EQ(y[i], x[i]);
  for (int64_t c = 0; c < b.c; ++c)
    for (int64_t i = 0; i < b.h; ++i)
      for (int64_t j = 0; j < b.w; ++j) {
        const int64_t si = i + 1, sj = j - 2;
        const bool inside = si < b.h && sj >= 0;
        const uint8_t want = inside ? x[b.image() + (c * b.h + si) * b.w + sj] : uint8_t(fill[c]);
        EXPECT_EQ(y[b.image() + (c * b.h + i) * b.w + j], want);
      }
}

TEST(Augment, ColorJitterIdentityFactorsAndGrayPixels) {
  const ImageBatch b{2, 3, 4, 4};
  const auto x = ramp<uint8_t>(b);
  std::vector<uint8_t> y(x.size());
  const float factors[] = {1, 1, 1, 0, 1, 1, 1, 0};
  const int8_t order[] = {0, 1, 2, 3, 3, 2, 1, 0};
  augment_color_jitter(x.data(), y.data(), b, factors, order);
  EXPECT_EQ(y, x);
  // Gray pixels have no hue to turn. (Saturation does move them slightly: torchvision's
  // gray weights .2989 + .587 + .114 sum to 0.9999.)
  std::vector<float> gray(b.n * b.image(), 0.25f), out(gray.size());
  const float turn[] = {1, 1, 1, 0.3f, 1, 1, 1, -0.4f};
  const int8_t ops[] = {3, -1, -1, -1, 3, -1, -1, -1};
  augment_color_jitter(gray.data(), out.data(), b, turn, ops);
  for (float v : out) EXPECT_NEAR(v, 0.25f, 1e-6f);
  const float desaturate[] = {1, 1, 0, 0, 1, 1, 0, 0};
  const int8_t saturation[] = {2, -1, -1, -1, 2, -1, -1, -1};
  augment_color_jitter(gray.data(), out.data(), b, desaturate, saturation);
  for (float v : out) EXPECT_FLOAT_EQ(v, 0.2989f * 0.25f + 0.587f * 0.25f + 0.114f * 0.25f);
}

TEST(Augment, ColorJitterBrightnessClampsAndTruncates) {
  const ImageBatch b{1, 3, 1, 2};
  const uint8_t x[] = {10, 200, 99, 101, 3, 255};
  uint8_t y[6];
  const float factors[] = {1.5f, 1, 1, 0};
  const int8_t order[] = {0, -1, -1, -1};
  augment_color_jitter(x, y, b, factors, order);
  const uint8_t want[] = {15, 255, 148, 151, 4, 255};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]) << i;
}

TEST(Augment, ChannelAffinePerChannelAndPerImage) {
  const ImageBatch b{2, 2, 1, 3};
  const uint8_t x[] = {0, 100, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  float y[12];
  const float scale[] = {2, 0.5f}, offset[] = {-1, 1};
  augment_channel_affine(x, y, b, scale, offset, false);
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(y[i], x[i] * scale[(i / 3) % 2] + offset[(i / 3) % 2]);
  uint8_t z[12];
  const float ones[] = {1, 1, 1, 1}, shift[] = {10.4f, -20, 0.6f, 300};
  augment_channel_affine(x, z, b, ones, shift, true);
  const uint8_t want[] = {10, 110, 255, 0, 0, 0, 5, 6, 7, 255, 255, 255};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(z[i], want[i]) << i;
}

TEST(Augment, BoxFillValuePartnerAndNormal) {
  const ImageBatch b{3, 2, 4, 5};
  const auto x = ramp<float>(b);
  std::vector<float> y(x.size());
  const int64_t boxes[] = {1, 1, 2, 3, 0, 0, 0, 0, 0, 2, 4, 3};
  const float value[] = {-1, -2};
  augment_box_fill(x.data(), y.data(), b, boxes, BoxSource::kValue, value, 0, 0, nullptr);
  const int64_t partner[] = {2, 0, 1};
  std::vector<float> p(x.size());
  augment_box_fill(x.data(), p.data(), b, boxes, BoxSource::kPartner, nullptr, 0, 0, partner);
  for (int64_t n = 0; n < b.n; ++n)
    for (int64_t c = 0; c < b.c; ++c)
      for (int64_t i = 0; i < b.h; ++i)
        for (int64_t j = 0; j < b.w; ++j) {
          const int64_t* box = boxes + 4 * n;
          const bool in = i >= box[0] && i < box[0] + box[2] && j >= box[1] && j < box[1] + box[3];
          const int64_t k = ((n * b.c + c) * b.h + i) * b.w + j;
          EXPECT_EQ(y[k], in ? value[c] : x[k]);
          EXPECT_EQ(p[k], in ? x[k + (partner[n] - n) * b.image()] : x[k]);
        }
  // Normal draws: image n reads its own Philox stream, whatever the thread count.
  const ImageBatch big{64, 3, 16, 16};
  std::vector<float> zeros(big.n * big.image(), 0.0f), a(zeros.size()), c(zeros.size());
  std::vector<int64_t> whole(4 * big.n);
  for (int64_t n = 0; n < big.n; ++n) {
    whole[4 * n + 2] = 16;
    whole[4 * n + 3] = 16;
  }
  set_num_threads(1);
  augment_box_fill(zeros.data(), a.data(), big, whole.data(), BoxSource::kNormal, nullptr, 5, 9, nullptr);
  set_num_threads(2);
  augment_box_fill(zeros.data(), c.data(), big, whole.data(), BoxSource::kNormal, nullptr, 5, 9, nullptr);
  EXPECT_EQ(a, c);
  double sum = 0, squares = 0;
  for (float v : a) sum += v, squares += double(v) * v;
  const double mean = sum / a.size();
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(squares / a.size() - mean * mean, 1.0, 0.03);
  Philox first(5, 9 + 3 * augment_normal_counters(ImageBatch{1, 3, 16, 16}));
  EXPECT_EQ(a[3 * big.image()], first.normal());
}

TEST(Augment, BlendPairsRoundsForBytes) {
  const ImageBatch b{2, 1, 1, 2};
  const uint8_t x[] = {0, 255, 100, 51};
  uint8_t y[4];
  const int64_t partner[] = {1, 0};
  const float lam[] = {0.5f, 0.25f};
  augment_blend_pairs(x, y, b, partner, lam);
  EXPECT_EQ(y[0], 50);   // 0.5*0 + 0.5*100
  EXPECT_EQ(y[1], 153);  // 0.5*255 + 0.5*51
  EXPECT_EQ(y[2], 25);   // 0.25*100 + 0.75*0
  EXPECT_EQ(y[3], 204);  // 0.25*51 + 0.75*255 = 204
}

TEST(Augment, ResultsDoNotDependOnThreadCount) {
  const ImageBatch b{40, 3, 24, 24};
  std::vector<float> x(b.n * b.image());
  for (size_t i = 0; i < x.size(); ++i) x[i] = uniform01(philox4x32(1, i)[0]);
  std::vector<float> factors(4 * b.n);
  std::vector<int8_t> order(4 * b.n);
  std::vector<double> theta(6 * b.n);
  for (int64_t n = 0; n < b.n; ++n) {
    const float f[] = {0.7f + 0.01f * n, 1.3f - 0.01f * n, 0.5f + 0.02f * n, 0.01f * n - 0.2f};
    for (int k = 0; k < 4; ++k) factors[4 * n + k] = f[k], order[4 * n + k] = int8_t((n + k) % 4);
    const double a = 0.05 * n;
    const double m[] = {std::cos(a), -std::sin(a), 3, std::sin(a), std::cos(a), -2};
    for (int k = 0; k < 6; ++k) theta[6 * n + k] = m[k];
  }
  const float fill[] = {0, 0.5f, 1};
  std::vector<float> j1(x.size()), j2(x.size()), a1(x.size()), a2(x.size());
  set_num_threads(1);
  augment_color_jitter(x.data(), j1.data(), b, factors.data(), order.data());
  augment_affine(x.data(), a1.data(), b, theta.data(), fill);
  set_num_threads(2);
  augment_color_jitter(x.data(), j2.data(), b, factors.data(), order.data());
  augment_affine(x.data(), a2.data(), b, theta.data(), fill);
  EXPECT_EQ(j1, j2);
  EXPECT_EQ(a1, a2);
}

TEST(Augment, BadArgumentsThrow) {
  const ImageBatch b{1, 3, 4, 4};
  std::vector<float> x(b.image()), y(b.image());
  const float fill[] = {0, 0, 0};
  const int64_t zero[] = {0};
  EXPECT_THROW(augment_flip(x.data(), y.data(), ImageBatch{1, 0, 4, 4}, nullptr, nullptr),
               ValueError);
  EXPECT_THROW(augment_crop(x.data(), y.data(), b, 0, 2, zero, zero, PadMode::kEdge, fill),
               ValueError);
  const int64_t outside[] = {2, 2, 3, 3};
  EXPECT_THROW(augment_resized_crop(x.data(), y.data(), b, outside, 2, 2, true), ValueError);
  EXPECT_THROW(augment_box_fill(x.data(), y.data(), b, outside, BoxSource::kValue, fill, 0, 0,
                                nullptr),
               ValueError);
  const int64_t box[] = {0, 0, 1, 1}, bad_partner[] = {1};
  EXPECT_THROW(augment_box_fill(x.data(), y.data(), b, box, BoxSource::kPartner, nullptr, 0, 0,
                                bad_partner),
               ValueError);
  std::vector<uint8_t> bytes(b.image()), out(b.image());
  EXPECT_THROW(augment_box_fill(bytes.data(), out.data(), b, box, BoxSource::kNormal, nullptr, 0,
                                0, nullptr),
               ValueError);
  const float lam[] = {0.5f};
  EXPECT_THROW(augment_blend_pairs(x.data(), y.data(), b, bad_partner, lam), ValueError);
  const double nan_theta[] = {NAN, 0, 0, 0, 1, 0};
  EXPECT_THROW(augment_affine(x.data(), y.data(), b, nan_theta, fill), ValueError);
  const float factors[] = {1, 1, 1, 0};
  const int8_t bad_order[] = {4, -1, -1, -1};
  EXPECT_THROW(augment_color_jitter(x.data(), y.data(), b, factors, bad_order), ValueError);
  const int8_t order[] = {0, -1, -1, -1};
  EXPECT_THROW(augment_color_jitter(x.data(), y.data(), ImageBatch{1, 2, 4, 4}, factors, order),
               ValueError);
  std::vector<double> u(4);
  EXPECT_THROW(augment_uniform(u.data(), -1, 4, 0, 0), ValueError);
}

}  // namespace
}  // namespace kiln
