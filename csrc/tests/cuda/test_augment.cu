// CUDA augmentation against the CPU kernels on the same images and the same
// per-image parameters (and Philox seeds), uint8 and float32, odd sizes: index maps
// (flip, crop, box copies, the uniform table) equal bit for bit; interpolation,
// color arithmetic and normal draws within float rounding (uint8: a count or two).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/check.h"
#include "cpu/augment.h"
#include "cuda/augment.h"
#include "device_buffer.h"

namespace kiln::cuda {
namespace {

template <typename T>
std::vector<T> random_images(const ImageBatch& b, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<T> x(b.n * b.image());
  for (auto& v : x) v = std::is_same_v<T, uint8_t> ? T(u(gen) * 255.99f) : T(u(gen));
  return x;
}

// Every element within atol (NaN equals NaN); atol 0: equal.
template <typename T>
void expect_within(const std::vector<T>& gpu, const std::vector<T>& cpu, double atol,
                   const char* what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double g = gpu[i], c = cpu[i];
    const bool ok = std::isnan(c) ? std::isnan(g) : std::abs(g - c) <= atol;
    if (!ok && ++bad <= 5) ADD_FAILURE() << what << "[" << i << "]: gpu " << g << ", cpu " << c;
  }
  EXPECT_EQ(bad, 0) << what;
}

// The tolerance of an interpolated or color-mixed pixel: uint8 one count, float 1e-5.
template <typename T>
double rounding() {
  return std::is_same_v<T, uint8_t> ? 1.0 : 1e-5;
}

// Runs `cpu` on host buffers and `gpu` on device copies of the same images; returns
// (gpu result, cpu result), `out` elements each.
template <typename T, typename Out = T, typename Cpu, typename Gpu>
std::pair<std::vector<Out>, std::vector<Out>> both(const std::vector<T>& x, int64_t out,
                                                   Cpu&& cpu, Gpu&& gpu) {
  std::vector<Out> y(out);
  cpu(x.data(), y.data());
  DeviceBuffer<T> dx(x);
  DeviceBuffer<Out> dy(out);
  gpu(dx.get(), dy.get());
  return {dy.host(), y};
}

TEST(CudaAugment, UniformTableEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  const int64_t n = 37, k = 7;
  std::vector<double> cpu(n * k);
  kiln::augment_uniform(cpu.data(), n, k, 99, 1000);
  DeviceBuffer<double> gpu(n * k);
  cuda::augment_uniform(gpu.get(), n, k, 99, 1000);
  EXPECT_EQ(gpu.host(), cpu);
}

template <typename T>
void check_geometry(const ImageBatch& b) {
  const auto x = random_images<T>(b, 1);
  std::mt19937 gen(7);
  std::vector<uint8_t> fh(b.n), fv(b.n);
  for (int64_t n = 0; n < b.n; ++n) fh[n] = gen() % 2, fv[n] = gen() % 3 == 0;
  auto [flip_gpu, flip_cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
    kiln::augment_flip(in, out, b, fh.data(), fv.data());
  }, [&](const T* in, T* out) { cuda::augment_flip(in, out, b, fh.data(), fv.data()); });
  expect_within(flip_gpu, flip_cpu, 0, "flip");
  auto [hflip_gpu, hflip_cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
    kiln::augment_flip(in, out, b, fh.data(), nullptr);
  }, [&](const T* in, T* out) { cuda::augment_flip(in, out, b, fh.data(), nullptr); });
  expect_within(hflip_gpu, hflip_cpu, 0, "horizontal flip");

  // Crops reaching into every kind of padding, windows wider than the image too.
  const int64_t oh = b.h + 3, ow = b.w - 1 > 0 ? b.w - 1 : 1;
  std::vector<int64_t> top(b.n), left(b.n);
  for (int64_t n = 0; n < b.n; ++n)
    top[n] = int64_t(gen() % (2 * b.h + 1)) - b.h, left[n] = int64_t(gen() % (b.w + 5)) - 3;
  std::vector<float> fill(b.c);
  for (int64_t c = 0; c < b.c; ++c) fill[c] = std::is_same_v<T, uint8_t> ? 17.4f * c : 0.3f * c;
  for (PadMode mode : {PadMode::kConstant, PadMode::kReflect, PadMode::kEdge}) {
    auto [gpu, cpu] = both(x, b.n * b.c * oh * ow, [&](const T* in, T* out) {
      kiln::augment_crop(in, out, b, oh, ow, top.data(), left.data(), mode, fill.data());
    }, [&](const T* in, T* out) {
      cuda::augment_crop(in, out, b, oh, ow, top.data(), left.data(), mode, fill.data());
    });
    expect_within(gpu, cpu, 0, "crop");
  }

  // Resized crops: shrinking (antialiased or not) and enlarging boxes.
  std::vector<int64_t> boxes(4 * b.n);
  for (int64_t n = 0; n < b.n; ++n) {
    const int64_t h = 1 + gen() % b.h, w = 1 + gen() % b.w;
    boxes[4 * n] = gen() % (b.h - h + 1);
    boxes[4 * n + 1] = gen() % (b.w - w + 1);
    boxes[4 * n + 2] = h;
    boxes[4 * n + 3] = w;
  }
  for (bool antialias : {true, false})
    for (const auto& size : {std::pair<int64_t, int64_t>{5, 3}, {b.h * 2 + 1, b.w + 2}}) {
      const int64_t rh = size.first, rw = size.second;
      auto [gpu, cpu] = both(x, b.n * b.c * rh * rw, [&](const T* in, T* out) {
        kiln::augment_resized_crop(in, out, b, boxes.data(), rh, rw, antialias);
      }, [&](const T* in, T* out) {
        cuda::augment_resized_crop(in, out, b, boxes.data(), rh, rw, antialias);
      });
      expect_within(gpu, cpu, rounding<T>(), "resized_crop");
    }

  // Affine warps: rotation + scale + shift about the centre, some far outside.
  std::vector<double> theta(6 * b.n);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t n = 0; n < b.n; ++n) {
    const double a = u(gen), s = 1 + 0.3 * u(gen);
    double* m = theta.data() + 6 * n;
    m[0] = s * std::cos(a), m[1] = -s * std::sin(a), m[2] = 2.5 * u(gen) + (n % 5 == 4 ? 1e9 : 0);
    m[3] = s * std::sin(a), m[4] = s * std::cos(a), m[5] = 2.5 * u(gen);
  }
  auto [aff_gpu, aff_cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
    kiln::augment_affine(in, out, b, theta.data(), fill.data());
  }, [&](const T* in, T* out) { cuda::augment_affine(in, out, b, theta.data(), fill.data()); });
  expect_within(aff_gpu, aff_cpu, rounding<T>(), "affine");
}

