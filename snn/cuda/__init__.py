"""Fused kernels behind the neuron layers (and, later, the delays).

Neuron backends, registered with :mod:`snn.neurons.backends` by :mod:`snn.cuda.backends`
(imported by :mod:`snn.neurons`); ``backend="auto"`` takes the first one available:

==========  ======  ========  ==============================================  ===========
name        device  priority  implementation                                  needs
==========  ======  ========  ==============================================  ===========
``cupy``    cuda    20        CUDA C ``csrc/neuron.cu`` via ``cupy.RawModule``  cupy, a GPU
``numba``   cuda    10        numba.cuda kernels, :mod:`snn.cuda.numba_gpu`     numba, a GPU
``numba``   cpu     10        ``@njit(parallel=True)``, :mod:`snn.cuda.cpu`     numba
``torch``   any     0         reference loop, :mod:`snn.neurons.functional`    —
==========  ======  ========  ==============================================  ===========

Each runs the whole time loop in one forward kernel and one BPTT backward kernel and saves
only the pre-reset membrane (float32 ``[T, N]``) for the backward pass. Coverage, the same
for all three fused backends:

* IF, LIF, PLIF; ``decay_input``; soft reset and hard reset to any ``v_reset``;
  ``detach_reset``; 0-d or per-channel (``[C, 1, ...]``) decay and threshold.
* Gradients for the input, the initial state (stateful streams), a decay that requires grad
  (PLIF's ``β = sigmoid(w)``; returned for β, autograd continues to ``w``) and a learnable
  threshold; ``record_v`` returns the post-reset membrane, differentiable too.
* Surrogates ATan, Sigmoid, FastSigmoid, Triangle, Gaussian, Erfc (exact classes; a user
  subclass may change ``grad``, so ``supports()`` refuses it and ``auto`` uses torch).
* dtypes: CPU float32 and float64; CUDA float32, float16 and bfloat16 inputs with float32
  state (``v_last``/``v_seq`` are float32; numba.cuda converts half inputs around the launch,
  CuPy reads them natively). Anything else — another dtype, parameters that are neither 0-d
  nor per channel along dim 2, an empty input — runs the torch reference inside ``run``.

Forward results equal the reference bit for bit (same operations, same rounding, FMA where
``torch.addcmul`` uses one); gradients agree to float rounding. The dynamics are written
once for Numba (:mod:`snn.cuda.dynamics`, compiled for CPU and CUDA) and once in CUDA C
(``csrc/neuron.cuh``); :mod:`snn.cuda.autograd` holds the one autograd Function of all
backends. Nothing heavy is imported here: Numba, CuPy and the kernels load on first use.
"""
