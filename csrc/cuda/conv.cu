// 2-D convolution by im2col / col2im kernels and cuBLAS products (see conv.h).
#include "cuda/conv.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifdef KILN_CUDNN
#include <cudnn.h>
#endif

#include "cuda/reduce.cuh"
#include "cuda/linear.h"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

// Elements of workspace one chunk of images may use (per buffer kind, see below).
constexpr int64_t kWorkspaceElements = int64_t{1} << 25;

// Device memory for one call, from the caching allocator. Freed as soon as the
// work is enqueued: every kernel runs on the device's one stream, so a block
// handed out again is only written after this call's kernels have read it.
template <typename T>
class Workspace {
 public:
  explicit Workspace(int64_t n)
      : device_(current_device()),
        p_(n > 0 ? static_cast<T*>(device_malloc(sizeof(T) * n, device_)) : nullptr) {}
  ~Workspace() {
    if (p_ != nullptr) device_free(p_, device_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* get() const { return p_; }

 private:
  int device_;
  T* p_;
};

#define KILN_GRID_STRIDE(e, total)                                                 \
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < (total); \
       e += int64_t(gridDim.x) * blockDim.x)

// col[n*img_stride + ((c*R + r)*S + s)*row_stride + p*Q + q] = x[n, c, ih, iw],
// ih = p*stride_h - pad_h + r*dil_h (iw alike), 0 outside the image; n < images.
template <typename T>
__global__ void im2col(ConvGeometry g, const T* x, T* col, int64_t images, int64_t img_stride,
                       int64_t row_stride) {
  const int64_t PQ = g.P * g.Q, RS = g.R * g.S;
  KILN_GRID_STRIDE(e, images * g.C * RS * PQ) {
    const int64_t pq = e % PQ, crs = e / PQ % (g.C * RS), n = e / (PQ * g.C * RS);
    const int64_t p = pq / g.Q, q = pq % g.Q;
    const int64_t c = crs / RS, r = crs / g.S % g.R, s = crs % g.S;
    const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
    const int64_t iw = q * g.stride_w - g.pad_w + s * g.dil_w;
    const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
    col[n * img_stride + crs * row_stride + pq] =
        inside ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : T(0);
  }
}

// The adjoint: x[n, c, ih, iw] = sum of the col entries im2col would read it into,
// taps in (r, s) order; every x element of the `images` is written.
template <typename T>
__global__ void col2im(ConvGeometry g, const T* col, T* x, int64_t images, int64_t img_stride,
                       int64_t row_stride) {
  KILN_GRID_STRIDE(e, images * g.C * g.H * g.W) {
    const int64_t iw = e % g.W, ih = e / g.W % g.H, c = e / (g.H * g.W) % g.C;
    const int64_t n = e / (g.C * g.H * g.W);
    T acc = 0;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t ph = ih + g.pad_h - r * g.dil_h;
      if (ph < 0 || ph % g.stride_h != 0 || ph / g.stride_h >= g.P) continue;
      const int64_t p = ph / g.stride_h;
      for (int64_t s = 0; s < g.S; ++s) {
        const int64_t qw = iw + g.pad_w - s * g.dil_w;
        if (qw < 0 || qw % g.stride_w != 0 || qw / g.stride_w >= g.Q) continue;
        const int64_t q = qw / g.stride_w;
        acc += col[n * img_stride + ((c * g.R + r) * g.S + s) * row_stride + p * g.Q + q];
      }
    }
    x[e] = acc;
  }
}

// dyt[k, n*pixels + i] = dy[n, k, i] for the chunk's images.
template <typename T>
__global__ void to_channel_major(const T* dy, T* dyt, int64_t images, int64_t K, int64_t pixels) {
  KILN_GRID_STRIDE(e, images * K * pixels) {
    const int64_t i = e % pixels, k = e / pixels % K, n = e / (pixels * K);
    dyt[(k * images + n) * pixels + i] = dy[e];
  }
}

template <typename T>
__global__ void add_bias_kernel(T* y, const T* bias, int64_t total, int64_t C, int64_t pixels) {
  KILN_GRID_STRIDE(e, total) y[e] += bias[e / pixels % C];
}

