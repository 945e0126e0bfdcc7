// Host stand-ins for the CUDA language features the kernels of snn/cuda/csrc use, so that a
// host C++ compiler can build them (force-included before the kernel source; see
// tests/cuda/cuda_host.py). Execution-space keywords expand to nothing; the thread and block
// indices are globals that the launcher in cuda_host.cpp sets before each emulated thread;
// the round-to-nearest intrinsics are the plain IEEE operations they name (the build turns
// off floating-point contraction, so a*b + c stays two roundings, as __fmul_rn/__fadd_rn do).
// The kernels convert float16 with a PTX instruction on the GPU; here the compiler's own
// _Float16 does it (both round to nearest even). bfloat16 uses the kernels' own bit code.
#pragma once

#include <math.h>
#include <string.h>

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
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}
inline float snn_host_f16_to_float(unsigned short bits) {
    _Float16 h;
    memcpy(&h, &bits, sizeof h);
    return (float)h;
}
inline unsigned short snn_host_float_to_f16(float f) {
    const _Float16 h = (_Float16)f;
    unsigned short bits;
    memcpy(&bits, &h, sizeof bits);
    return bits;
}
