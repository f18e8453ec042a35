// Linear layers and matrix products through cuBLAS (see linear.h).
#include "cuda/linear.h"

#include <cublas_v2.h>

#include <climits>
#include <mutex>
#include <vector>

#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

void check_cublas(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw CudaError(std::string(call) + " failed: " + cublasGetStatusString(status));
}

// Hopper's recommended cuBLAS workspace.
constexpr size_t kCublasWorkspace = size_t{32} << 20;

// The current device's cuBLAS handle, made on first use and bound to its stream.
cublasHandle_t handle() {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  const int device = current_device();
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.size() <= static_cast<size_t>(device)) handles.resize(device + 1, nullptr);
  if (handles[device] == nullptr) {
    cublasHandle_t h = nullptr;
    check_cublas(cublasCreate(&h), "cublasCreate");
    check_cublas(cublasSetStream(h, stream(device)), "cublasSetStream");
    // A workspace of its own, set once, so that cuBLAS never allocates while a
    // stream is being captured into a CUDA graph. It lives as long as the handle
    // (the process), outside the caching allocator's statistics.
    void* workspace = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&workspace, kCublasWorkspace));
    check_cublas(cublasSetWorkspace(h, workspace, kCublasWorkspace), "cublasSetWorkspace");
    handles[device] = h;
  }
  return handles[device];
}

int as_int(int64_t v, const char* what) {
  KILN_CHECK(v >= 0 && v <= INT_MAX, "cuBLAS gemm: ", what, " = ", v, " does not fit in int");
  return static_cast<int>(v);
}

cublasOperation_t op(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

cublasStatus_t gemm_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const float* alpha, const float* A, int lda, long long sa,
                         const float* B, int ldb, long long sb, const float* beta, float* C,
                         int ldc, long long sc, int count) {
  return cublasSgemmStridedBatched(handle(), ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta,
                                   C, ldc, sc, count);
}
cublasStatus_t gemm_call(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const double* alpha, const double* A, int lda, long long sa,
                         const double* B, int ldb, long long sb, const double* beta, double* C,
                         int ldc, long long sc, int count) {
  return cublasDgemmStridedBatched(handle(), ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb,
                                   beta, C, ldc, sc, count);
}

// C[i] = 0 for `count` M x N matrices of row length ldc, stride_c apart (K = 0).
template <typename T>
__global__ void zero_matrices(T* C, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
                              int64_t count) {
  const int64_t total = count * M * N;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / (M * N), m = e / N % M, n = e % N;
    C[i * stride_c + m * ldc + n] = T(0);
  }
}

// y[m, n] = b[n].
template <typename T>
__global__ void fill_rows(const T* b, T* y, int64_t M, int64_t N) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < M * N;
       e += int64_t(gridDim.x) * blockDim.x)
    y[e] = b[e % N];
}

// db[n] = sum over m of dy[m, n], one thread per column, rows in order, in double.
template <typename T>
__global__ void column_sums(const T* dy, T* db, int64_t M, int64_t N) {
  for (int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; n < N;
       n += int64_t(gridDim.x) * blockDim.x) {
    double acc = 0;
    for (int64_t m = 0; m < M; ++m) acc += double(dy[m * N + n]);
    db[n] = T(acc);
  }
}

// The matrix stride of an operand read by output i as index[i]: one matrix per
// output in order (size), one matrix for all (0), or -1 for any other pattern.
int64_t batch_stride(const std::vector<int64_t>& index, int64_t count, int64_t size) {
  if (count == 1) return 0;
  for (size_t i = 0; i < index.size(); ++i)
    if (index[i] != static_cast<int64_t>(i)) return -1;
  return size;
}

template <typename T>
void zero(T* p, int64_t n) {
  if (n > 0)
    KILN_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(T) * n, stream(current_device())));
}

}  // namespace

