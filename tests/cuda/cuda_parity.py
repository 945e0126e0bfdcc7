"""Shared parity machinery for the fused-backend tests: build a neuron for one option
combination, run a fused ``run`` function and the torch reference on the same inputs, and
compare spikes, membranes and gradients.

Spike ties: a spike is a threshold test, so an implementation that rounds ``h`` one ulp
differently may flip a spike when ``h`` lands within rounding of ``v_threshold``. The CPU
kernels reproduce the reference bit for bit (they are checked with ``exact=True``); for the
others (simulator, GPU) :func:`compare` is tie-aware: a spike mismatch is accepted only
where the reference membrane at the first differing step is within ``tie_tol`` of the
threshold, and that neuron is left out of the membrane and input-gradient comparison
(parameter gradients, sums over all neurons, are then not compared).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn.neurons import IF, LIF, PLIF
from snn.neurons.functional import charge, multistep
from snn.surrogate import SURROGATES

MODELS = ("if", "lif", "lif_decay_input", "plif", "plif_decay_input")
RESETS = {"soft": None, "hard0": 0.0, "hard_neg": -0.4}
PARAMS = ("fixed", "learn_threshold", "per_channel")
SURROGATE_NAMES = tuple(n for n in SURROGATES if n != "superspike")
# non-default alphas so that a coefficient mix-up shows
ALPHAS = {"atan": 2.5, "sigmoid": 3.0, "fast_sigmoid": 6.0, "triangle": 0.7, "gaussian": 1.5, "erfc": 1.7}
TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=2e-4, atol=2e-5)}


LAYOUTS = ("contiguous", "strided", "permuted")


@dataclass(frozen=True)
class Case:
    """One input shape ``[T, B, *feature]`` and its memory ``layout``: ``"contiguous"``;
    ``"strided"``, every other element of the last dim with T and B swapped in memory (the
    fused run copies it); ``"permuted"``, dense with T outermost but the other dims in a
    seed-chosen order, e.g. channels-last (the fused run walks it in place)."""

    T: int
    B: int
    feature: tuple[int, ...]
    layout: str
    seed: int


def cases(max_T: int = 6, max_B: int = 3, max_dim: int = 5, max_rank: int = 3) -> st.SearchStrategy[Case]:
    """Shapes: T ≥ 1, batch ≥ 1, feature rank 1..max_rank with odd sizes allowed, every layout."""
    return st.builds(Case, T=st.integers(1, max_T), B=st.integers(1, max_B),
                     feature=st.lists(st.integers(1, max_dim), min_size=1, max_size=max_rank).map(tuple),
                     layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**31 - 1))


def _step_order(case: Case) -> list[int]:
    """The memory order of the dims of one step ``[B, *feature]`` for the permuted layout."""
    order = list(range(1, 2 + len(case.feature)))
    return [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(case.seed))]


def make_neuron(model: str, reset: str, detach: bool, params: str, surrogate: str, C: int,
                dtype: torch.dtype, gen: torch.Generator):
    """A neuron of the given model and options with randomised (per-channel) parameters."""
    kw = dict(v_threshold=1.0, v_reset=RESETS[reset], surrogate=SURROGATES[surrogate](ALPHAS[surrogate]),
              detach_reset=detach, learn_threshold=params != "fixed",
              num_channels=C if params == "per_channel" else None, dtype=dtype, backend="torch")
    if model == "if":
        n = IF(**kw)
    elif model.startswith("lif"):
        n = LIF(tau=3.0, decay_input=model.endswith("decay_input"), **kw)
    else:
        n = PLIF(tau=3.0, decay_input=model.endswith("decay_input"), **kw)
    with torch.no_grad():
        if params == "per_channel":
            n.v_threshold.copy_(0.6 + torch.rand(C, generator=gen, dtype=dtype))
            if model.startswith("lif"):
                n.beta.copy_(0.3 + 0.6 * torch.rand(C, generator=gen, dtype=dtype))
            elif model.startswith("plif"):
                n.w.copy_(torch.randn(C, generator=gen, dtype=dtype))
    return n


def make_input(case: Case, dtype: torch.dtype, device: str = "cpu", scale: float = 1.2):
    """``(leaf, x)``: ``x [T, B, *feature]`` is ``leaf`` itself or a view of it in ``case.layout``."""
    gen = torch.Generator().manual_seed(case.seed)
    shape = (case.T, case.B) + case.feature
    if case.layout == "strided":  # every other element of the last dim, T and B swapped in memory
        big = shape[:-1] + (2 * shape[-1],)
        base = (torch.rand(big, generator=gen, dtype=torch.float64) * scale).to(dtype)
        base = base.transpose(0, 1).contiguous().to(device).requires_grad_()
        x = base.transpose(0, 1)[..., ::2]
    elif case.layout == "permuted":
        order = [0] + _step_order(case)
        base = (torch.rand(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
        base = base.permute(order).contiguous().to(device).requires_grad_()
        x = base.permute([order.index(d) for d in range(len(order))])
    else:
        base = (torch.rand(shape, generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)
        base.requires_grad_()
        x = base
    return base, x


def _reference_h(x: torch.Tensor, v0: torch.Tensor, v_seq: torch.Tensor, spec) -> torch.Tensor:
    v_prev = torch.cat([v0.unsqueeze(0), v_seq[:-1]], 0)
    return torch.stack([charge(v, xt, spec.beta, spec.decay_input) for v, xt in zip(v_prev, x, strict=True)])


def compare(run: Callable, neuron, case: Case, dtype: torch.dtype, record_v: bool, exact: bool,
            device: str = "cpu", ref_dtype: Optional[torch.dtype] = None, tie_tol: float = 1e-5,
            tol: Optional[dict] = None) -> None:
    """Run ``run`` and the reference on the same inputs and assert parity (see module doc).

    ``ref_dtype`` runs the reference in another dtype (float32 reference for half inputs,
    whose fused state is float32).
    """
    ref_dtype = ref_dtype or dtype
    tol = tol or TOL[ref_dtype]
    gen = torch.Generator().manual_seed(case.seed + 1)
    base_f, x_f = make_input(case, dtype, device)
    base_r, x_r = make_input(case, dtype, device)
    x_r = x_r.to(ref_dtype)
    v0 = (torch.rand((case.B,) + case.feature, generator=gen, dtype=torch.float64) * 0.5).to(ref_dtype).to(device)
    v0_f, v0_r = v0.clone().requires_grad_(), v0.clone().requires_grad_()
    ws = torch.randn((case.T, case.B) + case.feature, generator=gen, dtype=torch.float64).to(ref_dtype).to(device)
    # spikes in a half dtype get their gradient in that dtype: weights it holds exactly, so that the
    # reference sees the same spike gradient (parameter gradients are sums with cancellation)
    ws = ws.to(dtype).to(ref_dtype)
    wl = torch.randn_like(v0)
    wq = torch.randn_like(ws)
    params = [p for p in neuron.parameters() if p.requires_grad]

    def loss_and_grads(fn, x, base, v0_, spec):
        s, v_last, v_seq = fn(x, v0_, spec, True if fn is multistep else record_v)
        loss = (s.to(ref_dtype) * ws).sum() + (v_last.to(ref_dtype) * wl).sum()
        if record_v:
            loss = loss + (v_seq.to(ref_dtype) * wq).sum()
        grads = torch.autograd.grad(loss, [base, v0_] + params)
        return s, v_last, v_seq, grads

    ndim = x_f.dim() - 1
    s_f, vl_f, vs_f, g_f = loss_and_grads(run, x_f, base_f, v0_f, neuron.spec(ndim))
    spec_r = neuron.spec(ndim)
    s_r, vl_r, vs_r, g_r = loss_and_grads(multistep, x_r, base_r, v0_r, spec_r)
    assert s_f.shape == s_r.shape and s_f.dtype == x_f.dtype
    s_f = s_f.to(ref_dtype)
    T = case.T
    flat = lambda t, rows=T: t.detach().reshape(rows, -1)  # noqa: E731
    if exact:
        assert torch.equal(s_f, s_r), "spikes differ from the reference"
        ok = torch.ones(flat(s_r).shape[1], dtype=torch.bool, device=s_r.device)
    else:
        diff = flat(s_f) != flat(s_r)
        ok = ~diff.any(0)
        if not ok.all():
            with torch.no_grad():
                h = flat(_reference_h(x_r.detach(), v0.detach(), vs_r.detach(), spec_r))
                th = torch.broadcast_to(torch.as_tensor(spec_r.v_threshold, dtype=ref_dtype, device=device),
                                        x_r.shape[1:]).reshape(-1)
                first = diff.float().argmax(0)
                bad = ~ok
                gap = (h[first[bad], bad.nonzero().squeeze(1)] - th[bad]).abs()
                assert (gap <= tie_tol * th[bad].abs().clamp_min(1)).all(), \
                    f"spikes differ away from threshold ties (|h - th| = {gap.max().item():.3g})"
        assert ok.float().mean() > 0.5, "too many tie mismatches"
    # both sides in ref_dtype: the reference's input gradient has the (half) input's dtype
    cmp = lambda a, b, msg: torch.testing.assert_close(a.to(ref_dtype), b.to(ref_dtype), msg=msg, **tol)  # noqa: E731,E501
    cmp(flat(vl_f, 1)[:, ok], flat(vl_r, 1)[:, ok], "v_last")
    if record_v:
        cmp(flat(vs_f)[:, ok], flat(vs_r)[:, ok], "v_seq")
    gx_f, gx_r = flat(g_f[0].detach()), flat(g_r[0].detach())
    if case.layout == "strided":  # base is [B, T, ..., 2F]: compare through the view
        gx_f = flat(g_f[0].detach().transpose(0, 1)[..., ::2])
        gx_r = flat(g_r[0].detach().transpose(0, 1)[..., ::2])
        assert (g_f[0].transpose(0, 1)[..., 1::2] == 0).all()
    elif case.layout == "permuted":  # base is x in memory order: compare in x's order
        back = [([0] + _step_order(case)).index(d) for d in range(x_f.dim())]
        gx_f, gx_r = flat(g_f[0].detach().permute(back)), flat(g_r[0].detach().permute(back))
        # the outputs keep the input's layout (strides of size-1 dims carry no meaning)
        for out in (s_f, vl_f) + ((vs_f,) if record_v else ()):
            like = x_f if out.dim() == x_f.dim() else x_f[0]
            assert [st for st, n in zip(out.stride(), out.shape) if n > 1] == \
                [st for st, n in zip(like.stride(), like.shape) if n > 1], "output layout differs from the input's"
    cmp(gx_f[:, ok], gx_r[:, ok], "grad x")
    cmp(flat(g_f[1], 1)[:, ok], flat(g_r[1], 1)[:, ok], "grad v0")
    if ok.all():
        for p, a, b in zip(params, g_f[2:], g_r[2:], strict=True):
            assert a.shape == p.shape and a.dtype == p.dtype
            scale = b.abs().max().clamp_min(1.0)
            torch.testing.assert_close(a.to(ref_dtype) / scale, b / scale, msg=f"grad {tuple(p.shape)}", **tol)


def check_parity(run: Callable, model: str, params: str, dtype: torch.dtype, case: Case, device: str,
                 exact: bool = False) -> None:
    """Every surrogate × reset of ``model`` through ``run`` on ``device``, against the float32
    torch reference (half-precision inputs get half-precision tolerances; ``exact``: spikes
    must equal the reference's, with no threshold ties allowed)."""
    half = dtype != torch.float32
    for i, surrogate in enumerate(SURROGATE_NAMES):
        for reset in RESETS:
            n = make_neuron(model, reset, i % 2 == 1, params, surrogate, case.feature[0], torch.float32,
                            torch.Generator().manual_seed(case.seed)).to(device)
            compare(run, n, case, dtype, record_v=i % 2 == 0, exact=exact, device=device,
                    ref_dtype=torch.float32, tie_tol=1e-2 if half else 1e-5,
                    tol=dict(rtol=2e-2, atol=2e-2) if half else None)


def check_gpu_parity(backend: str, model: str, params: str, dtype: torch.dtype, case: Case) -> None:
    """:func:`check_parity` of the registered CUDA backend ``backend``."""
    from snn.neurons import resolve_backend
    run = resolve_backend(backend, "cuda", make_neuron(model, "soft", False, "fixed", "atan", 1,
                                                       torch.float32, torch.Generator()).spec(3)).run
    check_parity(run, model, params, dtype, case, "cuda")


def parity_test(check: Callable[[str, str, torch.dtype, Case], None], max_examples: int = 3) -> Callable:
    """A test of ``check(model, params, dtype, case)`` for every model × parameter option ×
    GPU dtype on ``max_examples`` hypothesis cases each."""
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("params", PARAMS)
    @pytest.mark.parametrize("model", MODELS)
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=cases(max_T=8, max_B=3, max_dim=9))
    def test(model: str, params: str, dtype: torch.dtype, case: Case) -> None:
        check(model, params, dtype, case)
    return test


def gpu_parity_test(backend: str) -> Callable:
    """The GPU parity test of ``backend`` (the same test for every GPU backend)."""
    return parity_test(lambda model, params, dtype, case: check_gpu_parity(backend, model, params, dtype, case))
