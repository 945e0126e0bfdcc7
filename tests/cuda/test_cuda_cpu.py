"""CPU backend "numba" (snn/cuda/cpu.py) against the torch reference: every model × option
× surrogate, hypothesis-drawn shapes (T = 1, batch 1, odd sizes, rank 1-3, every memory layout),
float32 and float64. The CPU kernels reproduce the reference bit for bit in the forward
pass, so spikes and membranes are compared exactly (no tie allowance needed)."""
import logging

import pytest
import torch
from cuda_parity import MODELS, PARAMS, RESETS, SURROGATE_NAMES, cases, compare, make_input, make_neuron
from hypothesis import HealthCheck, given, settings

import snn
from snn.neurons import IF, LIF, PLIF, backends, resolve_backend
from snn.neurons.functional import multistep
from snn.surrogate import ATan

pytest.importorskip("numba")

RUN = resolve_backend("numba", "cpu", LIF().spec(3)).run
SETTINGS = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("detach", [False, True], ids=["keep_reset", "detach_reset"])
@pytest.mark.parametrize("reset", list(RESETS))
@pytest.mark.parametrize("model", MODELS)
@SETTINGS
@given(case=cases(), record_v=...)
def test_float32_parity_every_option_and_surrogate(model, reset, detach, params, case, record_v: bool):
    for surrogate in SURROGATE_NAMES:
        gen = torch.Generator().manual_seed(case.seed)
        n = make_neuron(model, reset, detach, params, surrogate, case.feature[0], torch.float32, gen)
        compare(RUN, n, case, torch.float32, record_v, exact=True)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("reset", ["soft", "hard_neg"])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), record_v=...)
def test_float64_parity(model, reset, case, record_v: bool):
    for surrogate in SURROGATE_NAMES:
        gen = torch.Generator().manual_seed(case.seed)
        n = make_neuron(model, reset, False, "per_channel", surrogate, case.feature[0], torch.float64, gen)
        compare(RUN, n, case, torch.float64, record_v, exact=True)


@pytest.mark.parametrize("model", MODELS)
def test_parallel_blocks_and_jobs_match_the_reference(model, monkeypatch):
    """The parallel build with blocks much smaller than the problem: 3·37 = 111 neurons in
    16-neuron blocks (the last one ragged), split over the threads in runs of several blocks,
    each run recomputing its membranes into one reused buffer. Fails if a block or a run
    boundary drops, repeats or shifts a neuron."""
    from snn.cuda import cpu
    monkeypatch.setattr(cpu, "SERIAL_BELOW", 0)
    monkeypatch.setattr(cpu, "BLOCK_MAX", 16)
    assert cpu.block_width(9, 111, 4, 2) == 16
    for params, reset, surrogate in (("per_channel", "hard_neg", "sigmoid"), ("learn_threshold", "soft", "atan")):
        case = __import__("cuda_parity").Case(9, 3, (37,), "contiguous", 11)
        n = make_neuron(model, reset, False, params, surrogate, 37, torch.float32, torch.Generator().manual_seed(3))
        for record_v in (False, True):
            compare(RUN, n, case, torch.float32, record_v, exact=True)


