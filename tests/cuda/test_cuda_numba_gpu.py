"""GPU backend "numba" (snn/cuda/numba_gpu.py).

Without a GPU the kernels are checked two ways, each in a subprocess so that this process's
Numba configuration is left alone:

* the ``test_sim_*`` tests below rerun under ``NUMBA_ENABLE_CUDASIM=1`` (Numba's CUDA
  simulator, which must be enabled before Numba is imported; tiny shapes, it is slow).
  Numba 0.68 ships the simulator in its built-in ``numba.cuda``; no extra package needed.
  If the whole pytest run already has the variable set they run in-process instead.
* the kernels are compiled to PTX (sm_80) with NVVM (``cuda.compile_ptx``), which also
  checks that no float64 arithmetic leaks into them.

With a GPU (and a working numba.cuda) the same parity tests run on CUDA tensors in float32,
float16 and bfloat16, on PyTorch's current stream.

The simulator does not fuse multiply-adds the way NVVM does; spikes are compared tie-aware.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cuda_parity import MODELS, PARAMS, RESETS, SURROGATE_NAMES, Case, compare, gpu_parity_test, make_neuron

numba = pytest.importorskip("numba")
SIM = bool(numba.config.ENABLE_CUDASIM)
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _subprocess(args: list[str], env_extra: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
               **env_extra)
    return subprocess.run([sys.executable] + args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(SIM, reason="already running under the simulator: the test_sim_* tests run in-process")
def test_simulator_parity_in_subprocess():
    r = _subprocess(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                     str(Path(__file__)), "-k", "test_sim_"], {"NUMBA_ENABLE_CUDASIM": "1"})
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "skipped" not in r.stdout.splitlines()[-1], r.stdout[-2000:]


def _sim_run():
    from snn.cuda.autograd import FusedKernels, make_run
    from snn.cuda.numba_gpu import NumbaCudaLauncher
    return make_run(FusedKernels("tests.numba-cudasim", NumbaCudaLauncher, (torch.float32,)))


sim_only = pytest.mark.skipif(not SIM, reason="runs under NUMBA_ENABLE_CUDASIM=1 "
                              "(see test_simulator_parity_in_subprocess)")
# The simulator runs each CUDA thread as a Python thread: a fixed rotation of tiny shapes
# (T = 1, batch 1, odd sizes, rank 1-3, every layout) instead of hypothesis search.
SIM_CASES = [Case(3, 2, (3,), "contiguous", 0), Case(1, 1, (2, 2), "strided", 1),
             Case(2, 2, (3, 1, 2), "permuted", 3), Case(3, 2, (1, 3), "strided", 3), Case(2, 3, (2,), "permuted", 5)]


@sim_only
@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("reset", list(RESETS))
@pytest.mark.parametrize("model", MODELS)
def test_sim_parity(model, reset, params):
    run = _sim_run()
    case = SIM_CASES[(MODELS.index(model) + 2 * list(RESETS).index(reset) + PARAMS.index(params)) % len(SIM_CASES)]
    k = len(SIM_CASES) * MODELS.index(model) + PARAMS.index(params)
    for i in range(2):  # two surrogates per case, rotating; all six in the test below
        surrogate = SURROGATE_NAMES[(k + 3 * i) % len(SURROGATE_NAMES)]
        gen = torch.Generator().manual_seed(case.seed)
        n = make_neuron(model, reset, i == 1, params, surrogate, case.feature[0], torch.float32, gen)
        compare(run, n, case, torch.float32, record_v=i == 0, exact=False)


@sim_only
def test_sim_every_surrogate_with_detach_both_ways():
    run = _sim_run()
    case = Case(T=3, B=2, feature=(2, 2), layout="permuted", seed=1)  # memory order T, C, H, B
    for surrogate in SURROGATE_NAMES:
        for detach in (False, True):
            n = make_neuron("plif", "hard_neg", detach, "per_channel", surrogate, 2, torch.float32,
                            torch.Generator().manual_seed(0))
            compare(run, n, case, torch.float32, record_v=True, exact=False)


@sim_only
def test_sim_operators_pass_opcheck():
    """The fused operators (snn/cuda/autograd.py) over the numba.cuda launcher: schema, fake
    tensors, autograd formula and tracing (``torch.library.opcheck``), on the simulator."""
    from snn.cuda import autograd as A
    from snn.cuda.params import kernel_config
    from snn.neurons import LIF
    _sim_run()  # registers the simulator's launcher under "tests.numba-cudasim"
    key, T, P, S, N = "tests.numba-cudasim", 3, 2, 2, 8
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, N, generator=g) * 2).requires_grad_()
    v0 = (torch.rand(N, generator=g) * 0.5).requires_grad_()
    beta = (torch.rand(P, generator=g) * 0.5 + 0.3).requires_grad_()
    theta = (torch.rand(P, generator=g) + 0.5).requires_grad_()
    cfg = A._as_list(kernel_config(LIF(decay_input=True, v_reset=None).spec(3)))
    torch.library.opcheck(A.fused_neuron_forward, (x, v0, beta, (1 - beta).detach(), theta, key, S, cfg,
                                                   True, True, True))


_PTX_SCRIPT = r"""
import sys
import numba.cuda.dispatcher as D, numba.cuda.compiler as C
class Dev:  # compile without a GPU: the built-in numba.cuda asks the current device for its cc
    compute_capability = (8, 0)
