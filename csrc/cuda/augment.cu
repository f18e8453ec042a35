// Augmentation kernels on the GPU (augment.h): the per-image parameters are checked
// on the host by the CPU kernels' checks, copied to the device, and every output
// element is computed by one thread with cpu/augment_pixel.h's per-pixel math.
#include "cuda/augment.h"

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "common/check.h"
#include "common/rng.h"
#include "cpu/augment_detail.h"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

namespace ad = kiln::augment_detail;

#define KILN_GRID_STRIDE(e, total)                                                  \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (total); \
       e += int64_t(gridDim.x) * blockDim.x)

#define KILN_BLOCK_STRIDE(p, total) \
  for (int64_t p = threadIdx.x; p < (total); p += blockDim.x)

// A host parameter table copied to the current device for one call. The block goes
// back to the cache when the call returns: the kernels reading it are queued on the
// device's one stream, before any later work that could reuse the block.
template <typename T>
class DeviceTable {
 public:
  DeviceTable(const T* host, int64_t count) {
    if (host == nullptr || count <= 0) return;
    device_ = current_device();
    ptr_ = static_cast<T*>(device_malloc(sizeof(T) * count, device_));
    KILN_CUDA_CHECK(cudaMemcpyAsync(ptr_, host, sizeof(T) * count, cudaMemcpyHostToDevice,
                                    stream(device_)));
  }
  explicit DeviceTable(const std::vector<T>& host)
      : DeviceTable(host.data(), static_cast<int64_t>(host.size())) {}
  ~DeviceTable() {
    if (ptr_ != nullptr) device_free(ptr_, device_);
  }
  DeviceTable(const DeviceTable&) = delete;
  DeviceTable& operator=(const DeviceTable&) = delete;

  const T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  int device_ = 0;
};

cudaStream_t current_stream() { return stream(current_device()); }

// ---------------------------------------------------------------------- kernels

__global__ void uniform_kernel(double* out, int64_t n, int64_t k, uint64_t seed,
                               uint64_t offset) {
  const int64_t per_row = (k + 3) / 4;
  KILN_GRID_STRIDE(e, n * k) {
    const int64_t r = e / k, j = e % k;
    const uint32_t bits =
        philox4x32(seed, offset + static_cast<uint64_t>(r * per_row + j / 4))[j % 4];
    out[e] = bits * (1.0 / 4294967296.0);
  }
}

template <typename T>
__global__ void flip_kernel(const T* x, T* y, ImageBatch b, const uint8_t* horizontal,
                            const uint8_t* vertical) {
  KILN_GRID_STRIDE(e, b.n * b.image()) {
    const int64_t j = e % b.w, i = e / b.w % b.h, nc = e / b.plane(), n = nc / b.c;
    const int64_t si = vertical && vertical[n] ? b.h - 1 - i : i;
    const int64_t sj = horizontal && horizontal[n] ? b.w - 1 - j : j;
    y[e] = x[(nc * b.h + si) * b.w + sj];
  }
}

template <typename T>
__global__ void crop_kernel(const T* x, T* y, ImageBatch b, int64_t out_h, int64_t out_w,
                            const int64_t* top, const int64_t* left, PadMode mode,
                            const float* fill) {
  KILN_GRID_STRIDE(e, b.n * b.c * out_h * out_w) {
    const int64_t j = e % out_w, i = e / out_w % out_h, nc = e / (out_h * out_w);
    const int64_t n = nc / b.c, c = nc % b.c;
    const int64_t r = ad::pad_index(top[n] + i, b.h, mode);
    const int64_t q = ad::pad_index(left[n] + j, b.w, mode);
    y[e] = r < 0 || q < 0 ? ad::to_pixel<T>(fill[c]) : x[(nc * b.h + r) * b.w + q];
  }
}

// One axis' resampling weights of every image: row n*out + i holds output i of
// image n (ad::Taps' first, count and `stride` weights).
struct TapTable {
  const int64_t* first;
  const int64_t* count;
  const float* weight;
  int64_t stride;
};