// One block per channel c: db[c] = sum over n, i of dy[n, c, i], in double.
template <typename T>
__global__ void channel_sum_kernel(const T* dy, T* db, int64_t N, int64_t C, int64_t pixels) {
  const int64_t c = blockIdx.x;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < N * pixels; j += blockDim.x)
    acc += double(dy[(j / pixels * C + c) * pixels + j % pixels]);
  acc = block_sum(acc);
  if (threadIdx.x == 0) db[c] = T(acc);
}

cudaStream_t current_stream() { return stream(current_device()); }

template <typename T>
void launch_im2col(const ConvGeometry& g, const T* x, T* col, int64_t images, int64_t img_stride,
                   int64_t row_stride) {
  const int64_t total = images * g.C * g.R * g.S * g.P * g.Q;
  if (total == 0) return;
  im2col<<<grid_for(total), kThreads, 0, current_stream()>>>(g, x, col, images, img_stride,
                                                             row_stride);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_col2im(const ConvGeometry& g, const T* col, T* x, int64_t images, int64_t img_stride,
                   int64_t row_stride) {
  const int64_t total = images * g.C * g.H * g.W;
  if (total == 0) return;
  col2im<<<grid_for(total), kThreads, 0, current_stream()>>>(g, col, x, images, img_stride,
                                                             row_stride);
  KILN_CUDA_CHECK_LAUNCH();
}

// An operand of a product per (image, group): matrix (n, g) at p + n*image + g*group.
template <typename P>
struct Grouped {
  P p;
  int64_t ld, group, image;
};

// C(n, g) = op(A(n, g)) op(B(n, g)) + beta C(n, g) for every image n < images and group
// g < groups, batched over whichever of the two is larger.
template <typename T>
void grouped_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, Grouped<const T*> A,
                  Grouped<const T*> B, T beta, Grouped<T*> C, int64_t groups, int64_t images) {
  if (groups <= images) {
    for (int64_t g = 0; g < groups; ++g)
      gemm_batched(ta, tb, M, N, K, A.p + g * A.group, A.ld, A.image, B.p + g * B.group, B.ld,
                   B.image, beta, C.p + g * C.group, C.ld, C.image, images);
  } else {
    for (int64_t n = 0; n < images; ++n)
      gemm_batched(ta, tb, M, N, K, A.p + n * A.image, A.ld, A.group, B.p + n * B.image, B.ld,
                   B.group, beta, C.p + n * C.image, C.ld, C.group, groups);
  }
}

// Images per chunk when one image needs `per_image` workspace elements.
int64_t chunk_images(int64_t N, int64_t per_image) {
  return std::clamp<int64_t>(kWorkspaceElements / std::max<int64_t>(per_image, 1), 1,
                             std::max<int64_t>(N, 1));
}


// Off when the environment says KILN_CUDNN=0.
std::atomic<bool>& cudnn_switch() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("KILN_CUDNN");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }()};
  return on;
}

#ifdef KILN_CUDNN

void check_cudnn(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw CudaError(std::string(call) + " failed: " + cudnnGetErrorString(status));
}

// The current device's cuDNN handle, made on first use and bound to its stream.
cudnnHandle_t cudnn_handle() {
  static std::mutex mutex;
  static std::vector<cudnnHandle_t> handles;
  const int device = current_device();
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.size() <= static_cast<size_t>(device)) handles.resize(device + 1, nullptr);
  if (handles[device] == nullptr) {
    cudnnHandle_t h = nullptr;
    check_cudnn(cudnnCreate(&h), "cudnnCreate");
    check_cudnn(cudnnSetStream(h, stream(device)), "cudnnSetStream");
    handles[device] = h;
  }
  return handles[device];
}

// One geometry and dtype's descriptors and the algorithm of each map (has_* false:
// cuDNN offers none, the im2col path runs instead).
struct CudnnPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool has_fwd = false, has_data = false, has_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t data{};
  cudnnConvolutionBwdFilterAlgo_t filter{};
  size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;

  CudnnPlan() = default;
  CudnnPlan(const CudnnPlan&) = delete;
  CudnnPlan& operator=(const CudnnPlan&) = delete;
  ~CudnnPlan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

bool fits_int(const ConvGeometry& g) {
  for (int64_t v : {g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.P, g.Q, g.N * g.C * g.H * g.W,
                    g.N * g.K * g.P * g.Q})
    if (v > INT32_MAX) return false;
  return true;
}

