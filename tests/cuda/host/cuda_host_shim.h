// Host stand-ins for the CUDA language features the kernels of snn/cuda/csrc use, so that a
// host C++ compiler can build them (force-included before the kernel source; see
// tests/cuda/cuda_host.py). Execution-space keywords expand to nothing; the thread and block
// indices are globals that the launcher in cuda_host.cpp sets before each emulated thread;
// the round-to-nearest intrinsics are the plain IEEE operations they name (the build turns
// off floating-point contraction, so a*b + c stays two roundings, as __fmul_rn/__fadd_rn do).
// Half and bfloat16 come from the CUDA toolkit's own headers, which have host implementations.
#pragma once

#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct snn_host_dim3 {
    unsigned x, y, z;
};
inline snn_host_dim3 threadIdx{0, 0, 0}, blockIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};

inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