// The CPU's two passes in one sum: each tap row sum (horizontal) in tap order,
// then the vertical taps in order, so the float additions are the CPU's.
template <typename T>
__global__ void resized_crop_kernel(const T* x, T* y, ImageBatch b, const int64_t* boxes,
                                    int64_t out_h, int64_t out_w, TapTable horizontal,
                                    TapTable vertical) {
  KILN_GRID_STRIDE(e, b.n * b.c * out_h * out_w) {
    const int64_t j = e % out_w, i = e / out_w % out_h, nc = e / (out_h * out_w);
    const int64_t n = nc / b.c;
    const int64_t rh = n * out_w + j, rv = n * out_h + i;
    const T* src = x + nc * b.plane() + boxes[4 * n] * b.w + boxes[4 * n + 1] +
                   horizontal.first[rh];
    const float* wh = horizontal.weight + rh * horizontal.stride;
    const float* wv = vertical.weight + rv * vertical.stride;
    float acc = 0;
    for (int64_t kv = 0; kv < vertical.count[rv]; ++kv) {
      const T* p = src + (vertical.first[rv] + kv) * b.w;
      float row = 0;
      for (int64_t kh = 0; kh < horizontal.count[rh]; ++kh)
        row += wh[kh] * static_cast<float>(p[kh]);
      acc += wv[kv] * row;
    }
    y[e] = ad::to_pixel<T>(acc);
  }
}

template <typename T>
__global__ void affine_kernel(const T* x, T* y, ImageBatch b, const double* theta,
                              const float* fill) {
  KILN_GRID_STRIDE(e, b.n * b.image()) {
    const int64_t j = e % b.w, i = e / b.w % b.h, nc = e / b.plane();
    const int64_t n = nc / b.c, c = nc % b.c;
    const double* m = theta + 6 * n;
    const double row_x = m[1] * i + m[2], row_y = m[4] * i + m[5];
    const double xs = m[0] * j + row_x, ys = m[3] * j + row_y;
    y[e] = ad::to_pixel<T>(ad::bilinear_sample(x + nc * b.plane(), b.h, b.w, xs, ys, fill[c]));
  }
}

// Block per image (blocks stride over the batch): the image is copied to y, then
// each op of its order rewrites y in place, pixel p always by thread p % blockDim
// (its channels together), so only contrast's block sum crosses threads. Values
// between ops are exact in T: uint8 ones are integers after every (truncating) op.
template <typename T>
__global__ void color_jitter_kernel(const T* x, T* y, ImageBatch b, const float* factors,
                                    const int8_t* order) {
  constexpr bool truncate = std::is_same_v<T, uint8_t>;
  const float bound = truncate ? 255.0f : 1.0f;
  const int64_t hw = b.plane();
  for (int64_t n = blockIdx.x; n < b.n; n += gridDim.x) {
    const T* src = x + n * b.image();
    T* dst = y + n * b.image();
    KILN_BLOCK_STRIDE(p, hw)
    for (int64_t c = 0; c < b.c; ++c) dst[c * hw + p] = src[c * hw + p];
    const float* f = factors + 4 * n;
    // x <- clamp(keep x + mixed), then the truncation of uint8 images.
    auto blend = [&](int64_t p, float keep, float mixed) {
      for (int64_t c = 0; c < b.c; ++c) {
        float v = ad::blend_value(keep, static_cast<float>(dst[c * hw + p]), mixed, bound);
        if constexpr (truncate) v = floorf(v);
        dst[c * hw + p] = static_cast<T>(v);
      }
    };
    auto gray = [&](int64_t p) {
      if (b.c == 1) return static_cast<float>(dst[p]);
      return ad::gray_value<truncate>(static_cast<float>(dst[p]), static_cast<float>(dst[hw + p]),
                                      static_cast<float>(dst[2 * hw + p]));
    };
    for (int k = 0; k < 4; ++k) {
      const int op = order[4 * n + k];
      if (op == kBrightness) {
        const float keep = f[kBrightness], mixed = (1 - keep) * 0.0f;
        KILN_BLOCK_STRIDE(p, hw) blend(p, keep, mixed);
      } else if (op == kContrast) {
        double partial = 0;
        KILN_BLOCK_STRIDE(p, hw) partial += gray(p);
        const float mean = static_cast<float>(block_sum(partial) / hw);
        const float keep = f[kContrast], mixed = (1 - keep) * mean;
        KILN_BLOCK_STRIDE(p, hw) blend(p, keep, mixed);
      } else if (op == kSaturation && b.c == 3) {
        const float keep = f[kSaturation];
        KILN_BLOCK_STRIDE(p, hw) blend(p, keep, (1 - keep) * gray(p));
      } else if (op == kHue && b.c == 3) {
        KILN_BLOCK_STRIDE(p, hw) {
          float r = dst[p], g = dst[hw + p], bl = dst[2 * hw + p];
          ad::hue_pixel<truncate>(r, g, bl, f[kHue], 1.0f / bound);
          dst[p] = static_cast<T>(r);
          dst[hw + p] = static_cast<T>(g);
          dst[2 * hw + p] = static_cast<T>(bl);
        }
      }
    }
    __syncthreads();  // the next image's first block sum reuses the shared partials
  }
}

