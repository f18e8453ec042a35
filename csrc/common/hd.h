// KILN_HD marks a function that the CPU kernels and the CUDA kernels both call
// (a random stream, a pointwise formula): written once, compiled for either side.
#pragma once

#ifdef __CUDACC__
#define KILN_HD __host__ __device__
#else
#define KILN_HD
#endif
