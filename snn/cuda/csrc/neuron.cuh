// Integrate-and-fire dynamics and surrogate derivatives as CUDA device functions.
//
// The CUDA C twin of snn/cuda/dynamics.py (same ids, same operation order, same flags);
// the reference is snn/neurons/functional.py. Arithmetic in float32; explicit _rn
// intrinsics where the reference rounds a product on its own, so forward results are
// bitwise equal to PyTorch's float32 reference (nvcc would otherwise contract a*b + c).
#pragma once

namespace snn {

// surrogate kinds (dynamics.ATAN ...)
enum : int { ATAN = 0, SIGMOID = 1, FAST_SIGMOID = 2, TRIANGLE = 3, GAUSSIAN = 4, ERFC = 5 };
// charge modes (dynamics.CHARGE_*)
enum : int { CHARGE_FMA = 0, CHARGE_MUL_ADD = 1, CHARGE_DECAY_INPUT = 2 };

// ---- storage types <-> float --------------------------------------------------------
// float16 and bfloat16 tensors are read and written as their raw 16 bits, converted here
// without the toolkit's cuda_fp16.h/cuda_bf16.h: NVRTC then compiles this file with nothing
// on its include path, as it must under CuPy installed from pip wheels, where those headers
// are often absent (cuda_bf16.h is not redistributable). Both conversions to 16 bits round
// to nearest even, as PyTorch's do.
struct f16 { unsigned short bits; };
struct bf16 { unsigned short bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(f16 x) {
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
#else  // the host build of the tests (tests/cuda/host)
    return snn_host_f16_to_float(x.bits);
#endif
}
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float((unsigned)x.bits << 16); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ f16 from_float<f16>(float x) {
    f16 r;
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
#else
    r.bits = snn_host_float_to_f16(x);
#endif
    return r;
}
// bfloat16 is the top half of a float32: add half an ulp of the kept part, plus one when the
// kept part is odd (ties to even), and truncate; a NaN stays a (quiet) NaN.
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) {
    const unsigned u = __float_as_uint(x);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x40u);
    } else {
        r.bits = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
    return r;
}

// ---- surrogate derivatives sigma'(z) = a * f(b * z) ----------------------------------
__device__ __forceinline__ float atan_grad(float z, float a, float b) {
    const float u = b * z;
    return a / (1.0f + u * u);
}
__device__ __forceinline__ float sigmoid_grad(float z, float a, float b) {
    const float s = 1.0f / (1.0f + expf(-(b * z)));
    return a * s * (1.0f - s);
}
__device__ __forceinline__ float fast_sigmoid_grad(float z, float a, float b) {
    const float d = 1.0f + b * fabsf(z);
    return a / (d * d);
}
__device__ __forceinline__ float triangle_grad(float z, float a, float b) {
    const float d = 1.0f - b * fabsf(z);
    return d > 0.0f ? a * d : 0.0f;
}
__device__ __forceinline__ float gaussian_grad(float z, float a, float b) {
    const float u = b * z;
    return a * expf(-0.5f * (u * u));
}
__device__ __forceinline__ float erfc_grad(float z, float a, float b) {
    const float u = b * z;
    return a * expf(-(u * u));
}
__device__ __forceinline__ float surrogate_grad(int kind, float z, float a, float b) {
    switch (kind) {
        case ATAN: return atan_grad(z, a, b);
        case SIGMOID: return sigmoid_grad(z, a, b);
        case FAST_SIGMOID: return fast_sigmoid_grad(z, a, b);
        case TRIANGLE: return triangle_grad(z, a, b);
        case GAUSSIAN: return gaussian_grad(z, a, b);
        default: return erfc_grad(z, a, b);
    }
}

// ---- forward ----------------------------------------------------------------------
// h = fma(beta, v, x) | x + beta*v | v + (1-beta)*(x - v); omb = 1 - beta from the host.
__device__ __forceinline__ float charge(float v, float x, float beta, float omb, int mode) {
    if (mode == CHARGE_FMA) return __fmaf_rn(beta, v, x);
    if (mode == CHARGE_MUL_ADD) return __fadd_rn(x, __fmul_rn(beta, v));
    return __fadd_rn(v, __fmul_rn(omb, __fsub_rn(x, v)));
}
__device__ __forceinline__ float spike(float h, float theta) { return h >= theta ? 1.0f : 0.0f; }
// soft (hard = 0): h - s*theta; hard (hard = 1): h - s*(h - v_reset). A select, so that an
// infinite h under soft reset is not 0*inf = NaN.
__device__ __forceinline__ float reset(float h, float s, float theta, float v_reset, float hard) {
    return h - s * (hard != 0.0f ? h - v_reset : theta);
}

// ---- backward ---------------------------------------------------------------------
// gs = dL/ds[t], gv = dL/dv[t], sg = sigma'(h - theta); keep_reset = 0 under detach_reset.
__device__ __forceinline__ void backward_step(float gs, float gv, float h, float sg, float theta,
                                              float v_reset, float hard, float keep_reset,
                                              float& gh, float& gth) {
    const float s = spike(h, theta);
    const float soft = 1.0f - hard;
    const float dv_ds = hard * (v_reset - h) - soft * theta;
    const float gs_tot = gs + keep_reset * (gv * dv_ds);
    gh = gs_tot * sg + gv * (1.0f - hard * s);
    gth = -(gs_tot * sg) - soft * (s * gv);
}
__device__ __forceinline__ void charge_backward(float gh, float beta, float omb, int mode,
                                                float& gx, float& gv_prev) {
    gx = gh * (mode == CHARGE_DECAY_INPUT ? omb : 1.0f);
    gv_prev = gh * beta;
}
__device__ __forceinline__ float charge_grad_beta(float gh, float v_prev, float x, int mode) {
    return mode == CHARGE_DECAY_INPUT ? gh * (v_prev - x) : gh * v_prev;
}

}  // namespace snn