TEST(CudaAugment, GeometryEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_geometry<uint8_t>({7, 3, 13, 11});
  check_geometry<float>({5, 2, 9, 17});
  check_geometry<uint8_t>({3, 1, 1, 6});
  check_geometry<float>({2, 4, 31, 1});
}

template <typename T>
void check_color_jitter(const ImageBatch& b) {
  const auto x = random_images<T>(b, 2);
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> factors(4 * b.n);
  std::vector<int8_t> order(4 * b.n);
  for (int64_t n = 0; n < b.n; ++n) {
    factors[4 * n] = 0.5f + u(gen), factors[4 * n + 1] = 0.5f + u(gen);
    factors[4 * n + 2] = 2 * u(gen), factors[4 * n + 3] = u(gen) - 0.5f;
    for (int k = 0; k < 4; ++k) order[4 * n + k] = int8_t((n + k) % 4);
    if (n % 3 == 1) order[4 * n + 2] = -1;
  }
  auto [gpu, cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
    kiln::augment_color_jitter(in, out, b, factors.data(), order.data());
  }, [&](const T* in, T* out) {
    cuda::augment_color_jitter(in, out, b, factors.data(), order.data());
  });
  // uint8 truncates after every op: a rounding difference may move a count twice.
  expect_within(gpu, cpu, std::is_same_v<T, uint8_t> ? 2.0 : 1e-5, "color_jitter");
}

TEST(CudaAugment, ColorJitterEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_color_jitter<uint8_t>({6, 3, 15, 13});
  check_color_jitter<float>({5, 3, 7, 33});
  check_color_jitter<uint8_t>({4, 1, 9, 9});
  check_color_jitter<float>({3, 1, 17, 5});
}

template <typename In, typename Out>
void check_channel_affine(const ImageBatch& b, bool per_image) {
  const auto x = random_images<In>(b, 3);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-2, 2);
  std::vector<float> scale(per_image ? b.n * b.c : b.c), offset(scale.size());
  for (size_t k = 0; k < scale.size(); ++k) scale[k] = u(gen), offset[k] = 40 * u(gen);
  auto [gpu, cpu] = both<In, Out>(x, b.n * b.image(), [&](const In* in, Out* out) {
    kiln::augment_channel_affine(in, out, b, scale.data(), offset.data(), per_image);
  }, [&](const In* in, Out* out) {
    cuda::augment_channel_affine(in, out, b, scale.data(), offset.data(), per_image);
  });
  expect_within(gpu, cpu, std::is_same_v<Out, uint8_t> ? 1.0 : 1e-4, "channel_affine");
}