template <typename In, typename Out>
__global__ void channel_affine_kernel(const In* x, Out* y, ImageBatch b, const float* scale,
                                      const float* offset, bool per_image) {
  KILN_GRID_STRIDE(e, b.n * b.image()) {
    const int64_t nc = e / b.plane(), k = per_image ? nc : nc % b.c;
    y[e] = ad::to_pixel<Out>(static_cast<float>(x[e]) * scale[k] + offset[k]);
  }
}

// Element k of image n's box (in c, row, column order) takes normal k of the image's
// stream Philox(seed, offset + n * ceil(C*H*W/2)), the CPU's draw order.
template <typename T>
__global__ void box_fill_kernel(const T* x, T* y, ImageBatch b, const int64_t* boxes,
                                BoxSource source, const float* value, uint64_t seed,
                                uint64_t offset, const int64_t* partner) {
  const int64_t per_image = (b.image() + 1) / 2;
  KILN_GRID_STRIDE(e, b.n * b.image()) {
    const int64_t j = e % b.w, i = e / b.w % b.h, nc = e / b.plane();
    const int64_t n = nc / b.c, c = nc % b.c;
    const int64_t* box = boxes + 4 * n;
    const int64_t top = box[0], left = box[1], bh = box[2], bw = box[3];
    if (i < top || i >= top + bh || j < left || j >= left + bw) {
      y[e] = x[e];
    } else if (source == BoxSource::kValue) {
      y[e] = ad::to_pixel<T>(value[c]);
    } else if (source == BoxSource::kNormal) {
      const int64_t k = (c * bh + (i - top)) * bw + (j - left);
      y[e] = static_cast<T>(philox_normal(seed, offset + static_cast<uint64_t>(n * per_image),
                                          static_cast<uint64_t>(k)));
    } else {
      y[e] = x[((partner[n] * b.c + c) * b.h + i) * b.w + j];
    }
  }
}

template <typename T>
__global__ void blend_pairs_kernel(const T* x, T* y, ImageBatch b, const int64_t* partner,
                                   const float* lam) {
  const int64_t size = b.image();
  KILN_GRID_STRIDE(e, b.n * size) {
    const int64_t n = e / size;
    const float l = lam[n], m = 1.0f - lam[n];
    y[e] = ad::to_pixel<T>(l * static_cast<float>(x[e]) +
                           m * static_cast<float>(x[partner[n] * size + e % size]));
  }
}

