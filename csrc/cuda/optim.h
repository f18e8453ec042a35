// The optimizer steps and gradient clipping on the GPU: twins of cpu/optim.h's
// sgd_step ... radam_step, tensor_norms, scale_ and clamp_ (same names, arguments and
// definitions; see that header), each one launch over a whole list of tensors.
//
//   <rule>_step    the CPU's preparation (cpu/optim_math.h: the checks, the step
//                  counters, which stay on the host, advanced, and every slot's
//                  scalars, in double rounded to T), then one kernel over the
//                  group's elements calling the CPU's per-element update. The slots
//                  (device pointers, sizes, scalars) travel as the kernel's argument,
//                  a table of up to kSlotsPerLaunch slots (CUDA 12.1's 32 KB
//                  parameters): one launch per group of up to that many tensors per
//                  dtype (more: one per kSlotsPerLaunch), no device allocation, no
//                  copy and no wait for the device, so a step can be captured in a
//                  graph (its scalars are then those of the captured step). Slots'
//                  params, grads and state buffers live on the current device.
//   tensor_norms   one block per cpu/optim.h norm block (kNormBlock elements of one
//                  tensor), reduced in double as a tree; the partial results come back
//                  to the host (the call waits for the stream) and are combined there
//                  by the CPU's combine_norm_partials, in block order: deterministic
//   scale_, clamp_ one thread per element of the concatenated tensors: the list goes
//                  to the device as a table of (pointer, size) entries and every
//                  thread finds its tensor in it.
//
// None of these three can run inside a CUDA graph capture (CudaError): the tables come
// from the host, the norms go back to it.
#pragma once

#include <vector>

#include "cpu/optim.h"

namespace kiln::cuda {

template <typename T>
void sgd_step(const char* op, const std::vector<ParamSlot<T>>& slots, const SgdOptions& o);
template <typename T>
void adagrad_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const AdagradOptions& o);
template <typename T>
void rmsprop_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                  const RmspropOptions& o);
template <typename T>
void adam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamOptions& o);
template <typename T>
void adadelta_step(const char* op, const std::vector<ParamSlot<T>>& slots,
                   const AdadeltaOptions& o);
template <typename T>
void adamax_step(const char* op, const std::vector<ParamSlot<T>>& slots, const AdamaxOptions& o);
template <typename T>
void nadam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const NadamOptions& o);
template <typename T>
void radam_step(const char* op, const std::vector<ParamSlot<T>>& slots, const RadamOptions& o);

template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q);
template <typename T>
void scale_(const std::vector<Span<T>>& tensors, double factor);
template <typename T>
void clamp_(const std::vector<Span<T>>& tensors, double lo, double hi);

}  // namespace kiln::cuda