template <typename T>
void gemm_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A,
                  int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                  T beta, T* C, int64_t ldc, int64_t stride_c, int64_t count) {
  if (M == 0 || N == 0 || count == 0) return;
  if (K == 0) {
    if (beta == T(0)) {
      zero_matrices<<<grid_for(count * M * N), kThreads, 0, stream(current_device())>>>(
          C, M, N, ldc, stride_c, count);
      KILN_CUDA_CHECK_LAUNCH();
    }
    return;
  }
  const T alpha = 1;
  // Column-major C^T (N x M) = op(B)^T (N x K) op(A)^T (K x M).
  check_cublas(gemm_call(op(trans_b), op(trans_a), as_int(N, "N"), as_int(M, "M"),
                         as_int(K, "K"), &alpha, B, as_int(ldb, "ldb"), stride_b, A,
                         as_int(lda, "lda"), stride_a, &beta, C, as_int(ldc, "ldc"), stride_c,
                         as_int(count, "batch")),
               "cublasGemmStridedBatched");
}

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  gemm_batched(trans_a, trans_b, M, N, K, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

template <typename T>
void linear_forward(const T* x, const T* w, const T* b, T* y, int64_t M, int64_t K, int64_t N) {
  KILN_CHECK(M >= 0 && K >= 0 && N >= 0, "linear: negative size");
  if (b && M * N > 0) {
    fill_rows<<<grid_for(M * N), kThreads, 0, stream(current_device())>>>(b, y, M, N);
    KILN_CUDA_CHECK_LAUNCH();
  }
  gemm(false, true, M, N, K, x, K, w, K, b ? T(1) : T(0), y, N);
}

template <typename T>
void linear_backward(const T* dy, const T* x, const T* w, T* dx, T* dw, T* db, int64_t M,
                     int64_t K, int64_t N) {
  KILN_CHECK(M >= 0 && K >= 0 && N >= 0, "linear_backward: negative size");
  if (dx) gemm(false, false, M, K, N, dy, N, w, K, T(0), dx, K);
  if (dw) gemm(true, false, N, K, M, dy, N, x, K, T(0), dw, K);
  if (db && N > 0) {
    column_sums<<<grid_for(N), kThreads, 0, stream(current_device())>>>(dy, db, M, N);
    KILN_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void matmul_forward(const T* a, const T* b, T* c, const BatchBroadcast& bb, int64_t M, int64_t K,
                    int64_t N) {
  const int64_t batch = static_cast<int64_t>(bb.a_index.size());
  const int64_t sa = batch_stride(bb.a_index, bb.a_count, M * K);
  const int64_t sb = batch_stride(bb.b_index, bb.b_count, K * N);
  if (sa == M * K && sb == 0) {  // the batch folds into the rows: one product
    gemm(false, false, batch * M, N, K, a, K, b, N, T(0), c, N);
  } else if (sa >= 0 && sb >= 0) {
    gemm_batched(false, false, M, N, K, a, K, sa, b, N, sb, T(0), c, N, M * N, batch);
  } else {
    for (int64_t i = 0; i < batch; ++i)
      gemm(false, false, M, N, K, a + bb.a_index[i] * M * K, K, b + bb.b_index[i] * K * N, N,
           T(0), c + i * M * N, N);
  }
}

template <typename T>
void matmul_backward(const T* dc, const T* a, const T* b, T* da, T* db, const BatchBroadcast& bb,
                     int64_t M, int64_t K, int64_t N) {
  const int64_t batch = static_cast<int64_t>(bb.a_index.size());
  const int64_t sa = batch_stride(bb.a_index, bb.a_count, M * K);
  const int64_t sb = batch_stride(bb.b_index, bb.b_count, K * N);
  if (da) {
    if (sa == M * K && sb >= 0) {  // each dA_i from its own output: no sum
      gemm_batched(false, true, M, K, N, dc, N, M * N, b, N, sb, T(0), da, K, M * K, batch);
    } else {  // summed over the outputs reading A_j, in output order
      zero(da, bb.a_count * M * K);
      for (int64_t i = 0; i < batch; ++i)
        gemm(false, true, M, K, N, dc + i * M * N, N, b + bb.b_index[i] * K * N, N, T(1),
             da + bb.a_index[i] * M * K, K);
    }
  }
  if (db) {
    if (sb == K * N && sa >= 0) {
      gemm_batched(true, false, K, N, M, a, K, sa, dc, N, M * N, T(0), db, N, K * N, batch);
    } else if (sb == 0 && sa == M * K) {  // one B for stacked A: one product over batch * M
      gemm(true, false, K, N, batch * M, a, K, dc, N, T(0), db, N);
    } else {
      zero(db, bb.b_count * K * N);
      for (int64_t i = 0; i < batch; ++i)
        gemm(true, false, K, N, M, a + bb.a_index[i] * M * K, K, dc + i * M * N, N, T(1),
             db + bb.b_index[i] * K * N, N);
    }
  }
}

#define KILN_INSTANTIATE(T)                                                                    \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*,    \
                        int64_t, T, T*, int64_t);                                              \
  template void gemm_batched<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t,      \
                                int64_t, const T*, int64_t, int64_t, T, T*, int64_t, int64_t,  \
                                int64_t);                                                      \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, \
                                   int64_t);                                                   \
  template void matmul_forward<T>(const T*, const T*, T*, const BatchBroadcast&, int64_t,      \
                                  int64_t, int64_t);                                           \
  template void matmul_backward<T>(const T*, const T*, const T*, T*, T*, const BatchBroadcast&, \
                                   int64_t, int64_t, int64_t);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

}  // namespace kiln::cuda
