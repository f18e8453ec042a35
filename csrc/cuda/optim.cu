// Optimizer steps and gradient clipping on the GPU (cuda/optim.h).
#include "cuda/optim.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/check.h"
#include "cpu/optim_math.h"
#include "cuda/reduce.cuh"
#include "cuda/runtime.h"

namespace kiln::cuda {
namespace {

// The current device, outside a CUDA graph capture only: a captured copy of a host
// table would read host memory freed since at every replay, and the norms are read
// back on the host, which a capture cannot wait for.
int uncaptured_device() {
  const int device = current_device();
  if (capturing(device))
    throw CudaError("gradient clipping (grad_norms, scale_, clamp_) cannot run inside a CUDA "
                    "graph capture: its tensor tables come from the host and the norms go "
                    "back to it; clip outside the captured work");
  return device;
}

// A host table copied to a device block that lives until the end of the call (then
// back to the cache: later users run after the kernels on the same stream).
template <typename V>
class DeviceTable {
 public:
  explicit DeviceTable(const std::vector<V>& host)
      : device_(uncaptured_device()),
        p_(static_cast<V*>(device_malloc(sizeof(V) * (host.size() + 1), device_))) {
    if (!host.empty())
      KILN_CUDA_CHECK(cudaMemcpyAsync(p_, host.data(), sizeof(V) * host.size(),
                                      cudaMemcpyHostToDevice, stream(device_)));
  }
  ~DeviceTable() { device_free(p_, device_); }
  DeviceTable(const DeviceTable&) = delete;
  DeviceTable& operator=(const DeviceTable&) = delete;
  V* get() const { return p_; }