// Packs every image's taps along one axis (in_size[n] inputs -> out_size outputs).
struct PackedTaps {
  std::vector<int64_t> first, count;
  std::vector<float> weight;
  int64_t stride = 0;

  PackedTaps(const int64_t* boxes, int64_t images, int size_field, int64_t out_size,
             bool antialias) {
    std::vector<ad::Taps> taps;
    taps.reserve(images);
    for (int64_t n = 0; n < images; ++n) {
      taps.emplace_back(boxes[4 * n + size_field], out_size, antialias);
      stride = std::max(stride, taps.back().stride);
    }
    first.resize(images * out_size);
    count.resize(images * out_size);
    weight.assign(images * out_size * stride, 0.0f);
    for (int64_t n = 0; n < images; ++n)
      for (int64_t i = 0; i < out_size; ++i) {
        const int64_t row = n * out_size + i;
        first[row] = taps[n].first[i];
        count[row] = taps[n].count[i];
        std::copy_n(taps[n].weight.begin() + i * taps[n].stride, taps[n].count[i],
                    weight.begin() + row * stride);
      }
  }
};

}  // namespace

void augment_uniform(double* out, int64_t n, int64_t k, uint64_t seed, uint64_t offset) {
  check_uniform_table(n, k);
  if (n * k == 0) return;
  uniform_kernel<<<grid_for(n * k), kThreads, 0, current_stream()>>>(out, n, k, seed, offset);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_flip(const T* x, T* y, const ImageBatch& b, const uint8_t* horizontal,
                  const uint8_t* vertical) {
  check_image_batch("augment_flip", b);
  if (b.n == 0) return;
  const DeviceTable<uint8_t> fh(horizontal, b.n), fv(vertical, b.n);
  flip_kernel<<<grid_for(b.n * b.image()), kThreads, 0, current_stream()>>>(x, y, b, fh.get(),
                                                                           fv.get());
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_crop(const T* x, T* y, const ImageBatch& b, int64_t out_h, int64_t out_w,
                  const int64_t* top, const int64_t* left, PadMode mode, const float* fill) {
  check_crop(b, out_h, out_w);
  if (b.n == 0) return;
  const DeviceTable<int64_t> t(top, b.n), l(left, b.n);
  const DeviceTable<float> f(fill, b.c);
  crop_kernel<<<grid_for(b.n * b.c * out_h * out_w), kThreads, 0, current_stream()>>>(
      x, y, b, out_h, out_w, t.get(), l.get(), mode, f.get());
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_resized_crop(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                          int64_t out_h, int64_t out_w, bool antialias) {
  check_resized_crop(b, boxes, out_h, out_w);
  if (b.n == 0) return;
  const PackedTaps h(boxes, b.n, 3, out_w, antialias), v(boxes, b.n, 2, out_h, antialias);
  const DeviceTable<int64_t> d_boxes(boxes, 4 * b.n), h_first(h.first), h_count(h.count),
      v_first(v.first), v_count(v.count);
  const DeviceTable<float> h_weight(h.weight), v_weight(v.weight);
  resized_crop_kernel<<<grid_for(b.n * b.c * out_h * out_w), kThreads, 0, current_stream()>>>(
      x, y, b, d_boxes.get(), out_h, out_w,
      TapTable{h_first.get(), h_count.get(), h_weight.get(), h.stride},
      TapTable{v_first.get(), v_count.get(), v_weight.get(), v.stride});
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_affine(const T* x, T* y, const ImageBatch& b, const double* theta,
                    const float* fill) {
  check_affine(b, theta);
  if (b.n == 0) return;
  const DeviceTable<double> m(theta, 6 * b.n);
  const DeviceTable<float> f(fill, b.c);
  affine_kernel<<<grid_for(b.n * b.image()), kThreads, 0, current_stream()>>>(x, y, b, m.get(),
                                                                             f.get());
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_color_jitter(const T* x, T* y, const ImageBatch& b, const float* factors,
                          const int8_t* order) {
  check_color_jitter(b, factors, order);
  if (b.n == 0) return;
  const DeviceTable<float> f(factors, 4 * b.n);
  const DeviceTable<int8_t> o(order, 4 * b.n);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(b.n, 65535));
  color_jitter_kernel<<<blocks, kThreads, 0, current_stream()>>>(x, y, b, f.get(), o.get());
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename In, typename Out>
void augment_channel_affine(const In* x, Out* y, const ImageBatch& b, const float* scale,
                            const float* offset, bool per_image) {
  check_image_batch("augment_channel_affine", b);
  if (b.n == 0) return;
  const int64_t count = per_image ? b.n * b.c : b.c;
  const DeviceTable<float> s(scale, count), o(offset, count);
  channel_affine_kernel<<<grid_for(b.n * b.image()), kThreads, 0, current_stream()>>>(
      x, y, b, s.get(), o.get(), per_image);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_box_fill(const T* x, T* y, const ImageBatch& b, const int64_t* boxes,
                      BoxSource source, const float* value, uint64_t seed, uint64_t offset,
                      const int64_t* partner) {
  check_box_fill(b, boxes, source, partner, std::is_same_v<T, float>);
  if (b.n == 0) return;
  const DeviceTable<int64_t> d_boxes(boxes, 4 * b.n);
  const DeviceTable<float> v(source == BoxSource::kValue ? value : nullptr, b.c);
  const DeviceTable<int64_t> p(source == BoxSource::kPartner ? partner : nullptr, b.n);
  box_fill_kernel<<<grid_for(b.n * b.image()), kThreads, 0, current_stream()>>>(
      x, y, b, d_boxes.get(), source, v.get(), seed, offset, p.get());
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void augment_blend_pairs(const T* x, T* y, const ImageBatch& b, const int64_t* partner,
                         const float* lam) {
  check_blend_pairs(b, partner);
  if (b.n == 0) return;
  const DeviceTable<int64_t> p(partner, b.n);
  const DeviceTable<float> l(lam, b.n);
  blend_pairs_kernel<<<grid_for(b.n * b.image()), kThreads, 0, current_stream()>>>(
      x, y, b, p.get(), l.get());
  KILN_CUDA_CHECK_LAUNCH();
}

#define KILN_INSTANTIATE(T)                                                                     \
  template void augment_flip<T>(const T*, T*, const ImageBatch&, const uint8_t*, const uint8_t*); \
  template void augment_crop<T>(const T*, T*, const ImageBatch&, int64_t, int64_t,             \
                                const int64_t*, const int64_t*, PadMode, const float*);        \
  template void augment_resized_crop<T>(const T*, T*, const ImageBatch&, const int64_t*,       \
                                        int64_t, int64_t, bool);                               \
  template void augment_affine<T>(const T*, T*, const ImageBatch&, const double*, const float*); \
  template void augment_color_jitter<T>(const T*, T*, const ImageBatch&, const float*,         \
                                        const int8_t*);                                        \
  template void augment_box_fill<T>(const T*, T*, const ImageBatch&, const int64_t*, BoxSource, \
                                    const float*, uint64_t, uint64_t, const int64_t*);         \
  template void augment_blend_pairs<T>(const T*, T*, const ImageBatch&, const int64_t*,        \
                                       const float*);
KILN_INSTANTIATE(uint8_t)
KILN_INSTANTIATE(float)
#undef KILN_INSTANTIATE

template void augment_channel_affine<uint8_t, uint8_t>(const uint8_t*, uint8_t*,
                                                       const ImageBatch&, const float*,
                                                       const float*, bool);
template void augment_channel_affine<uint8_t, float>(const uint8_t*, float*, const ImageBatch&,
                                                     const float*, const float*, bool);
template void augment_channel_affine<float, float>(const float*, float*, const ImageBatch&,
                                                   const float*, const float*, bool);

}  // namespace kiln::cuda