// The first algorithm of cuDNN's heuristic list that it can run; for float32
// (fma_only) one in FMA math, never TF32 tensor cores (DEFAULT_MATH permits them).
template <typename Algo, typename Perf, typename Get>
bool pick(Get&& get, bool fma_only, Algo& algo, size_t& bytes) {
  std::array<Perf, 16> perf{};
  int returned = 0;
  if (get(static_cast<int>(perf.size()), &returned, perf.data()) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS &&
        (!fma_only || perf[i].mathType == CUDNN_FMA_MATH)) {
      algo = perf[i].algo;
      bytes = perf[i].memory;
      return true;
    }
  return false;
}

std::unique_ptr<CudnnPlan> make_plan(const ConvGeometry& g, cudnnDataType_t type) {
  auto p = std::make_unique<CudnnPlan>();
  if (!fits_int(g) || g.N == 0 || g.P * g.Q == 0) return p;
  const auto i = [](int64_t v) { return static_cast<int>(v); };
  cudnnHandle_t h = cudnn_handle();
  bool ok = cudnnCreateTensorDescriptor(&p->x) == CUDNN_STATUS_SUCCESS &&
            cudnnCreateTensorDescriptor(&p->y) == CUDNN_STATUS_SUCCESS &&
            cudnnCreateFilterDescriptor(&p->w) == CUDNN_STATUS_SUCCESS &&
            cudnnCreateConvolutionDescriptor(&p->conv) == CUDNN_STATUS_SUCCESS;
  ok = ok &&
       cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, type, i(g.N), i(g.C), i(g.H),
                                  i(g.W)) == CUDNN_STATUS_SUCCESS &&
       cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, type, i(g.N), i(g.K), i(g.P),
                                  i(g.Q)) == CUDNN_STATUS_SUCCESS &&
       cudnnSetFilter4dDescriptor(p->w, type, CUDNN_TENSOR_NCHW, i(g.K), i(g.C / g.groups),
                                  i(g.R), i(g.S)) == CUDNN_STATUS_SUCCESS &&
       cudnnSetConvolution2dDescriptor(p->conv, i(g.pad_h), i(g.pad_w), i(g.stride_h),
                                       i(g.stride_w), i(g.dil_h), i(g.dil_w),
                                       CUDNN_CROSS_CORRELATION, type) == CUDNN_STATUS_SUCCESS &&
       cudnnSetConvolutionGroupCount(p->conv, i(g.groups)) == CUDNN_STATUS_SUCCESS &&
       cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS;
  // cuDNN derives the output size from the input's; a transposed convolution's
  // output_padding can make the input taller than P windows need.
  int dims[4] = {0, 0, 0, 0};
  ok = ok &&
       cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &dims[0], &dims[1], &dims[2],
                                             &dims[3]) == CUDNN_STATUS_SUCCESS &&
       dims[0] == g.N && dims[1] == g.K && dims[2] == g.P && dims[3] == g.Q;
  if (!ok) return p;
  const bool fma_only = type == CUDNN_DATA_FLOAT;
  p->has_fwd = pick<cudnnConvolutionFwdAlgo_t, cudnnConvolutionFwdAlgoPerf_t>(
      [&](int n, int* got, cudnnConvolutionFwdAlgoPerf_t* perf) {
        return cudnnGetConvolutionForwardAlgorithm_v7(h, p->x, p->w, p->conv, p->y, n, got,
                                                      perf);
      },
      fma_only, p->fwd, p->fwd_bytes);
  p->has_data = pick<cudnnConvolutionBwdDataAlgo_t, cudnnConvolutionBwdDataAlgoPerf_t>(
      [&](int n, int* got, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
        return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->w, p->y, p->conv, p->x, n, got,
                                                           perf);
      },
      fma_only, p->data, p->data_bytes);
  p->has_filter = pick<cudnnConvolutionBwdFilterAlgo_t, cudnnConvolutionBwdFilterAlgoPerf_t>(
      [&](int n, int* got, cudnnConvolutionBwdFilterAlgoPerf_t* perf) {
        return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->x, p->y, p->conv, p->w, n,
                                                             got, perf);
      },
      fma_only, p->filter, p->filter_bytes);
  return p;
}

