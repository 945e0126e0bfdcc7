// Runs the CuPy kernels of snn/cuda/csrc on the host, one emulated CUDA thread after another,
// for the tests on machines without a GPU (tests/cuda/cuda_host.py builds and drives it).
//
// The kernels give every thread its own neurons and use no shared memory or barriers, so
// running the threads of a grid in sequence computes exactly what the GPU computes (up to
// the GPU's own exp/division rounding). Launches take their arguments the way CuPy and the
// CUDA driver do: an array of pointers to each argument's bytes, read as the kernel's
// parameter types; each kernel's parameter kinds and sizes are exported so that the test
// can check the launcher's arguments against the kernel signature.
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "neuron.cu"

namespace {

template <typename P>
constexpr char kind_of() {
    if constexpr (std::is_pointer_v<P>) return 'p';
    else if constexpr (std::is_floating_point_v<P>) return 'f';
    else if constexpr (std::is_integral_v<P> && std::is_signed_v<P>) return 'i';
    else return '?';
}

template <typename F>
struct Signature;

template <typename... A>
struct Signature<void (*)(A...)> {
    static constexpr int count = sizeof...(A);
    static constexpr char kinds[] = {kind_of<std::decay_t<A>>()..., '\0'};
    static constexpr int sizes[] = {static_cast<int>(sizeof(std::decay_t<A>))..., 0};

    template <auto K, std::size_t... I>
    static void call(void** p, std::index_sequence<I...>) {
        K(*static_cast<std::decay_t<A>*>(p[I])...);
    }

    template <auto K>
    static void launch(unsigned blocks, unsigned threads, void** params) {
        gridDim = {blocks, 1, 1};
        blockDim = {threads, 1, 1};
        for (unsigned b = 0; b < blocks; ++b) {
            for (unsigned t = 0; t < threads; ++t) {
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                call<K>(params, std::index_sequence_for<A...>{});
            }
        }
    }
};

struct Entry {
    const char* name;  // the name expression CuPy instantiates
    int count;
    const char* kinds;
    const int* sizes;
    void (*launch)(unsigned, unsigned, void**);
};

#define SNN_HOST_ENTRY(kernel, type)                                                          \
    Entry {                                                                                   \
        "snn::" #kernel "<" #type ">", Signature<decltype(&snn::kernel<type>)>::count,        \
            Signature<decltype(&snn::kernel<type>)>::kinds,                                   \
            Signature<decltype(&snn::kernel<type>)>::sizes,                                   \
            &Signature<decltype(&snn::kernel<type>)>::template launch<&snn::kernel<type>>     \
    }

const Entry ENTRIES[] = {
    SNN_HOST_ENTRY(neuron_forward, float),  SNN_HOST_ENTRY(neuron_forward, snn::f16),
    SNN_HOST_ENTRY(neuron_forward, snn::bf16),
    SNN_HOST_ENTRY(neuron_backward, float), SNN_HOST_ENTRY(neuron_backward, snn::f16),
    SNN_HOST_ENTRY(neuron_backward, snn::bf16),
};
constexpr int N_ENTRIES = sizeof(ENTRIES) / sizeof(ENTRIES[0]);

}  // namespace

extern "C" {

int snn_host_count() { return N_ENTRIES; }
const char* snn_host_name(int k) { return ENTRIES[k].name; }
int snn_host_find(const char* name) {
    for (int k = 0; k < N_ENTRIES; ++k)
        if (std::strcmp(ENTRIES[k].name, name) == 0) return k;
    return -1;
}
int snn_host_nparams(int k) { return ENTRIES[k].count; }
const char* snn_host_kinds(int k) { return ENTRIES[k].kinds; }
int snn_host_size(int k, int i) { return ENTRIES[k].sizes[i]; }
void snn_host_launch(int k, unsigned blocks, unsigned threads, void** params) {
    ENTRIES[k].launch(blocks, threads, params);
}

}  // extern "C"
