// Fused multi-step IF/LIF/PLIF kernels for CuPy (compiled from this file with
// cupy.RawModule; name expressions snn::neuron_forward<T>, snn::neuron_backward<T>).
//
// Layout: sequences [T, N] row-major (neuron n of step t at t*N + n), per-neuron vectors
// [N], parameters [P] with neuron n in channel (n / S) % P. One thread per neuron runs the
// whole time loop; consecutive threads touch consecutive addresses. T is the input
// storage type (float, snn::f16, snn::bf16: see neuron.cuh); state and arithmetic are float32.
#include "neuron.cuh"

namespace snn {

template <typename T>
__global__ void neuron_forward(const T* __restrict__ x, const float* __restrict__ v0,
                               const float* __restrict__ beta, const float* __restrict__ omb,
                               const float* __restrict__ theta, int P, long long S, int steps,
                               long long N, int mode, float v_reset, float hard,
                               T* __restrict__ spikes, float* __restrict__ h_seq, int store_h,
                               float* __restrict__ v_seq, int record_v, float* __restrict__ v_last) {
    const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const int c = (int)((n / S) % P);
    const float b = beta[c], o = omb[c], th = theta[c];
    float v = v0[n];
    for (int t = 0; t < steps; ++t) {
        const long long i = (long long)t * N + n;
        const float h = charge(v, to_float(x[i]), b, o, mode);
        const float s = spike(h, th);
        spikes[i] = from_float<T>(s);
        if (store_h) h_seq[i] = h;
        v = reset(h, s, th, v_reset, hard);
        if (record_v) v_seq[i] = v;
    }
    v_last[n] = v;
}

template <typename T>
__global__ void neuron_backward(const T* __restrict__ grad_s, int has_gs,
                                const float* __restrict__ grad_vseq, int has_gvseq,
                                const float* __restrict__ grad_vlast,
                                const float* __restrict__ h_seq, const float* __restrict__ v0,
                                const T* __restrict__ x, int has_x,
                                const float* __restrict__ beta, const float* __restrict__ omb,
                                const float* __restrict__ theta, int P, long long S, int steps,
                                long long N, int mode, float v_reset, float hard, float keep_reset,
                                int kind, float sa, float sb, int need_dbeta,
                                T* __restrict__ grad_x, float* __restrict__ grad_v0,
                                float* __restrict__ dbeta, float* __restrict__ dtheta) {
    const long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const int c = (int)((n / S) % P);
    const float b = beta[c], o = omb[c], th = theta[c];
    float gv = grad_vlast[n], dth = 0.0f, db = 0.0f;
    for (int t = steps - 1; t >= 0; --t) {
        const long long i = (long long)t * N + n;
        const float h = h_seq[i];
        const float gs = has_gs ? to_float(grad_s[i]) : 0.0f;
        if (has_gvseq) gv += grad_vseq[i];
        const float sg = surrogate_grad(kind, h - th, sa, sb);
        float gh, gth, gx;
        backward_step(gs, gv, h, sg, th, v_reset, hard, keep_reset, gh, gth);
        charge_backward(gh, b, o, mode, gx, gv);
        grad_x[i] = from_float<T>(gx);
        dth += gth;
        if (need_dbeta) {
            float vp;
            if (t > 0) {
                const float hp = h_seq[i - N];
                vp = reset(hp, spike(hp, th), th, v_reset, hard);
            } else {
                vp = v0[n];
            }
            db += charge_grad_beta(gh, vp, has_x ? to_float(x[i]) : 0.0f, mode);
        }
    }
    grad_v0[n] = gv;
    dtheta[n] = dth;
    if (need_dbeta) dbeta[n] = db;
}

}  // namespace snn

#ifdef SNN_EXPLICIT_INSTANTIATION  // for compile checks with nvcc (CuPy instantiates by name)
#define SNN_INSTANTIATE(T)                                                                     \
    template __global__ void snn::neuron_forward<T>(const T*, const float*, const float*,      \
        const float*, const float*, int, long long, int, long long, int, float, float, T*,     \
        float*, int, float*, int, float*);                                                     \
    template __global__ void snn::neuron_backward<T>(const T*, int, const float*, int,         \
        const float*, const float*, const float*, const T*, int, const float*, const float*,   \
        const float*, int, long long, int, long long, int, float, float, float, int, float,    \
        float, int, T*, float*, float*, float*);
SNN_INSTANTIATE(float)
SNN_INSTANTIATE(snn::f16)
SNN_INSTANTIATE(snn::bf16)
#endif