// The cached plan of g for T on the current device (made on first use).
template <typename T>
const CudnnPlan& plan_for(const ConvGeometry& g) {
  static std::mutex mutex;
  static std::map<std::array<int64_t, 18>, std::unique_ptr<CudnnPlan>> plans;
  const std::array<int64_t, 18> key{current_device(), int64_t(sizeof(T)), g.N, g.C, g.H, g.W,
                                    g.K, g.R, g.S, g.P, g.Q, g.stride_h, g.stride_w, g.pad_h,
                                    g.pad_w, g.dil_h, g.dil_w, g.groups};
  std::lock_guard<std::mutex> lock(mutex);
  auto& plan = plans[key];
  if (!plan) plan = make_plan(g, sizeof(T) == 4 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE);
  return *plan;
}

// cuDNN's scaling factors: float for float data, double for double.
template <typename T>
struct Scale {
  T one = 1, zero = 0;
};

template <typename T>
bool cudnn_forward(const ConvGeometry& g, const T* x, const T* w, T* y) {
  if (!cudnn_switch()) return false;
  const CudnnPlan& p = plan_for<T>(g);
  if (!p.has_fwd) return false;
  Workspace<char> ws(static_cast<int64_t>(p.fwd_bytes));
  const Scale<T> a;
  check_cudnn(cudnnConvolutionForward(cudnn_handle(), &a.one, p.x, x, p.w, w, p.conv, p.fwd,
                                      ws.get(), p.fwd_bytes, &a.zero, p.y, y),
              "cudnnConvolutionForward");
  return true;
}

template <typename T>
bool cudnn_backward_input(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  if (!cudnn_switch()) return false;
  const CudnnPlan& p = plan_for<T>(g);
  if (!p.has_data) return false;
  Workspace<char> ws(static_cast<int64_t>(p.data_bytes));
  const Scale<T> a;
  check_cudnn(cudnnConvolutionBackwardData(cudnn_handle(), &a.one, p.w, w, p.y, dy, p.conv,
                                           p.data, ws.get(), p.data_bytes, &a.zero, p.x, dx),
              "cudnnConvolutionBackwardData");
  return true;
}

template <typename T>
bool cudnn_backward_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  if (!cudnn_switch()) return false;
  const CudnnPlan& p = plan_for<T>(g);
  if (!p.has_filter) return false;
  Workspace<char> ws(static_cast<int64_t>(p.filter_bytes));
  const Scale<T> a;
  check_cudnn(cudnnConvolutionBackwardFilter(cudnn_handle(), &a.one, p.x, x, p.y, dy, p.conv,
                                             p.filter, ws.get(), p.filter_bytes, &a.zero, p.w,
                                             dw),
              "cudnnConvolutionBackwardFilter");
  return true;
}

#else  // without cuDNN: always the im2col path

template <typename T>
bool cudnn_forward(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}
template <typename T>
bool cudnn_backward_input(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}
template <typename T>
bool cudnn_backward_weight(const ConvGeometry&, const T*, const T*, T*) {
  return false;
}

#endif  // KILN_CUDNN

}  // namespace

bool cudnn_enabled() {
#ifdef KILN_CUDNN
  return cudnn_switch();
#else
  return false;
#endif
}

void set_cudnn_enabled(bool enabled) { cudnn_switch() = enabled; }

template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t G = g.groups, Kg = g.K / G, Cg = g.C / G, RS = g.R * g.S, PQ = g.P * g.Q;
  const int64_t CRS = g.C * RS, chw = g.C * g.H * g.W, kpq = g.K * PQ;
  if (g.N * kpq == 0) return;
  if (cudnn_forward(g, x, w, y)) {
    if (bias) add_channel_bias(g.N, g.K, PQ, bias, y);
    return;
  }
  const int64_t chunk = chunk_images(g.N, CRS * PQ);
  Workspace<T> col(chunk * CRS * PQ);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.N - n0);
    launch_im2col(g, x + n0 * chw, col.get(), nb, CRS * PQ, PQ);
    grouped_gemm<T>(false, false, Kg, PQ, Cg * RS, {w, Cg * RS, Kg * Cg * RS, 0},
                    {col.get(), PQ, Cg * RS * PQ, CRS * PQ}, T(0), {y + n0 * kpq, PQ, Kg * PQ, kpq},
                    G, nb);
  }
  if (bias) add_channel_bias(g.N, g.K, PQ, bias, y);
}