 private:
  int device_;
  V* p_;
};

// The tensors as one range: start[i] is tensor i's first index in it, start[count]
// the total.
template <typename T>
struct TensorTable {
  std::vector<Span<T>> spans;
  std::vector<int64_t> start;
};

template <typename T>
TensorTable<T> table_of(const std::vector<Span<T>>& tensors) {
  TensorTable<T> t{tensors, {0}};
  for (const Span<T>& s : tensors) {
    KILN_CHECK(s.numel >= 0, "clip_grad: a tensor has a negative size ", s.numel);
    t.start.push_back(t.start.back() + s.numel);
  }
  return t;
}

// The tensor holding index i of the range: the last k with start[k] <= i.
__device__ inline int64_t owner_of(const int64_t* start, int64_t count, int64_t i) {
  int64_t lo = 0, hi = count - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (start[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <typename T, typename F>
__global__ void for_each_element(const Span<T>* spans, const int64_t* start, int64_t count,
                                 F f) {
  for (int64_t i = first_index(); i < start[count]; i += grid_stride()) {
    const int64_t k = owner_of(start, count, i);
    T& x = spans[k].data[i - start[k]];
    x = f(x);
  }
}

// Applies f to every element of every tensor, in place, in one launch.
template <typename T, typename F>
void map_tensors(const std::vector<Span<T>>& tensors, F f) {
  const TensorTable<T> t = table_of(tensors);
  const int64_t total = t.start.back();
  if (total == 0) return;
  const DeviceTable<Span<T>> spans(t.spans);
  const DeviceTable<int64_t> start(t.start);
  for_each_element<<<grid_for(total), kThreads, 0, stream(current_device())>>>(
      spans.get(), start.get(), static_cast<int64_t>(tensors.size()), f);
  KILN_CUDA_CHECK_LAUNCH();
}

template <typename T>
struct Scale {
  T f;
  __device__ T operator()(T v) const { return v * f; }
};

template <typename T>
struct Clamp {
  T lo, hi;
  __device__ T operator()(T v) const { return v < lo ? lo : (v > hi ? hi : v); }
};

// |x|'s extreme with NaN winning, as the CPU's abs_extreme.
struct PickAbs {
  bool want_max;
  __device__ double operator()(double a, double v) const {
    return (v != v || a != a) ? a + v : ((want_max ? v > a : v < a) ? v : a);
  }
};

struct NormBlock {
  const void* x;  // the block's first element
  int64_t n;
};

// Block b of the grid reduces norm blocks b, b + gridDim.x, ...: the power sum of
// |x|^q (q = 0: the count of nonzeros) or the extreme of |x|, in double.
template <typename T>
__global__ void norm_partials(const NormBlock* blocks, int64_t count, double q, bool extreme,
                              bool want_max, double* partial) {
  const double identity = extreme && !want_max ? HUGE_VAL : 0.0;
  for (int64_t k = blockIdx.x; k < count; k += gridDim.x) {
    const T* x = static_cast<const T*>(blocks[k].x);
    double acc = identity;
    for (int64_t i = threadIdx.x; i < blocks[k].n; i += blockDim.x) {
      const double a = fabs(double(x[i]));
      if (extreme) acc = PickAbs{want_max}(acc, a);
      else if (q == 2) acc += a * a;
      else if (q == 1) acc += a;
      else if (q == 0) acc += x[i] != T(0) ? 1.0 : 0.0;
      else acc += pow(a, q);
    }
    if (extreme) acc = block_reduce(acc, PickAbs{want_max});
    else acc = block_reduce(acc, Add{});
    if (threadIdx.x == 0) partial[k] = acc;
  }
}

}  // namespace

template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q) {
  const NormBlocks blocks = norm_blocks_of(tensors, q);
  const int64_t count = static_cast<int64_t>(blocks.owner.size());
  std::vector<double> partial(blocks.owner.size());
  if (count > 0) {
    std::vector<NormBlock> table;
    for (size_t k = 0; k < blocks.owner.size(); ++k) {
      const Span<const T>& t = tensors[blocks.owner[k]];
      table.push_back({t.data + blocks.first[k], std::min(kNormBlock, t.numel - blocks.first[k])});
    }
    const int device = current_device();
    cudaStream_t s = stream(device);
    const DeviceTable<NormBlock> d_table(table);
    const DeviceTable<double> d_partial(partial);
    const bool extreme = std::isinf(q);
    const unsigned grid = static_cast<unsigned>(count > 65535 ? 65535 : count);
    norm_partials<T><<<grid, kThreads, 0, s>>>(d_table.get(), count, q, extreme, q > 0,
                                                d_partial.get());
    KILN_CUDA_CHECK_LAUNCH();
    KILN_CUDA_CHECK(cudaMemcpyAsync(partial.data(), d_partial.get(), sizeof(double) * count,
                                    cudaMemcpyDeviceToHost, s));
    synchronize(device);
  }
  return combine_norm_partials(blocks, partial, tensors.size(), q);
}

template <typename T>
void scale_(const std::vector<Span<T>>& tensors, double factor) {
  map_tensors(tensors, Scale<T>{T(factor)});
}

template <typename T>
void clamp_(const std::vector<Span<T>>& tensors, double lo, double hi) {
  check_clamp_bounds(lo, hi);
  map_tensors(tensors, Clamp<T>{T(lo), T(hi)});
}

#define KILN_INSTANTIATE(T)                                                                \
  template std::vector<double> tensor_norms<T>(const std::vector<Span<const T>>&, double); \
  template void scale_<T>(const std::vector<Span<T>>&, double);                            \
  template void clamp_<T>(const std::vector<Span<T>>&, double, double);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
#undef KILN_INSTANTIATE

// ------------------------------------------------------------ optimizer steps
namespace {

// Kernel parameters may take 32764 bytes since CUDA 12.1 (Volta and later).
constexpr size_t kParamBytes = 32000;

// One slot on the device: its arrays (cpu/optim.h's ParamSlot less the host-side step
// counters) and its scalars (optim_math.h).
template <typename T, typename S>
struct DeviceSlot {
  T* param;
  const T* grad;
  T* state[3];
  S c;
  bool fresh;  // SGD: the momentum buffer is new this step
};

// Up to kCapacity slots as one flat range of elements: slot i covers
// [start[i], start[i + 1]). Passed by value as the kernel's argument.
template <typename T, typename S>
struct SlotTable {
  static constexpr int kCapacity = static_cast<int>(
      (kParamBytes - 2 * sizeof(int64_t)) / (sizeof(DeviceSlot<T, S>) + sizeof(int64_t)));
  int64_t start[kCapacity + 1];
  DeviceSlot<T, S> slot[kCapacity];
  int count;
};

// One thread per element of the range (grid-stride): element k of slot s gets
// update(slot s, k). A thread's indices grow, so after one search its slot only moves
// forward (past the empty ones too).
template <typename T, typename S, typename Update>
__global__ void update_slots(const __grid_constant__ SlotTable<T, S> table, Update update) {
  const int64_t total = table.start[table.count];
  int64_t i = first_index();
  if (i >= total) return;
  int64_t s = owner_of(table.start, table.count, i);
  for (; i < total; i += grid_stride()) {
    while (i >= table.start[s + 1]) ++s;
    update(table.slot[s], i - table.start[s]);
  }
}

// The slots with their scalars, kCapacity at a time (one launch for a usual group),
// on the current device's stream; nothing waits, nothing is allocated on the device.
template <typename T, typename S, typename Update>
void launch_slots(const std::vector<ParamSlot<T>>& slots, const std::vector<S>& scalars,
                  Update update) {
  using Table = SlotTable<T, S>;
  static_assert(sizeof(Table) + sizeof(Update) <= 32764,
                "the slot table must fit the kernel's parameters");
  const auto table = std::make_unique<Table>();
  cudaStream_t s = stream(current_device());
  for (size_t first = 0; first < slots.size(); first += Table::kCapacity) {
    const size_t count = std::min(slots.size() - first, static_cast<size_t>(Table::kCapacity));
    table->count = static_cast<int>(count);
    table->start[0] = 0;
    for (size_t j = 0; j < count; ++j) {
      const ParamSlot<T>& p = slots[first + j];
      table->slot[j] = {p.param, p.grad, {p.state[0], p.state[1], p.state[2]},
                        scalars[first + j], p.fresh};
      table->start[j + 1] = table->start[j] + p.numel;
    }
    const int64_t total = table->start[count];
    if (total == 0) continue;
    update_slots<<<grid_for(total), kThreads, 0, s>>>(*table, update);
    KILN_CUDA_CHECK_LAUNCH();
  }
}

// The rules' element updates (optim_math.h) on a device slot, one variant each.
template <bool WD, bool MOM, bool NESTEROV>
struct SgdUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    if (d.fresh)
      optim::sgd_update<T, WD, MOM, NESTEROV, true>(d.param, d.grad, d.state[0], k, d.c);
    else
      optim::sgd_update<T, WD, MOM, NESTEROV, false>(d.param, d.grad, d.state[0], k, d.c);
  }
};

template <bool WD>
struct AdagradUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::adagrad_update<T, WD>(d.param, d.grad, d.state[0], k, d.c);
  }
};