def test_block_width_fits_the_buffer_and_feeds_every_thread():
    from snn.cuda import cpu
    assert cpu.block_width(4, 1 << 20, 4, 2) == cpu.BLOCK_MAX
    w = cpu.block_width(2000, 1 << 20, 4, 2)
    assert 2000 * w * 4 <= cpu.BLOCK_BYTES < 2000 * 2 * w * 4  # the widest that fits
    assert cpu.block_width(100_000, 1 << 20, 8, 2) == cpu.BLOCK_MIN  # never below one vector
    assert -(-4096 // cpu.block_width(8, 4096, 4, 8)) >= 32  # four blocks per thread
    assert cpu.block_width(8, 40, 4, 8) == cpu.BLOCK_MIN


def test_auto_picks_numba_on_cpu_and_matches_torch():
    torch.manual_seed(0)
    x = torch.rand(7, 3, 2, 5, 5) * 1.5
    fused, ref = LIF(tau=2.0, num_channels=2), LIF(tau=2.0, num_channels=2, backend="torch")
    assert torch.equal(fused(x), ref(x))
    assert fused.backend_used == "numba" and ref.backend_used == "torch"


def test_stateful_chunks_carry_state_and_gradient():
    torch.manual_seed(1)
    x = (torch.rand(8, 2, 6, dtype=torch.float64) * 1.2).requires_grad_()
    grads, outs = [], []
    for backend in ("numba", "torch"):
        n = PLIF(tau=2.0, learn_threshold=True, backend=backend, dtype=torch.float64)
        with snn.stateful(n):
            out = torch.cat([n(x[:3]), n(x[3:])])
        (g,) = torch.autograd.grad((out * torch.arange(48.0).view(8, 2, 3).repeat(1, 1, 2)).sum(), [x])
        outs.append(out)
        grads.append(g)
        assert n.backend_used == backend
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("which", ["v_last", "v_seq"])
def test_gradient_through_membrane_only(which):
    # the spike output gets no gradient: the backward kernel sees grad_s = None
    torch.manual_seed(2)
    x = (torch.rand(5, 2, 4, dtype=torch.float64) * 1.5).requires_grad_()
    v0 = torch.zeros(2, 4, dtype=torch.float64)
    g = []
    for fn in (RUN, multistep):
        _, v_last, v_seq = fn(x, v0, LIF(tau=2.0, dtype=torch.float64).spec(3), which == "v_seq")
        g.append(torch.autograd.grad((v_last if which == "v_last" else v_seq).pow(2).sum(), [x])[0])
    torch.testing.assert_close(g[0], g[1], rtol=1e-10, atol=1e-12)


def test_no_grad_inference_and_T1_batch1():
    x = torch.rand(1, 1, 3) * 2
    with torch.no_grad():
        s, v_last, v_seq = RUN(x, torch.zeros(1, 3), IF().spec(3), True)
    r = multistep(x, torch.zeros(1, 3), IF().spec(3), True)
    assert torch.equal(s, r[0]) and torch.equal(v_last, r[1]) and torch.equal(v_seq, r[2])


def test_unsupported_dtype_runs_the_reference():
    x = (torch.rand(4, 2, 3) * 2).to(torch.bfloat16)
    s, v, _ = RUN(x, torch.zeros(2, 3, dtype=torch.bfloat16), LIF().spec(3), False)
    r = multistep(x, torch.zeros(2, 3, dtype=torch.bfloat16), LIF().spec(3), False)
    assert s.dtype == torch.bfloat16 and torch.equal(s, r[0]) and torch.equal(v, r[1])


def test_custom_surrogate_falls_back_to_torch(caplog):
    class MyATan(ATan):
        def grad(self, x):
            return super().grad(x) * 2

    backends._warned.clear()
    n = LIF(surrogate=MyATan())
    with caplog.at_level(logging.WARNING, logger="snn"):
        n(torch.rand(3, 2, 4))
    assert n.backend_used == "torch"
    assert any("'numba' does not support" in r.message for r in caplog.records)


def test_training_saves_less_than_half_of_the_reference():
    """Bytes of the tensors autograd keeps for backward (unique storages), LIF layer."""
    def saved_bytes(backend):
        seen, total = set(), 0

        def pack(t):
            nonlocal total
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += key[1]
            return t
        x = torch.rand(32, 8, 256, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            LIF(backend=backend)(x)
        return total
    fused, ref = saved_bytes("numba"), saved_bytes("torch")
    assert fused <= 0.5 * ref, (fused, ref)
    assert fused <= 32 * 8 * 256 * 4 + 8 * 256 * 4 + 64  # the input x (float32) + v0 + parameters


@pytest.mark.parametrize("model", ["lif", "plif"])
def test_channels_last_runs_in_the_input_layout_with_per_channel_parameters(model):
    """A channels-last conv output [T·B, C, H, W] viewed as [T, B, C, H, W], fed in two chunks
    (the second starts from the first's channels-last state): the kernels walk it in memory
    order (neuron n in channel n % C), and the spikes, state, input gradient and state gradient
    keep that layout, with values equal to the reference's."""
    T, B, C, H, W = 4, 2, 5, 4, 3
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(T * B, C, H, W, generator=gen).mul(1.5).contiguous(memory_format=torch.channels_last)
    outs = {}
    for backend in ("numba", "torch"):
        n = make_neuron(model, "soft", False, "per_channel", "atan", C, torch.float32,
                        torch.Generator().manual_seed(1))
        n.backend = backend
        xs = base.clone().view(T, B, C, H, W).requires_grad_()
        x1, x2 = xs[:2], xs[2:]          # dense views of xs, T outermost, channels innermost
        with snn.stateful(n, reset_on_exit=False):
            s1 = n(x1)
            v1 = n.v
            s2 = n(x2)
        v = n.v
        s = torch.cat([s1, s2])
        loss = (s * torch.arange(s.numel()).view(s.shape).sin()).sum() + (v * v).sum()
        gx1, gv1, *gp = torch.autograd.grad(loss, [x1, v1] + list(n.parameters()))
        for out, like in ((s1, x1), (s2, x2), (v1, x1[0]), (v, x1[0]), (gx1, x1), (gv1, x1[0])):
            assert out.stride() == like.stride(), (out.stride(), like.stride())
        outs[backend] = (s, v, gx1, gv1, gp)
    (s_f, v_f, gx_f, gv_f, p_f), (s_r, v_r, gx_r, gv_r, p_r) = outs["numba"], outs["torch"]
    assert torch.equal(s_f, s_r) and 0 < s_r.mean() < 1
    torch.testing.assert_close(v_f, v_r)
    torch.testing.assert_close(gx_f, gx_r)
    torch.testing.assert_close(gv_f, gv_r)
    for a, b in zip(p_f, p_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["lif", "plif"])
@pytest.mark.parametrize("v_init", ["scalar", "per_channel"])
def test_rest_state_as_a_broadcast_view_matches_the_reference(model, v_init):
    """The layer hands its rest state to the kernels as a broadcast view: one value ([1]) for a
    scalar v_init, materialised for a per-channel one. With no gradient wanted for the initial
    and final state the kernels neither read nor write ``[N]`` rows for them. PLIF's decay
    gradient reads the initial state at t = 0."""
    T, B, C, F = 5, 3, 4, 7
    x = torch.rand(T, B, C, F, generator=torch.Generator().manual_seed(2)) * 1.3
    outs = {}
    for backend in ("numba", "torch"):
        params = "per_channel" if v_init == "per_channel" else "learn_threshold"  # v_init [C] or 0-d
        n = make_neuron(model, "soft", False, params, "atan", C, torch.float32, torch.Generator().manual_seed(3))
        with torch.no_grad():
            n.v_init.copy_(torch.linspace(-0.3, 0.4, C) if v_init == "per_channel" else torch.tensor(0.35))
        n.backend = backend
        xg = x.clone().requires_grad_()
        s = n(xg)
        (s * torch.arange(s.numel()).view(s.shape).cos()).sum().backward()
        outs[backend] = (s, xg.grad, [p.grad for p in n.parameters()])
    (s_f, g_f, p_f), (s_r, g_r, p_r) = outs["numba"], outs["torch"]
    assert torch.equal(s_f, s_r) and 0 < s_r.mean() < 1
    torch.testing.assert_close(g_f, g_r)
    for a, b in zip(p_f, p_r, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_uniform_initial_state_that_requires_grad():
    """A broadcast initial state that needs a gradient: the kernels read it as one value and
    still return the full ``∂L/∂v0``, which autograd sums back to the scalar."""
    spec = LIF(beta=0.8).spec(3)
    x = torch.rand(6, 2, 9, generator=torch.Generator().manual_seed(4)) * 1.4
    grads = []
    for run in (RUN, multistep):
        v = torch.tensor(0.3, requires_grad=True)
        s, v_last, _ = run(x, v.expand(2, 9), spec, False)
        ((s * torch.arange(s.numel()).view(s.shape).sin()).sum() + v_last.square().sum()).backward()
        grads.append((s, v_last.detach(), v.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    torch.testing.assert_close(grads[0][2], grads[1][2])


def test_noncontiguous_and_channels_last_input():
    base, x = make_input(__import__("cuda_parity").Case(4, 2, (3, 4, 5), "strided", 7), torch.float32)
    cl = torch.rand(4, 2, 3, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    for inp in (x.detach(), cl):
        assert torch.equal(LIF(backend="numba")(inp), LIF(backend="torch")(inp))


@pytest.mark.parametrize("reset", list(RESETS))
def test_infinite_inputs_match_the_reference(reset, monkeypatch):
    # +inf charges to +inf and fires; the soft reset leaves inf - θ = inf (the kernels used to
    # compute 0·(h − v_reset) = NaN there and then reported NaN in the input); -inf never fires.
    # A hard reset computes inf - inf = NaN, as the reference does: the run's NaN test (on by
    # default on the CPU) reports it as the layer does for the reference backend
    import snn.cuda.autograd as fused
    x = torch.tensor([[0.5, float("inf"), -float("inf")], [0.7, 0.2, 0.9], [0.4, 0.1, 2.0]]).view(3, 1, 3)
    spec = LIF(v_reset=RESETS[reset]).spec(2)
    v0 = torch.zeros(1, 3)
    if RESETS[reset] is not None:
        for layer in (LIF(v_reset=RESETS[reset]), LIF(v_reset=RESETS[reset], backend="torch")):
            with pytest.raises(ValueError, match="NaN"):
                layer(x)
    monkeypatch.setattr(fused, "nan_checks_enabled", lambda x: False)  # compare the values themselves
    s, v_last, v_seq = RUN(x, v0, spec, True)
    s_r, v_last_r, v_seq_r = multistep(x, v0, spec, True)
    assert torch.equal(s, s_r)
    torch.testing.assert_close(v_seq, v_seq_r, rtol=0, atol=0, equal_nan=True)
    if RESETS[reset] is None:
        assert torch.isinf(v_last[0, 1]) and s[:, 0, 1].tolist() == [1.0, 1.0, 1.0]