template <typename T>
void conv2d_backward_input(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  const int64_t G = g.groups, Kg = g.K / G, Cg = g.C / G, RS = g.R * g.S, PQ = g.P * g.Q;
  const int64_t CRS = g.C * RS, chw = g.C * g.H * g.W, kpq = g.K * PQ;
  if (g.N * chw == 0) return;
  if (cudnn_backward_input(g, dy, w, dx)) return;
  const int64_t chunk = chunk_images(g.N, CRS * PQ);
  Workspace<T> dcol(chunk * CRS * PQ);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.N - n0);
    grouped_gemm<T>(true, false, Cg * RS, PQ, Kg, {w, Cg * RS, Kg * Cg * RS, 0},
                    {dy + n0 * kpq, PQ, Kg * PQ, kpq}, T(0),
                    {dcol.get(), PQ, Cg * RS * PQ, CRS * PQ}, G, nb);
    launch_col2im(g, dcol.get(), dx + n0 * chw, nb, CRS * PQ, PQ);
  }
}

template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* dy, const T* x, T* dw) {
  const int64_t G = g.groups, Kg = g.K / G, Cg = g.C / G, RS = g.R * g.S, PQ = g.P * g.Q;
  const int64_t CRS = g.C * RS, chw = g.C * g.H * g.W, kpq = g.K * PQ;
  const int64_t weights = g.K * Cg * RS;
  if (weights == 0) return;
  if (g.N * PQ == 0) {  // no windows: the gradient is zero
    KILN_CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(T) * weights, current_stream()));
    return;
  }
  if (cudnn_backward_weight(g, dy, x, dw)) return;
  const int64_t chunk = chunk_images(g.N, (CRS + g.K) * PQ);
  Workspace<T> col(chunk * CRS * PQ), dyt(chunk * kpq);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    const int64_t nb = std::min(chunk, g.N - n0), cols = nb * PQ;
    launch_im2col(g, x + n0 * chw, col.get(), nb, PQ, cols);
    to_channel_major<<<grid_for(nb * kpq), kThreads, 0, current_stream()>>>(dy + n0 * kpq,
                                                                            dyt.get(), nb, g.K, PQ);
    KILN_CUDA_CHECK_LAUNCH();
    // dW_g (Kg, Cg*RS) = dYt_g (Kg, cols) . col_g (Cg*RS, cols)^T, one batch over groups.
    gemm_batched(false, true, Kg, Cg * RS, cols, dyt.get(), cols, Kg * cols, col.get(), cols,
                 Cg * RS * cols, n0 == 0 ? T(0) : T(1), dw, Cg * RS, Kg * Cg * RS, G);
  }
}

template <typename T>
void unfold_images(const ConvGeometry& g, const T* x, T* col) {
  launch_im2col(g, x, col, g.N, g.C * g.R * g.S * g.P * g.Q, g.P * g.Q);
}

template <typename T>
void fold_images(const ConvGeometry& g, const T* col, T* x) {
  launch_col2im(g, col, x, g.N, g.C * g.R * g.S * g.P * g.Q, g.P * g.Q);
}

template <typename T>
void channel_sum(int64_t N, int64_t C, int64_t pixels, const T* dy, T* db) {
  if (C == 0) return;
  KILN_CHECK(C <= INT32_MAX, "channel_sum: too many channels (", C, ")");
  channel_sum_kernel<<<static_cast<unsigned>(C), kThreads, 0, current_stream()>>>(dy, db, N, C,
                                                                                  pixels);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
void add_channel_bias(int64_t N, int64_t C, int64_t pixels, const T* bias, T* y) {
  const int64_t total = N * C * pixels;
  if (total == 0) return;
  add_bias_kernel<<<grid_for(total), kThreads, 0, current_stream()>>>(y, bias, total, C, pixels);
  KILN_CUDA_CHECK_LAUNCH();
}

#define KILN_INSTANTIATE(T)                                                                   \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*);     \
  template void conv2d_backward_input<T>(const ConvGeometry&, const T*, const T*, T*);        \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*);       \
  template void unfold_images<T>(const ConvGeometry&, const T*, T*);                          \
  template void fold_images<T>(const ConvGeometry&, const T*, T*);                            \
  template void channel_sum<T>(int64_t, int64_t, int64_t, const T*, T*);                      \
  template void add_channel_bias<T>(int64_t, int64_t, int64_t, const T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