template <bool WD, bool CENTERED, bool MOM>
struct RmspropUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::rmsprop_update<T, WD, CENTERED, MOM>(d.param, d.grad, d.state[0], d.state[1],
                                                d.state[2], k, d.c);
  }
};

template <int WD, bool AMSGRAD>
struct AdamUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::adam_update<T, WD, AMSGRAD>(d.param, d.grad, d.state[0], d.state[1], d.state[2], k,
                                       d.c);
  }
};

template <bool WD>
struct AdadeltaUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::adadelta_update<T, WD>(d.param, d.grad, d.state[0], d.state[1], k, d.c);
  }
};

template <bool WD>
struct AdamaxUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::adamax_update<T, WD>(d.param, d.grad, d.state[0], d.state[1], k, d.c);
  }
};

template <int WD>
struct NadamUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    optim::nadam_update<T, WD>(d.param, d.grad, d.state[0], d.state[1], k, d.c);
  }
};

template <int WD>
struct RadamUpdate {
  template <typename T, typename S>
  __device__ void operator()(const DeviceSlot<T, S>& d, int64_t k) const {
    if (d.c.rectify)
      optim::radam_update<T, WD, true>(d.param, d.grad, d.state[0], d.state[1], k, d.c);
    else
      optim::radam_update<T, WD, false>(d.param, d.grad, d.state[0], d.state[1], k, d.c);
  }
};

// The value of a compile-time flag (std::bool_constant / integral_constant) of a variant.
#define KILN_V(flag) decltype(flag)::value

}  // namespace

template <typename T>
void sgd_step(const char* op, const std::vector<ParamSlot<T>>& slots, const SgdOptions& o) {
  const auto c = optim::sgd_prepare(op, slots, o);
  optim::sgd_variant(o, [&](auto WD, auto MOM, auto NESTEROV) {
    launch_slots(slots, c, SgdUpdate<KILN_V(WD), KILN_V(MOM), KILN_V(NESTEROV)>{});
  });
}

template <typename T>
void adagrad_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const AdagradOptions& o) {
  const auto c = optim::adagrad_prepare(op, slots, o);
  optim::adagrad_variant(o, [&](auto WD) { launch_slots(slots, c, AdagradUpdate<KILN_V(WD)>{}); });
}

template <typename T>
void rmsprop_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const RmspropOptions& o) {
  const auto c = optim::rmsprop_prepare(op, slots, o);
  optim::rmsprop_variant(o, [&](auto WD, auto CENTERED, auto MOM) {
    launch_slots(slots, c, RmspropUpdate<KILN_V(WD), KILN_V(CENTERED), KILN_V(MOM)>{});
  });
}

template <typename T>
void adam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamOptions& o) {
  const auto c = optim::adam_prepare(op, slots, o);
  optim::adam_variant(o, [&](auto WD, auto AMSGRAD) {
    launch_slots(slots, c, AdamUpdate<KILN_V(WD), KILN_V(AMSGRAD)>{});
  });
}

template <typename T>
void adadelta_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                   const AdadeltaOptions& o) {
  const auto c = optim::adadelta_prepare(op, slots, o);
  optim::adadelta_variant(o,
                          [&](auto WD) { launch_slots(slots, c, AdadeltaUpdate<KILN_V(WD)>{}); });
}

template <typename T>
void adamax_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamaxOptions& o) {
  const auto c = optim::adamax_prepare(op, slots, o);
  optim::adamax_variant(o, [&](auto WD) { launch_slots(slots, c, AdamaxUpdate<KILN_V(WD)>{}); });
}

template <typename T>
void nadam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const NadamOptions& o) {
  const auto c = optim::nadam_prepare(op, slots, o);
  optim::nadam_variant(o, [&](auto WD) { launch_slots(slots, c, NadamUpdate<KILN_V(WD)>{}); });
}

template <typename T>
void radam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const RadamOptions& o) {
  const auto c = optim::radam_prepare(op, slots, o);
  optim::radam_variant(o, [&](auto WD) { launch_slots(slots, c, RadamUpdate<KILN_V(WD)>{}); });
}

#undef KILN_V

KILN_OPTIM_RULES(KILN_OPTIM_INSTANTIATE_STEP, float)
KILN_OPTIM_RULES(KILN_OPTIM_INSTANTIATE_STEP, double)

}  // namespace kiln::cuda
