// Gradient clipping on the GPU: the twins of cpu/optim.h's tensor_norms, scale_ and
// clamp_ (same names, arguments and definitions; see that header), each one launch
// over the whole list of tensors: the list goes to the device as a table of
// (pointer, size) entries and every thread finds its tensor in it.
//
//   tensor_norms   one block per cpu/optim.h norm block (kNormBlock elements of one
//                  tensor), reduced in double as a tree; the partial results come back
//                  to the host (the call waits for the stream) and are combined there
//                  by the CPU's combine_norm_partials, in block order: deterministic
//   scale_, clamp_ one thread per element of the concatenated tensors
//
// None of them can run inside a CUDA graph capture (CudaError): the tables come from
// the host, the norms go back to it.
//
// The optimizer steps (sgd_step ... radam_step) have no CUDA twin yet.
#pragma once

#include <vector>

#include "cpu/optim.h"

namespace kiln::cuda {

template <typename T>
std::vector<double> tensor_norms(const std::vector<Span<const T>>& tensors, double q);
template <typename T>
void scale_(const std::vector<Span<T>>& tensors, double factor);
template <typename T>
void clamp_(const std::vector<Span<T>>& tensors, double lo, double hi);

}  // namespace kiln::cuda