TEST(CudaAugment, ChannelAffineEqualsTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_channel_affine<uint8_t, float>({5, 3, 7, 9}, false);
  check_channel_affine<uint8_t, uint8_t>({4, 2, 11, 3}, true);
  check_channel_affine<float, float>({3, 3, 5, 13}, true);
}

template <typename T>
void check_box_fill_and_blend(const ImageBatch& b) {
  const auto x = random_images<T>(b, 4);
  std::mt19937 gen(9);
  std::vector<int64_t> boxes(4 * b.n), partner(b.n);
  std::vector<float> lam(b.n), value(b.c);
  for (int64_t n = 0; n < b.n; ++n) {
    const int64_t h = gen() % (b.h + 1), w = n % 4 == 3 ? 0 : gen() % (b.w + 1);
    boxes[4 * n] = gen() % (b.h - h + 1);
    boxes[4 * n + 1] = gen() % (b.w - w + 1);
    boxes[4 * n + 2] = h;
    boxes[4 * n + 3] = w;
    partner[n] = gen() % b.n;
    lam[n] = float(gen() % 1000) / 1000.0f;
  }
  for (int64_t c = 0; c < b.c; ++c) value[c] = std::is_same_v<T, uint8_t> ? 99.5f + c : 0.25f * c;
  std::vector<BoxSource> sources{BoxSource::kValue, BoxSource::kPartner};
  if (std::is_same_v<T, float>) sources.push_back(BoxSource::kNormal);
  for (BoxSource source : sources) {
    auto [gpu, cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
      kiln::augment_box_fill(in, out, b, boxes.data(), source, value.data(), 21, 300,
                             partner.data());
    }, [&](const T* in, T* out) {
      cuda::augment_box_fill(in, out, b, boxes.data(), source, value.data(), 21, 300, partner.data());
    });
    // Normal draws: the device's log, sqrt and cos against the C library's.
    expect_within(gpu, cpu, source == BoxSource::kNormal ? 1e-5 : 0, "box_fill");
  }
  auto [gpu, cpu] = both(x, b.n * b.image(), [&](const T* in, T* out) {
    kiln::augment_blend_pairs(in, out, b, partner.data(), lam.data());
  }, [&](const T* in, T* out) { cuda::augment_blend_pairs(in, out, b, partner.data(), lam.data()); });
  expect_within(gpu, cpu, rounding<T>(), "blend_pairs");
}

TEST(CudaAugment, BoxFillAndBlendEqualTheCpu) {
  KILN_REQUIRE_DEVICE();
  check_box_fill_and_blend<uint8_t>({9, 3, 13, 7});
  check_box_fill_and_blend<float>({7, 2, 11, 15});
  check_box_fill_and_blend<float>({1, 1, 1, 1});
}

TEST(CudaAugment, ParametersAreCheckedOnTheHostBeforeALaunch) {
  // The CPU kernels' checks, on host tables: no device needed, nothing launched.
  const ImageBatch b{2, 3, 4, 4};
  const int64_t boxes[] = {0, 0, 2, 2, 3, 3, 2, 2};  // the second leaves the image
  EXPECT_THROW(cuda::augment_resized_crop<float>(nullptr, nullptr, b, boxes, 3, 3, true), ValueError);
  const int64_t partner[] = {0, 2};
  const float lam[] = {0.5f, 0.5f};
  EXPECT_THROW(cuda::augment_blend_pairs<uint8_t>(nullptr, nullptr, b, partner, lam), ValueError);
  const double theta[] = {1, 0, 0, 0, 1, 0, 1, 0, NAN, 0, 1, 0};
  const float fill[] = {0, 0, 0};
  EXPECT_THROW(cuda::augment_affine<float>(nullptr, nullptr, b, theta, fill), ValueError);
  const int8_t order[] = {0, 1, 2, 7, 0, 1, 2, 3};
  const float factors[] = {1, 1, 1, 0, 1, 1, 1, 0};
  EXPECT_THROW(cuda::augment_color_jitter<float>(nullptr, nullptr, b, factors, order), ValueError);
  const int64_t inside[] = {0, 0, 1, 1, 0, 0, 1, 1};
  EXPECT_THROW(cuda::augment_box_fill<uint8_t>(nullptr, nullptr, b, inside, BoxSource::kNormal, nullptr,
                                         0, 0, nullptr),
               ValueError);
  EXPECT_THROW(cuda::augment_uniform(nullptr, -1, 2, 0, 0), ValueError);
}

}  // namespace
}  // namespace kiln::cuda