D.get_current_device = C.get_current_device = lambda: Dev()
from numba import cuda, types as nt
from snn.cuda import numba_gpu as G
f32, i64, i32, b1 = nt.float32, nt.int64, nt.int32, nt.boolean
A2, A1 = f32[:, ::1], f32[::1]
fwd = (A2, A1, A1, A1, A1, i64, i32, f32, f32, A2, A2, b1, A2, b1, A1)
bwd = (A2, b1, A2, b1, A1, A2, A1, A2, A1, A1, A1, i64, i32, f32, f32, f32, i32, f32, f32, b1, A2, A1, A1, A1)
for cc in ((8, 0),):  # NVVM output is PTX; one target keeps the check quick
    Dev.compute_capability = cc
    for k, sig in ((G.forward_kernel, fwd), (G.backward_kernel, bwd)):
        ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=cc)
        assert ".f64" not in ptx, "float64 arithmetic leaked into a float32 kernel"
        print(cc, len(ptx))
"""


@pytest.mark.skipif(SIM, reason="PTX compilation needs the real numba.cuda target")
def test_kernels_compile_to_ptx():
    r = _subprocess(["-c", _PTX_SCRIPT], {})
    if r.returncode != 0 and ("NVVM" in r.stderr or "libnvvm" in r.stderr.lower()):
        pytest.skip(f"NVVM not found: {r.stderr.strip().splitlines()[-1]}")
    if r.returncode != 0 and "AttributeError" in r.stderr and "get_current_device" in r.stderr:
        pytest.skip("this numba.cuda has no get_current_device hook to compile without a GPU")
    assert r.returncode == 0, r.stderr[-4000:]


def _gpu_reason():
    if SIM or not torch.cuda.is_available():
        return "needs a CUDA GPU"
    from numba import cuda
    return None if cuda.is_available() else "numba.cuda finds no usable GPU"


gpu_only = pytest.mark.skipif(_gpu_reason() is not None, reason=str(_gpu_reason()))


test_gpu_parity = gpu_only(gpu_parity_test("numba"))


@gpu_only
def test_gpu_runs_on_the_current_stream_and_under_autocast():
    from snn.neurons import LIF
    x = torch.rand(16, 4, 300, device="cuda") * 1.5
    ref = LIF(backend="torch").cuda()(x)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        out = LIF(backend="numba").cuda()(x)
    s.synchronize()
    assert torch.equal(out, ref)
    with torch.autocast("cuda", dtype=torch.float16):
        n = LIF(backend="numba").cuda()
        y = n(x.half())
    assert y.dtype == torch.float16 and n.backend_used == "numba"
